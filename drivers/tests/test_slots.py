"""Delivery slots: sign up, cancel, late cancel, check in, no-show release; a 50-thread race."""

from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from drivers import tasks
from drivers.models import Driver, SlotClaim
from drivers.slot_services import slot_cancel, slot_check_in, slot_claim, slot_release_due, slot_release_no_show
from drivers.tests.factories import DriverFactory, SlotClaimFactory
from spark.errors import Conflict, DomainError, Gone, NotPermitted
from stores.models import DeliverySlot
from stores.tests.factories import DeliverySlotFactory, StoreFactory, StoreMembershipFactory, UserFactory, ZoneFactory
from tests.helpers import run_in_threads

# 1 m of latitude in degrees (spherical Earth, as spark.geo.haversine_m).
DEG_PER_M = 1 / 111_194.93


def _slot(minutes_from_now: float, *, capacity: int = 8, claimed: int = 0, hours: int = 2, store=None):
    starts = timezone.now() + timedelta(minutes=minutes_from_now)
    return DeliverySlotFactory(
        starts_at=starts,
        ends_at=starts + timedelta(hours=hours),
        capacity=capacity,
        claimed=claimed,
        **({"store": store} if store else {}),
    )


def _seats(slot) -> int:
    return DeliverySlot.objects.values_list("claimed", flat=True).get(pk=slot.pk)


def _north_of_store(store, meters: float) -> tuple[Decimal, Decimal]:
    lat = (Decimal(store.lat) + Decimal(str(meters * DEG_PER_M))).quantize(Decimal("0.000001"))
    return lat, Decimal(store.lng)


# --- Sign up -------------------------------------------------------------------------


@pytest.mark.django_db
def test_claim_takes_a_seat_and_sets_the_no_show_deadline(driver):
    # given a slot starting in two hours with 8 free seats
    slot = _slot(120)
    # when the driver signs up
    claim = slot_claim(driver=driver, slot=slot)
    # then one seat is taken and the claim must be checked in by start + 15 minutes
    assert claim.status == SlotClaim.Status.CLAIMED
    assert claim.release_at == slot.starts_at + timedelta(minutes=15)
    assert _seats(slot) == 1


@pytest.mark.django_db
def test_signing_up_twice_returns_the_same_seat(driver):
    slot = _slot(120)
    first = slot_claim(driver=driver, slot=slot)
    again = slot_claim(driver=driver, slot=slot)
    assert again.pk == first.pk
    assert _seats(slot) == 1
    assert SlotClaim.objects.filter(driver=driver, slot=slot).count() == 1


@pytest.mark.django_db
def test_full_slot_is_a_conflict_and_changes_nothing(driver):
    slot = _slot(120, capacity=2, claimed=2)
    with pytest.raises(Conflict, match="This slot is full."):
        slot_claim(driver=driver, slot=slot)
    assert _seats(slot) == 2
    assert not SlotClaim.objects.filter(driver=driver).exists()


@pytest.mark.django_db
def test_slot_ending_within_the_grace_period_is_gone(driver):
    slot = _slot(-110)  # ends in 10 min, less than the 15-min check-in grace
    with pytest.raises(Gone, match="ending"):
        slot_claim(driver=driver, slot=slot)
    assert _seats(slot) == 0


@pytest.mark.django_db
def test_a_running_slot_can_be_joined_and_the_no_show_clock_starts_at_joining(driver):
    # A seat a no-show freed reopens: a driver may join the running slot and has the grace
    # period from joining (not from the start, long past) to check in.
    slot = _slot(-30)
    claim = slot_claim(driver=driver, slot=slot)
    assert _seats(slot) == 1
    assert claim.release_at > timezone.now() + timedelta(minutes=14)


