"""Being at the store is one fact (issue 12): one geofenced check-in (stores.presence) serves the
batch's "I'm here", the slot's check-in and the associate's "Confirm driver is here"; a seat
released as a no-show is told to the driver with the reason."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from drivers.models import SlotClaim
from drivers.slot_services import slot_check_in, slot_release_no_show
from drivers.tests.factories import SlotClaimFactory
from orders.delivery import batch_check_in
from orders.models import Batch
from orders.tests.helpers import make_batch, north_of, slot_seat, snapshot
from outbox.models import Message
from outbox.services import message_send
from spark.errors import DomainError, NotPermitted
from stores.tests.factories import DeliverySlotFactory, StoreMembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def trip(store, driver):
    """An assigned batch at `store` and the driver's seat in a slot there starting in 10 min."""
    batch, _ = make_batch(store, driver, picked_up=False)
    return batch, slot_seat(store, driver)


def _seat(seat: SlotClaim) -> tuple:
    seat.refresh_from_db()
    return seat.status, seat.checked_in_at, seat.checked_in_by_id


# --- one check-in, both facts ---------------------------------------------------------------


def test_batch_check_in_at_the_store_checks_in_the_slot_seat_too(trip, driver):
    batch, seat = trip
    lat, lng = north_of(batch.store, 120)
    batch_check_in(batch=batch, driver=driver, lat=lat, lng=lng)
    assert batch.status == Batch.Status.AT_STORE and batch.arrived_at_store_at
    status, checked_in_at, by = _seat(seat)
    assert status == SlotClaim.Status.CHECKED_IN and checked_in_at and by is None
    # twice changes nothing
    before = (snapshot(batch), _seat(seat))
    batch_check_in(batch=batch, driver=driver, lat=lat, lng=lng)
    assert (snapshot(batch), _seat(seat)) == before


def test_slot_check_in_at_the_store_checks_in_the_assigned_batch_too(trip, driver):
    batch, seat = trip
    lat, lng = north_of(batch.store, 30)
    slot_check_in(claim=seat, driver=driver, lat=lat, lng=lng)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.AT_STORE
    event = batch.events.get(to_status=Batch.Status.AT_STORE)
    assert (event.actor, event.lat, event.lng) == (driver.user, lat, lng)
    before = (snapshot(batch), _seat(seat))
    slot_check_in(claim=seat, driver=driver, lat=lat, lng=lng)
    assert (snapshot(batch), _seat(seat)) == before


def test_a_seat_whose_check_in_has_not_opened_is_left_alone(store, driver):
    batch, _ = make_batch(store, driver, picked_up=False)
    later = slot_seat(store, driver, starts_in_minutes=90)  # check-in opens 30 min before
    batch_check_in(batch=batch, driver=driver, lat=store.lat, lng=store.lng)
    assert batch.status == Batch.Status.AT_STORE
    assert _seat(later)[0] == SlotClaim.Status.CLAIMED


# --- outside the radius ---------------------------------------------------------------------


def test_far_from_the_store_neither_is_checked_in_and_the_distance_is_in_miles(trip, driver):
    batch, seat = trip
    lat, lng = north_of(batch.store, 10_000)
    before = (snapshot(batch), _seat(seat))
    for check_in in (
        lambda: batch_check_in(batch=batch, driver=driver, lat=lat, lng=lng),
        lambda: slot_check_in(claim=seat, driver=driver, lat=lat, lng=lng),
    ):
        with pytest.raises(DomainError) as err:
            check_in()
        assert err.value.code == "too_far"
        assert err.value.message == (
            "You are 6.2 miles from the store; check in within 820 feet of it, "
            "or ask an associate to confirm you are here."
        )
    assert (snapshot(batch), _seat(seat)) == before


def test_just_outside_a_small_radius_the_distance_is_in_feet(trip, driver):
    batch, _ = trip
    zone = batch.store.zone
    zone.checkin_radius_m = 50
    zone.save(update_fields=["checkin_radius_m"])
    lat, lng = north_of(batch.store, 120)
    with pytest.raises(DomainError, match=r"^You are 390 feet from the store; check in within 160 feet of it"):
        batch_check_in(batch=batch, driver=driver, lat=lat, lng=lng)


