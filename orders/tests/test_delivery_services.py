"""The driver's delivery services: check-in, arrive, deliver (photo, ID check, distance),
fail, complete, and the customer emails they queue.

Each step: it works once, a repeat changes nothing, and each bad input (out of order, before
pickup, another driver's batch, a bad photo, no ID / under 21) changes nothing at all.
"""

import io
from datetime import date, datetime
from decimal import Decimal
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from drivers.tests.factories import DriverFactory
from orders import delivery
from orders.delivery import (
    batch_check_in,
    batch_complete,
    batch_handoff,
    stop_arrive,
    stop_deliver,
    stop_fail,
)
from orders.models import Batch, Order, Stop
from orders.returns import order_return_check_in
from orders.tests.helpers import HOME, jpeg, make_batch, snapshot, stored_files
from outbox.models import Message
from spark.errors import DomainError, InvalidTransition

pytestmark = pytest.mark.django_db

CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def pdf_named_jpg() -> SimpleUploadedFile:
    return SimpleUploadedFile("door.jpg", b"%PDF-1.4\n%%EOF\n", content_type="image/jpeg")


# --- check-in at the store ----------------------------------------------------------


def test_check_in_records_the_phone_position_and_a_repeat_is_a_no_op(store, driver):
    batch, _ = make_batch(store, driver, picked_up=False)
    batch_check_in(batch=batch, driver=driver, lat="36.150001", lng="-86.790002")
    assert batch.status == Batch.Status.AT_STORE and batch.arrived_at_store_at
    event = batch.events.get(to_status=Batch.Status.AT_STORE)
    assert (event.lat, event.lng) == (Decimal("36.150001"), Decimal("-86.790002"))
    assert event.actor == driver.user
    batch_check_in(batch=batch, driver=driver)
    assert batch.events.filter(to_status=Batch.Status.AT_STORE).count() == 1


def test_check_in_after_pickup_and_on_another_drivers_batch(store, driver, other_driver):
    batch, _ = make_batch(store, driver)
    with pytest.raises(InvalidTransition) as err:
        batch_check_in(batch=batch, driver=driver)
    assert err.value.code == "already_picked_up"
    mine, _ = make_batch(store, other_driver, picked_up=False)
    before = snapshot(mine)
    with pytest.raises(DomainError) as err:
        batch_check_in(batch=mine, driver=driver)
    assert err.value.code == "not_found"
    assert snapshot(mine) == before


# --- pickup: the "on the way" emails -------------------------------------------------


def test_handoff_owes_one_on_the_way_email_per_order_sent_after_commit(
    store, driver, django_capture_on_commit_callbacks
):
    batch, stops = make_batch(store, driver, picked_up=False)
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    # owed in the handoff's own transaction, one per order; sent only once it commits
    owed = Message.objects.filter(kind="orders.on_the_way").order_by("pk")
    assert [m.payload for m in owed] == [{"order_id": s.order_id} for s in stops]
    assert len(callbacks) == len(stops) and mail.outbox == []


# --- arrive ---------------------------------------------------------------------------


def test_arrive_at_the_next_stop_and_a_repeat_is_a_no_op(store, driver):
    batch, (first, second) = make_batch(store, driver)
    stop_arrive(stop=first, driver=driver, lat="36.160100", lng="-86.780100")
    assert first.status == Stop.Status.ARRIVED and first.arrived_at
    event = first.events.get()
    assert (event.from_status, event.to_status, event.actor) == ("pending", "arrived", driver.user)
    assert event.lat == Decimal("36.160100")
    before = snapshot(batch)
    stop_arrive(stop=first, driver=driver)
    assert snapshot(batch) == before


def test_arrive_out_of_order_changes_nothing(store, driver):
    batch, (first, second) = make_batch(store, driver)
    before = snapshot(batch)
    with pytest.raises(InvalidTransition) as err:
        stop_arrive(stop=second, driver=driver)
    assert err.value.code == "out_of_order" and "Stop 1 comes first" in err.value.message
    assert snapshot(batch) == before