@pytest.mark.django_db
def test_a_seat_freed_by_a_cancel_can_be_taken_again(driver, other_driver):
    slot = _slot(120, capacity=1)
    claim = slot_claim(driver=driver, slot=slot)
    with pytest.raises(Conflict):
        slot_claim(driver=other_driver, slot=slot)
    slot_cancel(claim=claim, driver=driver)
    assert slot_claim(driver=other_driver, slot=slot).status == SlotClaim.Status.CLAIMED
    # and the first driver may sign up again: the cancelled claim is history
    slot2 = _slot(180, capacity=2, store=slot.store)
    c1 = slot_claim(driver=driver, slot=slot2)
    slot_cancel(claim=c1, driver=driver)
    c2 = slot_claim(driver=driver, slot=slot2)
    assert c2.pk != c1.pk and _seats(slot2) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "reason_code", "expected"),
    [
        ("suspended", "documents_expired", "Your account is suspended: License or insurance expired."),
        ("deactivated", "fraud", "Your account is deactivated: Suspected fraud."),
        ("applicant", "", "not approved yet"),
        ("screening", "", "not approved yet"),
    ],
)
def test_drivers_who_may_not_work_get_not_permitted_with_the_reason(status, reason_code, expected):
    driver = DriverFactory(status=status, reason_code=reason_code)
    slot = _slot(120)
    with pytest.raises(NotPermitted) as err:
        slot_claim(driver=driver, slot=slot)
    assert expected in str(err.value)
    assert err.value.status_code == 403
    assert _seats(slot) == 0


@pytest.mark.django_db
def test_expired_license_is_not_permitted():
    driver = DriverFactory(license_expires_on=timezone.localdate() - timedelta(days=1))
    with pytest.raises(NotPermitted, match="driver's license expired"):
        slot_claim(driver=driver, slot=_slot(120))


@pytest.mark.django_db
def test_slot_in_another_zone_is_refused(driver):
    other = StoreFactory(zone=ZoneFactory(name="New Orleans", slug="new-orleans", center_lat=29.95, center_lng=-90.07))
    slot = _slot(120, store=other)
    with pytest.raises(DomainError, match="outside your zone"):
        slot_claim(driver=driver, slot=slot)
    assert _seats(slot) == 0