def test_without_location_the_driver_is_told_to_ask_an_associate(trip, driver):
    batch, seat = trip
    for check_in in (
        lambda: batch_check_in(batch=batch, driver=driver),
        lambda: slot_check_in(claim=seat, driver=driver),
    ):
        with pytest.raises(DomainError) as err:
            check_in()
        assert err.value.code == "location_required"
        assert "ask an associate to confirm you are here" in err.value.message
    batch.refresh_from_db()
    assert batch.status == Batch.Status.ASSIGNED and _seat(seat)[0] == SlotClaim.Status.CLAIMED


# --- the associate confirms -----------------------------------------------------------------


def test_an_associate_of_the_store_confirms_the_batch_and_the_seat(trip, associate):
    batch, seat = trip
    batch_check_in(batch=batch, confirmed_by=associate)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.AT_STORE
    event = batch.events.get(to_status=Batch.Status.AT_STORE)
    assert event.actor == associate and event.reason == "confirmed by associate"
    assert _seat(seat)[0::2] == (SlotClaim.Status.CHECKED_IN, associate.pk)


def test_an_associate_confirming_the_seat_checks_in_the_batch(trip, associate):
    batch, seat = trip
    slot_check_in(claim=seat, confirmed_by=associate)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.AT_STORE
    assert batch.events.get(to_status=Batch.Status.AT_STORE).actor == associate


def test_someone_who_is_not_a_member_of_that_store_cannot_confirm(trip):
    batch, seat = trip
    elsewhere = StoreMembershipFactory().user  # an associate of another store
    before = (snapshot(batch), _seat(seat))
    for check_in in (
        lambda: batch_check_in(batch=batch, confirmed_by=elsewhere),
        lambda: slot_check_in(claim=seat, confirmed_by=elsewhere),
    ):
        with pytest.raises(NotPermitted) as err:
            check_in()
        assert err.value.code == "not_store_member"
    assert (snapshot(batch), _seat(seat)) == before


# --- a released seat is told ----------------------------------------------------------------


def test_a_released_seat_is_emailed_to_the_driver_with_the_reason(store, driver):
    started = timezone.now() - timedelta(minutes=20)
    slot = DeliverySlotFactory(store=store, starts_at=started, ends_at=started + timedelta(hours=2), claimed=1)
    seat = SlotClaimFactory(driver=driver, slot=slot, release_at=started + timedelta(minutes=15))
    assert slot_release_no_show(claim_id=seat.pk) is True
    assert slot_release_no_show(claim_id=seat.pk) is False  # twice: one release, one message
    owed = Message.objects.get(kind="drivers.slot_released")
    assert Message.objects.filter(kind="drivers.slot_released").count() == 1
    assert message_send(message_id=owed.pk) is True
    (email,) = mail.outbox
    assert email.to == [driver.user.email] and store.name in email.subject
    assert "Released: you had not checked in 15 minutes after the slot started." in email.body
    seat.refresh_from_db()
    assert seat.status == SlotClaim.Status.RELEASED and seat.released_at


def test_a_driver_who_uses_the_app_in_spanish_is_told_in_spanish(store, driver):
    driver.user.language = "es"
    driver.user.save(update_fields=["language"])
    started = timezone.now() - timedelta(minutes=20)
    slot = DeliverySlotFactory(store=store, starts_at=started, ends_at=started + timedelta(hours=2), claimed=1)
    seat = SlotClaimFactory(driver=driver, slot=slot, release_at=started + timedelta(minutes=15))
    slot_release_no_show(claim_id=seat.pk)
    message_send(message_id=Message.objects.get(kind="drivers.slot_released").pk)
    (email,) = mail.outbox
    assert email.subject == f"Spark: se liberó tu turno en {store.name}"
    assert "Released" not in email.body and "The Spark team" not in email.body