def test_arrive_before_pickup_changes_nothing(store, driver):
    batch, (first, _) = make_batch(store, driver, picked_up=False)
    before = snapshot(batch)
    with pytest.raises(InvalidTransition) as err:
        stop_arrive(stop=first, driver=driver)
    assert err.value.code == "not_picked_up" and "before pickup" in err.value.message
    assert snapshot(batch) == before


def test_every_action_on_another_drivers_batch_is_not_found(store, driver, other_driver):
    batch, (first, _) = make_batch(store, other_driver)
    before = snapshot(batch)
    calls = [
        lambda: stop_arrive(stop=first, driver=driver),
        lambda: stop_deliver(stop=first, driver=driver, photo=jpeg()),
        lambda: stop_fail(stop=first, driver=driver, reason="no_one_home"),
        lambda: batch_complete(batch=batch, driver=driver),
    ]
    for call in calls:
        with pytest.raises(DomainError) as err:
            call()
        assert err.value.code == "not_found"
    assert snapshot(batch) == before


# --- deliver ------------------------------------------------------------------------


def test_deliver_stores_a_stripped_photo_and_delivers_the_order(store, driver, media_root):
    batch, (first, _) = make_batch(store, driver)
    stop_arrive(stop=first, driver=driver)
    stop_deliver(stop=first, driver=driver, photo=jpeg(), lat=HOME[0], lng=HOME[1])
    first.refresh_from_db()
    assert first.status == Stop.Status.DELIVERED and first.delivered_at
    assert first.order.status == Order.Status.DELIVERED
    assert (first.delivered_lat, first.delivered_lng, first.distance_from_address_m) == (*HOME, 0)
    assert first.id_checked is False and not first.id_photo
    assert first.proof_photo.name.startswith("proof/")
    with first.proof_photo.open("rb") as f:
        img = Image.open(io.BytesIO(f.read()))
    assert img.format == "JPEG" and len(img.getexif()) == 0 and "exif" not in img.info
    assert first.events.last().reason == "delivered"


def test_deliver_owes_the_delivered_email(store, driver, django_capture_on_commit_callbacks):
    _, (first, _) = make_batch(store, driver)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        stop_deliver(stop=first, driver=driver, photo=jpeg())
    [owed] = Message.objects.filter(kind="orders.delivered")
    assert owed.payload == {"order_id": first.order_id} and owed.sent_at is None
    assert len(callbacks) == 1


def test_deliver_at_a_pending_next_stop_arrives_implicitly(store, driver):
    _, (first, _) = make_batch(store, driver)
    stop_deliver(stop=first, driver=driver, photo=jpeg())
    assert [(e.from_status, e.to_status) for e in first.events.all()] == [
        ("pending", "arrived"),
        ("arrived", "delivered"),
    ]
    assert first.arrived_at and first.delivered_at
    assert first.events.last().reason == "delivered (the phone sent no location)"


def test_delivering_twice_changes_nothing(store, driver, media_root, django_capture_on_commit_callbacks):
    batch, (first, _) = make_batch(store, driver)
    stop_deliver(stop=first, driver=driver, photo=jpeg())
    before, files = snapshot(batch), stored_files(media_root)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        again = stop_deliver(stop=first, driver=driver, photo=jpeg())
    assert again.status == Stop.Status.DELIVERED
    assert snapshot(batch) == before and stored_files(media_root) == files
    assert Message.objects.filter(kind="orders.delivered").count() == 1 and callbacks == []  # no second email


def test_delivering_before_pickup_changes_nothing(store, driver, media_root):
    batch, (first, _) = make_batch(store, driver, picked_up=False)
    before = snapshot(batch)
    with pytest.raises(InvalidTransition) as err:
        stop_deliver(stop=first, driver=driver, photo=jpeg())
    assert err.value.code == "not_picked_up"
    assert snapshot(batch) == before and stored_files(media_root) == []