@pytest.mark.django_db
def test_no_show_countdown_is_queued_only_within_the_max_countdown(driver, django_capture_on_commit_callbacks):
    soon, later = _slot(20), _slot(3 * 24 * 60)
    with mock.patch.object(tasks.release_no_show, "apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=True):
            near = slot_claim(driver=driver, slot=soon)
        # the deadline is 35 minutes away: a countdown task is queued with the claim id
        assert apply_async.call_count == 1
        kwargs = apply_async.call_args.kwargs
        assert kwargs["args"] == (near.pk,)
        assert 34 * 60 < kwargs["countdown"] <= 35 * 60
        with django_capture_on_commit_callbacks(execute=True):
            slot_claim(driver=driver, slot=later)
        # three days ahead: above SPARK_MAX_TASK_COUNTDOWN_SECONDS, the sweeper does it
        assert apply_async.call_count == 1


# --- Cancel --------------------------------------------------------------------------


@pytest.mark.django_db
def test_cancel_before_the_cutoff_is_free_and_frees_the_seat(driver):
    slot = _slot(120)
    claim = slot_claim(driver=driver, slot=slot)
    # when the driver cancels two hours ahead (cutoff: 45 minutes)
    done = slot_cancel(claim=claim, driver=driver)
    # then it is a free cancel and the seat reopens
    assert done.status == SlotClaim.Status.CANCELLED
    assert done.cancelled_at is not None
    assert _seats(slot) == 0
    # and doing it again changes nothing
    again = slot_cancel(claim=claim, driver=driver)
    assert (again.status, again.cancelled_at) == (done.status, done.cancelled_at)
    assert _seats(slot) == 0


@pytest.mark.django_db
def test_cancel_after_the_cutoff_is_recorded_late_and_still_frees_the_seat(driver, other_driver):
    slot = _slot(30)
    claim = slot_claim(driver=driver, slot=slot)
    slot_claim(driver=other_driver, slot=slot)
    done = slot_cancel(claim=claim, driver=driver)
    assert done.status == SlotClaim.Status.LATE_CANCELLED
    assert _seats(slot) == 1
    assert slot_cancel(claim=claim, driver=driver).status == SlotClaim.Status.LATE_CANCELLED
    assert _seats(slot) == 1


@pytest.mark.django_db
def test_cancel_after_the_start_is_refused(driver):
    slot = _slot(-10, claimed=1)
    claim = SlotClaimFactory(driver=driver, slot=slot)
    with pytest.raises(DomainError, match="already started"):
        slot_cancel(claim=claim, driver=driver)
    claim.refresh_from_db()
    assert claim.status == SlotClaim.Status.CLAIMED
    assert _seats(slot) == 1


@pytest.mark.django_db
def test_cancel_someone_elses_claim_is_refused(driver, other_driver):
    slot = _slot(120)
    claim = slot_claim(driver=driver, slot=slot)
    with pytest.raises(DomainError, match="not yours"):
        slot_cancel(claim=claim, driver=other_driver)
    assert _seats(slot) == 1


# --- Check in ------------------------------------------------------------------------


@pytest.mark.django_db
def test_check_in_within_the_radius(driver):
    slot = _slot(10)
    claim = slot_claim(driver=driver, slot=slot)
    lat, lng = _north_of_store(slot.store, 100)
    done = slot_check_in(claim=claim, driver=driver, lat=lat, lng=lng)
    assert done.status == SlotClaim.Status.CHECKED_IN
    assert done.checked_in_at is not None
    # a repeat changes nothing
    again = slot_check_in(claim=claim, driver=driver, lat=lat, lng=lng)
    assert again.checked_in_at == done.checked_in_at
    assert _seats(slot) == 1


@pytest.mark.django_db
def test_check_in_just_inside_and_outside_250_m(driver, other_driver):
    slot = _slot(10)
    inside = slot_claim(driver=driver, slot=slot)
    outside = slot_claim(driver=other_driver, slot=slot)
    assert (
        slot_check_in(claim=inside, driver=driver, lat=_north_of_store(slot.store, 245)[0], lng=slot.store.lng).status
        == SlotClaim.Status.CHECKED_IN
    )
    lat, lng = _north_of_store(slot.store, 300)
    with pytest.raises(DomainError) as err:
        slot_check_in(claim=outside, driver=other_driver, lat=lat, lng=lng)
    # the message says how far they are, in US units, and what to do
    assert "You are 0.2 miles from the store" in err.value.message
    assert "within 820 feet" in err.value.message
    assert "ask an associate to confirm you are here" in err.value.message
    assert err.value.code == "too_far"
    outside.refresh_from_db()
    assert outside.status == SlotClaim.Status.CLAIMED


@pytest.mark.django_db
def test_associate_confirms_a_driver_without_location(driver):
    slot = _slot(10)
    associate = StoreMembershipFactory(store=slot.store).user
    claim = slot_claim(driver=driver, slot=slot)
    done = slot_check_in(claim=claim, confirmed_by=associate)
    assert done.status == SlotClaim.Status.CHECKED_IN


@pytest.mark.django_db
def test_only_an_associate_of_the_store_can_confirm(driver):
    slot = _slot(10)
    stranger = UserFactory()
    other_associate = StoreMembershipFactory().user  # of another store
    claim = slot_claim(driver=driver, slot=slot)
    for user in (stranger, other_associate):
        with pytest.raises(NotPermitted):
            slot_check_in(claim=claim, confirmed_by=user)
    claim.refresh_from_db()
    assert claim.status == SlotClaim.Status.CLAIMED


@pytest.mark.django_db
def test_check_in_opens_30_minutes_before_the_start(driver):
    slot = _slot(45)
    claim = slot_claim(driver=driver, slot=slot)
    lat, lng = _north_of_store(slot.store, 0)
    with pytest.raises(DomainError, match="opens 30 minutes before"):
        slot_check_in(claim=claim, driver=driver, lat=lat, lng=lng)
    claim.refresh_from_db()
    assert claim.status == SlotClaim.Status.CLAIMED


@pytest.mark.django_db
def test_check_in_without_location_or_associate_is_refused(driver):
    slot = _slot(10)
    claim = slot_claim(driver=driver, slot=slot)
    with pytest.raises(DomainError, match="Share your location"):
        slot_check_in(claim=claim, driver=driver)


@pytest.mark.django_db
def test_check_in_after_the_no_show_deadline_releases_the_seat(driver):
    # given a slot that started 20 minutes ago; the driver never checked in (deadline: +15)
    slot = _slot(-20, claimed=1)
    claim = SlotClaimFactory(driver=driver, slot=slot)
    lat, lng = _north_of_store(slot.store, 10)
    with pytest.raises(Gone, match="released"):
        slot_check_in(claim=claim, driver=driver, lat=lat, lng=lng)
    claim.refresh_from_db()
    assert claim.status == SlotClaim.Status.RELEASED
    assert _seats(slot) == 0


# --- No-show release -----------------------------------------------------------------


@pytest.mark.django_db
def test_no_show_release_frees_the_seat_once(driver):
    slot = _slot(-20, claimed=1)
    claim = SlotClaimFactory(driver=driver, slot=slot)
    assert slot_release_no_show(claim_id=claim.pk) is True
    claim.refresh_from_db()
    assert claim.status == SlotClaim.Status.RELEASED
    assert _seats(slot) == 0
    # running it again (the sweeper after the countdown task) changes nothing
    assert slot_release_no_show(claim_id=claim.pk) is False
    assert _seats(slot) == 0
    assert tasks.release_no_show(claim.pk) is False


@pytest.mark.django_db
def test_no_show_release_leaves_checked_in_and_not_yet_due_claims(driver, other_driver):
    started = _slot(-20, claimed=1)
    checked_in = SlotClaimFactory(
        driver=driver, slot=started, status=SlotClaim.Status.CHECKED_IN, checked_in_at=timezone.now()
    )
    upcoming = _slot(5, claimed=1)
    not_due = SlotClaimFactory(driver=other_driver, slot=upcoming)
    assert slot_release_no_show(claim_id=checked_in.pk) is False
    assert slot_release_no_show(claim_id=not_due.pk) is False
    assert slot_release_no_show(claim_id=999_999) is False
    assert (_seats(started), _seats(upcoming)) == (1, 1)


@pytest.mark.django_db
def test_sweeper_releases_every_due_no_show_once():
    a, b = _slot(-20, claimed=2), _slot(-40, claimed=1)
    due = [SlotClaimFactory(slot=a), SlotClaimFactory(slot=a), SlotClaimFactory(slot=b)]
    future = _slot(60, claimed=1)
    kept = SlotClaimFactory(slot=future)
    # when the beat sweeper runs
    assert tasks.sweep_no_shows() == 3
    # then every due claim is released and its seat freed; the future one is untouched
    assert set(SlotClaim.objects.filter(pk__in=[c.pk for c in due]).values_list("status", flat=True)) == {"released"}
    assert (_seats(a), _seats(b), _seats(future)) == (0, 0, 1)
    kept.refresh_from_db()
    assert kept.status == SlotClaim.Status.CLAIMED
    # and a second run changes nothing
    assert slot_release_due() == 0
    assert (_seats(a), _seats(b), _seats(future)) == (0, 0, 1)


@pytest.mark.django_db
def test_sweeper_is_capped_per_run():
    slot = _slot(-20, claimed=3)
    for _ in range(3):
        SlotClaimFactory(slot=slot)
    assert slot_release_due(limit=2) == 2
    assert slot_release_due(limit=2) == 1
    assert _seats(slot) == 0


# --- Races on PostgreSQL -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_fifty_drivers_race_for_ten_seats():
    # given a 10-seat slot and 50 drivers
    slot = _slot(120, capacity=10)
    drivers = [DriverFactory() for _ in range(50)]
    # when all 50 sign up at the same moment
    results = run_in_threads(50, lambda i: slot_claim(driver=drivers[i], slot=slot))
    # then exactly 10 get a seat and 40 are told the slot is full
    won = [r for r in results if isinstance(r, SlotClaim)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert len(won) == 10, [r for r in results if not isinstance(r, SlotClaim | Conflict)]
    assert len(lost) == 40
    assert all(r.code == "slot_full" for r in lost)
    assert _seats(slot) == 10
    assert SlotClaim.objects.filter(slot=slot, status__in=SlotClaim.ACTIVE_STATUSES).count() == 10
    assert len({c.driver_id for c in won}) == 10


@pytest.mark.django_db(transaction=True)
def test_one_driver_signing_up_from_many_devices_holds_one_seat():
    slot = _slot(120, capacity=5)
    driver = DriverFactory()
    results = run_in_threads(10, lambda i: slot_claim(driver=Driver.objects.get(pk=driver.pk), slot=slot))
    assert all(isinstance(r, SlotClaim) for r in results), results
    assert len({r.pk for r in results}) == 1
    assert _seats(slot) == 1
    assert SlotClaim.objects.filter(slot=slot).count() == 1


@pytest.mark.django_db(transaction=True)
def test_cancel_racing_itself_frees_one_seat():
    slot = _slot(120, capacity=5, claimed=2)
    claim = SlotClaimFactory(slot=slot)
    SlotClaimFactory(slot=slot)
    results = run_in_threads(8, lambda i: slot_cancel(claim=claim, driver=claim.driver))
    assert all(isinstance(r, SlotClaim) and r.status == SlotClaim.Status.CANCELLED for r in results), results
    assert _seats(slot) == 1
