"""The handoff card: what to bring out, the ID check when the driver has no photo, and the lock
after too many wrong pickup codes (ops are told)."""

import zoneinfo
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from dashboard.tests.helpers import url
from orders import handoff_guard
from orders.batch_editing import batch_create, batch_publish
from orders.delivery import batch_check_in
from orders.models import Batch
from orders.tests.factories import OrderFactory
from orders.transitions import batch_set_status
from outbox import senders
from outbox.models import Message

pytestmark = pytest.mark.django_db


def at_store(store, driver, totes=(2, 3)):
    start = timezone.now() + timedelta(hours=2)
    orders = [
        OrderFactory(store=store, totes=n, window_start=start, window_end=start + timedelta(hours=2)) for n in totes
    ]
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    batch_set_status(batch=batch, to="assigned", updates={"driver": driver})
    batch_check_in(batch=batch, driver=driver, lat=store.lat, lng=store.lng)
    batch.refresh_from_db()
    return batch, orders


def hand_over(staff, store, batch, code, check="on"):
    data = {f"b{batch.pk}-pickup_code": code, f"b{batch.pk}-face_matches": check}
    return staff.post(url(store, f"handoff/{batch.pk}/"), data, follow=True)


def wrong_code(batch) -> str:
    return "000000" if batch.pickup_code != "000000" else "111111"


def card_of(page: str, batch) -> str:
    return page.split(f'data-batch="{batch.pk}"', 1)[1].split("</section>", 1)[0]


def test_card_lists_the_orders_and_totes_to_bring_out(staff, store, driver):
    batch, orders = at_store(store, driver, totes=(2, 3))
    card = card_of(staff.get(url(store, "handoff/")).content.decode(), batch)
    assert "Bring out 5 totes" in card
    for order, totes in zip(orders, (2, 3), strict=True):
        assert f'data-order="{order.external_id}"' in card
        line = card.split(f'data-order="{order.external_id}"', 1)[1].split("</li>", 1)[0]
        assert f"{totes} totes" in line


def test_without_a_driver_photo_the_associate_checks_their_id(staff, store, driver):
    assert not driver.photo
    batch, _ = at_store(store, driver)
    card = card_of(staff.get(url(store, "handoff/")).content.decode(), batch)
    assert "ID checked" in card and "face matches the photo" not in card
    response = hand_over(staff, store, batch, batch.pickup_code, check="")
    assert "Check the driver&#x27;s ID before handing over." in response.content.decode()
    assert Batch.objects.get(pk=batch.pk).status == "at_store"


def test_with_a_driver_photo_the_associate_compares_the_face(staff, store, driver):
    driver.photo = "driver-photos/dana.jpg"
    driver.save(update_fields=["photo"])
    batch, _ = at_store(store, driver)
    card = card_of(staff.get(url(store, "handoff/")).content.decode(), batch)
    assert "face matches the photo" in card and "ID checked" not in card


def test_six_wrong_codes_lock_the_handoff_for_five_minutes_and_tell_ops(staff, store, driver, ops_user):
    batch, _ = at_store(store, driver)
    for _ in range(handoff_guard.HANDOFF_MAX_WRONG_CODES - 1):
        assert "does not match" in hand_over(staff, store, batch, wrong_code(batch)).content.decode()
    assert not Message.objects.filter(kind=handoff_guard.HANDOFF_LOCKED).exists()

    page = hand_over(staff, store, batch, wrong_code(batch)).content.decode()
    assert "Too many wrong pickup codes" in page and "locked until" in page
    assert "handoff-locked" in card_of(page, batch)  # the card says so too
    # Even the right code is refused while it is locked.
    assert "locked until" in hand_over(staff, store, batch, batch.pickup_code).content.decode()
    assert Batch.objects.get(pk=batch.pk).status == "at_store"

    (notice,) = Message.objects.filter(kind=handoff_guard.HANDOFF_LOCKED)
    email = senders.sender_for(notice.kind).build(notice, timezone.now())
    assert email.to == [ops_user.email]
    assert f"batch {batch.pk}" in email.subject and f"#{store.number}" in email.body

    with time_machine.travel(timezone.now() + timedelta(minutes=5, seconds=5)):
        assert "handed over" in hand_over(staff, store, batch, batch.pickup_code).content.decode()
    assert Batch.objects.get(pk=batch.pk).status == "picked_up"


def test_the_lock_message_says_when_it_unlocks_in_store_time(staff, store, driver):
    batch, _ = at_store(store, driver)
    for _ in range(handoff_guard.HANDOFF_MAX_WRONG_CODES):
        page = hand_over(staff, store, batch, wrong_code(batch)).content.decode()
    until = handoff_guard.handoff_locked_until(batch_id=batch.pk)
    assert until is not None and timedelta(minutes=4) < until - timezone.now() <= timedelta(minutes=5)
    local = timezone.localtime(until, zoneinfo.ZoneInfo(store.zone.timezone))
    assert local.strftime("%-I:%M") in page