def test_delivering_out_of_order_changes_nothing(store, driver, media_root):
    batch, (_, second) = make_batch(store, driver)
    before = snapshot(batch)
    with pytest.raises(InvalidTransition) as err:
        stop_deliver(stop=second, driver=driver, photo=jpeg())
    assert err.value.code == "out_of_order"
    assert snapshot(batch) == before and stored_files(media_root) == []


@pytest.mark.parametrize(
    ("photo", "code"),
    [
        (None, "photo_required"),
        (pdf_named_jpg, "not_an_image"),
        (lambda: SimpleUploadedFile("door.jpg", b"just text\n" * 50, content_type="image/jpeg"), "not_an_image"),
    ],
    ids=["missing", "pdf", "text"],
)
def test_a_bad_photo_is_refused_and_changes_nothing(store, driver, media_root, photo, code):
    batch, (first, _) = make_batch(store, driver)
    stop_arrive(stop=first, driver=driver)
    before = snapshot(batch)
    with pytest.raises(DomainError) as err:
        stop_deliver(stop=first, driver=driver, photo=photo() if photo else None)
    assert err.value.status_code == 400 and err.value.code == code and "photo" in err.value.fields
    assert snapshot(batch) == before and stored_files(media_root) == []


def test_a_photo_over_the_size_cap_is_refused(store, driver, settings, media_root):
    batch, (first, _) = make_batch(store, driver)
    settings.SPARK_PHOTO_MAX_BYTES = 1024
    before = snapshot(batch)
    with pytest.raises(DomainError) as err:
        stop_deliver(stop=first, driver=driver, photo=jpeg(size=(800, 600)))
    assert err.value.status_code == 400 and err.value.code == "photo_too_large"
    assert snapshot(batch) == before and stored_files(media_root) == []


def test_a_delivery_far_from_the_address_is_recorded_not_blocked(store, driver, settings):
    settings.SPARK_DELIVERY_MAX_DISTANCE_M = 250
    _, (first, _) = make_batch(store, driver)
    # about 640 m north of the customer's coordinates
    stop_deliver(stop=first, driver=driver, photo=jpeg(), lat=HOME[0] + Decimal("0.005760"), lng=HOME[1])
    first.refresh_from_db()
    assert first.status == Stop.Status.DELIVERED and first.order.status == Order.Status.DELIVERED
    assert 630 <= first.distance_from_address_m <= 650
    event = first.events.get(to_status=Stop.Status.DELIVERED)
    assert event.reason == f"delivered {first.distance_from_address_m} m from the address (more than 250 m)"
    assert event.lat == HOME[0] + Decimal("0.005760")


def test_a_delivery_within_the_limit_is_plainly_delivered(store, driver, settings):
    settings.SPARK_DELIVERY_MAX_DISTANCE_M = 250
    _, (first, _) = make_batch(store, driver)
    stop_deliver(stop=first, driver=driver, photo=jpeg(), lat=HOME[0] + Decimal("0.001"), lng=HOME[1])
    first.refresh_from_db()
    assert 100 <= first.distance_from_address_m <= 120
    assert first.events.get(to_status=Stop.Status.DELIVERED).reason == "delivered"


# --- alcohol: the ID check ----------------------------------------------------------

# 22:00 in Nashville on 14 June 2025 is already 15 June in UTC: the age counts in the store's zone.
EVENING = datetime(2025, 6, 14, 22, 0, tzinfo=CHICAGO)


@pytest.fixture
def evening():
    with time_machine.travel(EVENING, tick=False):
        yield


def test_alcohol_without_the_id_check_is_refused_and_changes_nothing(store, driver, media_root):
    batch, (first, _) = make_batch(store, driver, alcohol=True)
    before = snapshot(batch)
    for kwargs, missing in [
        ({}, {"id_birth_date", "id_photo"}),
        ({"id_birth_date": date(1990, 1, 1)}, {"id_photo"}),
        ({"id_photo": jpeg("id.jpg")}, {"id_birth_date"}),
    ]:
        with pytest.raises(DomainError) as err:
            stop_deliver(stop=first, driver=driver, photo=jpeg(), **kwargs)
        assert err.value.status_code == 400 and err.value.code == "id_required"
        assert set(err.value.fields) == missing
        assert "Alcohol refused" in err.value.message
    assert snapshot(batch) == before and stored_files(media_root) == []


def test_alcohol_to_someone_under_21_is_refused_and_changes_nothing(store, driver, media_root, evening):
    batch, (first, _) = make_batch(store, driver, alcohol=True)
    before = snapshot(batch)
    with pytest.raises(DomainError) as err:  # born 20 years ago
        stop_deliver(stop=first, driver=driver, photo=jpeg(), id_birth_date=date(2005, 6, 14), id_photo=jpeg("id.jpg"))
    assert err.value.status_code == 400 and err.value.code == "under_21"
    assert snapshot(batch) == before and stored_files(media_root) == []


def test_a_birth_date_in_the_future_is_refused(store, driver):
    _, (first, _) = make_batch(store, driver, alcohol=True)
    with pytest.raises(DomainError) as err:
        stop_deliver(stop=first, driver=driver, photo=jpeg(), id_birth_date=date(2999, 1, 1), id_photo=jpeg("id.jpg"))
    assert err.value.code == "bad_birth_date"


def test_21_today_in_the_stores_timezone_is_accepted(store, driver, evening):
    # born 14 June 2004: 21 today in Nashville (it is 15 June only in UTC)
    _, (first, _) = make_batch(store, driver, alcohol=True)
    stop_deliver(stop=first, driver=driver, photo=jpeg(), id_birth_date=date(2004, 6, 14), id_photo=jpeg("id.jpg"))
    first.refresh_from_db()
    assert first.status == Stop.Status.DELIVERED
    assert first.id_checked is True and first.id_birth_date == date(2004, 6, 14)
    assert first.id_photo.name.startswith("id-checks/")
    with first.id_photo.open("rb") as f:
        assert len(Image.open(io.BytesIO(f.read())).getexif()) == 0


def test_21_tomorrow_in_the_stores_timezone_is_under_21(store, driver, evening):
    # born 15 June 2004: 21 in UTC already, not yet in Nashville
    batch, (first, _) = make_batch(store, driver, alcohol=True)
    before = snapshot(batch)
    with pytest.raises(DomainError) as err:
        stop_deliver(stop=first, driver=driver, photo=jpeg(), id_birth_date=date(2004, 6, 15), id_photo=jpeg("id.jpg"))
    assert err.value.code == "under_21"
    assert snapshot(batch) == before


def test_an_id_photo_on_an_order_without_alcohol_is_not_kept(store, driver):
    _, (first, _) = make_batch(store, driver)
    stop_deliver(stop=first, driver=driver, photo=jpeg(), id_birth_date=date(1990, 1, 1), id_photo=jpeg("id.jpg"))
    first.refresh_from_db()
    assert first.status == Stop.Status.DELIVERED
    assert not first.id_photo and first.id_checked is False and first.id_birth_date is None


def test_the_refusal_path_after_a_failed_id_check(store, driver):
    _, (first, _) = make_batch(store, driver, alcohol=True)
    stop_arrive(stop=first, driver=driver)
    with pytest.raises(DomainError):
        stop_deliver(stop=first, driver=driver, photo=jpeg(), id_birth_date=date.today(), id_photo=jpeg("id.jpg"))
    stop_fail(stop=first, driver=driver, reason="refused_alcohol")
    first.refresh_from_db()
    assert first.status == Stop.Status.FAILED and first.failure_reason == "refused_alcohol"
    assert first.order.status == Order.Status.UNDELIVERABLE


# --- fail -----------------------------------------------------------------------------


def test_fail_marks_the_order_undeliverable_and_a_repeat_is_a_no_op(store, driver):
    batch, (first, second) = make_batch(store, driver)
    stop_fail(stop=first, driver=driver, reason="no_one_home", lat="36.16", lng="-86.78")
    assert first.status == Stop.Status.FAILED and first.failure_reason == "no_one_home"
    assert first.order.status == Order.Status.UNDELIVERABLE
    event = first.events.get()
    assert (event.from_status, event.reason, event.lat) == ("pending", "No one home", Decimal("36.160000"))
    before = snapshot(batch)
    stop_fail(stop=first, driver=driver, reason="damaged")
    assert snapshot(batch) == before
    # the next stop is now workable
    stop_arrive(stop=second, driver=driver)
    assert second.status == Stop.Status.ARRIVED


@pytest.mark.parametrize("reason", ["", "bored", None])
def test_fail_needs_a_reason_from_the_list(store, driver, reason):
    batch, (first, _) = make_batch(store, driver)
    before = snapshot(batch)
    with pytest.raises(DomainError) as err:
        stop_fail(stop=first, driver=driver, reason=reason)
    assert err.value.code == "bad_reason" and "reason" in err.value.fields
    assert snapshot(batch) == before


def test_fail_out_of_order_or_before_pickup_or_after_delivery_changes_nothing(store, driver):
    batch, (first, second) = make_batch(store, driver)
    before = snapshot(batch)
    with pytest.raises(InvalidTransition) as err:
        stop_fail(stop=second, driver=driver, reason="no_one_home")
    assert err.value.code == "out_of_order"
    assert snapshot(batch) == before
    stop_deliver(stop=first, driver=driver, photo=jpeg())
    with pytest.raises(InvalidTransition) as err:
        stop_fail(stop=first, driver=driver, reason="damaged")
    assert err.value.code == "stop_done"
    waiting, (w1, _) = make_batch(store, DriverFactory(), picked_up=False)
    with pytest.raises(InvalidTransition) as err:
        stop_fail(stop=w1, driver=waiting.driver, reason="no_one_home")
    assert err.value.code == "not_picked_up"


# --- complete -------------------------------------------------------------------------


def test_complete_with_stops_left_lists_them_and_changes_nothing(store, driver):
    batch, (first, *_) = make_batch(store, driver, n=3)
    stop_deliver(stop=first, driver=driver, photo=jpeg())
    before = snapshot(batch)
    with pytest.raises(InvalidTransition) as err:
        batch_complete(batch=batch, driver=driver)
    assert err.value.code == "stops_left"
    assert "stop 2" in err.value.message and "stop 3" in err.value.message
    assert err.value.fields["stops"] == ["Stop 2: 701 Secret Lane", "Stop 3: 702 Secret Lane"]
    assert snapshot(batch) == before


def test_complete_before_pickup_is_refused(store, driver):
    batch, _ = make_batch(store, driver, picked_up=False)
    with pytest.raises(InvalidTransition) as err:
        batch_complete(batch=batch, driver=driver)
    assert err.value.code == "not_picked_up"


def test_all_delivered_completes_the_batch_and_a_repeat_is_a_no_op(store, driver):
    batch, stops = make_batch(store, driver)
    for stop in stops:
        stop_deliver(stop=stop, driver=driver, photo=jpeg())
    batch_complete(batch=batch, driver=driver)
    assert batch.status == Batch.Status.COMPLETED and batch.closed_at
    assert batch.events.last().actor == driver.user
    before = snapshot(batch)
    batch_complete(batch=batch, driver=driver)
    assert snapshot(batch) == before


def test_a_failed_stop_sends_the_batch_back_to_the_store(store, driver, associate):
    batch, (first, second) = make_batch(store, driver)
    stop_deliver(stop=first, driver=driver, photo=jpeg())
    stop_fail(stop=second, driver=driver, reason="wrong_address")
    batch_complete(batch=batch, driver=driver)
    assert batch.status == Batch.Status.RETURNING and batch.closed_at is None
    before = snapshot(batch)
    batch_complete(batch=batch, driver=driver)
    assert snapshot(batch) == before
    # the associate checks the order back in: the batch is returned
    order_return_check_in(order=second.order, reason="wrong_address", actor=associate)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.RETURNED and batch.closed_at


def test_returns_checked_in_before_complete_end_the_batch_returned(store, driver, associate):
    batch, (first, second) = make_batch(store, driver)
    stop_deliver(stop=first, driver=driver, photo=jpeg())
    stop_fail(stop=second, driver=driver, reason="damaged")
    order_return_check_in(order=second.order, reason="damaged", actor=associate)
    batch_complete(batch=batch, driver=driver)
    assert batch.status == Batch.Status.RETURNED
    assert list(batch.events.values_list("to_status", flat=True))[-2:] == ["returning", "returned"]


def test_the_whole_trip(store, driver):
    batch, stops = make_batch(store, driver, n=3, picked_up=False)
    batch_check_in(batch=batch, driver=driver, lat="36.15", lng="-86.79")
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    a, b, c = stops
    stop_arrive(stop=a, driver=driver)
    stop_deliver(stop=a, driver=driver, photo=jpeg(), lat=HOME[0], lng=HOME[1])
    stop_arrive(stop=b, driver=driver)
    stop_fail(stop=b, driver=driver, reason="refused")
    stop_deliver(stop=c, driver=driver, photo=jpeg())
    batch_complete(batch=batch, driver=driver)
    assert batch.status == Batch.Status.RETURNING
    assert [s.status for s in batch.stops.order_by("sequence")] == ["delivered", "failed", "delivered"]
    assert list(
        Order.objects.filter(stops__batch=batch).order_by("stops__sequence").values_list("status", flat=True)
    ) == ["delivered", "undeliverable", "delivered"]


def test_no_photo_is_left_behind_when_the_delivery_fails_late(store, driver, media_root):
    # the photo is saved before the transaction; a failure inside it removes the file again
    batch, (first, _) = make_batch(store, driver)
    with mock.patch.object(delivery, "order_set_status", side_effect=RuntimeError("boom")):
        with pytest.raises(RuntimeError):
            stop_deliver(stop=first, driver=driver, photo=jpeg())
    first.refresh_from_db()
    assert first.status == Stop.Status.PENDING and stored_files(media_root) == []


# --- races ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_stop_deliver_it_once(media_root):
    """The phone re-sends while the first upload is still in flight (or two taps): one
    delivery, one event, one stored photo, and every call answers without an error."""
    import threading

    from django.db import connection

    from stores.tests.factories import StoreFactory

    driver = DriverFactory()
    batch, (first, _) = make_batch(StoreFactory(), driver)
    uploads = [jpeg().read() for _ in range(6)]
    barrier = threading.Barrier(len(uploads))
    results: list = [None] * len(uploads)

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            stop = Stop.objects.select_related("batch").get(pk=first.pk)
            photo = SimpleUploadedFile("door.jpg", uploads[i], content_type="image/jpeg")
            results[i] = stop_deliver(stop=stop, driver=driver, photo=photo).status
        except BaseException as exc:  # the test inspects what each thread got
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(uploads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [Stop.Status.DELIVERED] * len(uploads), results
    first.refresh_from_db()
    assert first.events.filter(to_status=Stop.Status.DELIVERED).count() == 1
    assert first.order.events.filter(to_status=Order.Status.DELIVERED).count() == 1
    assert [p.relative_to(media_root).as_posix() for p in stored_files(media_root)] == [first.proof_photo.name]
