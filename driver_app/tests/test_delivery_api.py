"""The delivery API end to end through DRF: my active batch (exact addresses only while
they may be seen), check-in, arrive, deliver (multipart photo, ID check), fail, complete,
and every bad input as a clear 4xx that changes nothing. Another driver's batch is a 404."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from drivers.models import Driver, SlotClaim
from drivers.tests.factories import DriverFactory
from orders.delivery import batch_complete, batch_handoff, stop_deliver
from orders.models import Batch, Order, Stop
from orders.returns import order_return_check_in
from orders.tests.helpers import HOME, jpeg, make_batch, north_of, slot_seat, snapshot, stored_files

pytestmark = pytest.mark.django_db

API = "/api/v1/driver"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def api_for(driver) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=driver.user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def years_ago(store, years: int) -> date:
    """The date `years` years before today in the store's timezone (29 Feb -> 28 Feb)."""
    from zoneinfo import ZoneInfo

    today = timezone.localdate(timezone=ZoneInfo(store.zone.timezone))
    try:
        return today.replace(year=today.year - years)
    except ValueError:
        return date(today.year - years, 2, 28)


def deliver(client, stop, **fields):
    body = {"photo": jpeg(), **fields}
    body = {k: v for k, v in body.items() if v is not None}
    return client.post(f"{API}/stops/{stop.pk}/deliver/", body, format="multipart")


# --- reading my batch -------------------------------------------------------------------


def test_no_active_batch_is_a_404(driver):
    res = api_for(driver).get(f"{API}/batches/active/")
    assert res.status_code == 404 and res.json()["code"] == "not_found"


def test_active_batch_shows_pickup_code_store_and_exact_stops_in_order(store, driver, other_driver):
    store.pickup_instructions = "Pickup door on the left"
    store.save()
    batch, stops = make_batch(store, driver, n=3, picked_up=False)
    make_batch(store, other_driver, picked_up=False)  # someone else's: never shown to me
    res = api_for(driver).get(f"{API}/batches/active/")
    assert res.status_code == 200
    body = res.json()
    assert body["batch_id"] == batch.pk and body["status"] == "assigned"
    assert body["pickup_code"] == batch.pickup_code and body["addresses_visible"] is True
    assert body["store"]["pickup_instructions"] == "Pickup door on the left"
    assert body["store"]["lat"] == float(store.lat)
    assert [s["id"] for s in body["stops"]] == [s.pk for s in stops]
    assert [s["sequence"] for s in body["stops"]] == [1, 2, 3]
    first = body["stops"][0]
    order = stops[0].order
    assert first["address_line1"] == "700 Secret Lane" and first["customer_name"] == order.customer_name
    assert first["lat"] == float(order.lat)
    # the customer's number never: the driver calls through a masked one (orders.contact)
    assert "customer_phone" not in first and order.customer_phone not in res.content.decode()
    assert first["totes"] == order.totes and first["alcohol"] is False and first["status"] == "pending"
    assert body["next_stop_id"] is None  # not picked up yet


def test_after_pickup_the_pickup_code_is_gone_and_the_next_stop_is_named(store, driver):
    batch, (first, second) = make_batch(store, driver)
    body = api_for(driver).get(f"{API}/batches/active/").json()
    assert body["status"] == "picked_up" and body["pickup_code"] is None
    assert body["next_stop_id"] == first.pk


def test_another_drivers_batch_is_a_404(store, driver, other_driver):
    batch, _ = make_batch(store, other_driver)
    res = api_for(driver).get(f"{API}/batches/{batch.pk}/")
    assert res.status_code == 404
    assert "Secret Lane" not in res.content.decode()


def test_exact_addresses_only_until_24_hours_after_close(store, driver, settings):
    settings.SPARK_ADDRESS_VISIBLE_HOURS = 24
    batch, stops = make_batch(store, driver)
    Order.objects.filter(stops__batch=batch).update(lat=Decimal("36.161234"), lng=Decimal("-86.781234"))
    for stop in stops:
        stop_deliver(stop=stop, driver=driver, photo=jpeg())
    batch_complete(batch=batch, driver=driver)
    client = api_for(driver)
    # closed an hour ago: still visible (the driver may need to answer a question)
    Batch.objects.filter(pk=batch.pk).update(closed_at=timezone.now() - timedelta(hours=1))
    body = client.get(f"{API}/batches/{batch.pk}/").json()
    assert body["addresses_visible"] is True and body["stops"][0]["address_line1"] == "700 Secret Lane"
    assert client.get(f"{API}/batches/active/").status_code == 404  # completed is not active
    # closed 25 hours ago: areas only
    Batch.objects.filter(pk=batch.pk).update(closed_at=timezone.now() - timedelta(hours=25))
    res = client.get(f"{API}/batches/{batch.pk}/")
    body = res.json()
    assert res.status_code == 200 and body["addresses_visible"] is False
    text = res.content.decode()
    order = stops[0].order
    for secret in ("Secret Lane", order.customer_name, order.customer_phone, "36.1612", "86.7812"):
        assert secret not in text
    stop = body["stops"][0]
    assert stop["address_line1"] is None and stop["customer_name"] is None and stop["lat"] is None
    assert stop["postal_code"] == order.postal_code and (stop["area_lat"], stop["area_lng"]) == (36.16, -86.78)
    assert stop["status"] == "delivered" and stop["has_proof_photo"] is True


def test_only_active_drivers(store, driver):
    make_batch(store, driver)
    Driver.objects.filter(pk=driver.pk).update(status=Driver.Status.SUSPENDED)
    assert api_for(driver).get(f"{API}/batches/active/").status_code == 403


# --- check-in at the store ------------------------------------------------------------


def test_check_in_with_the_phone_position(store, driver):
    batch, _ = make_batch(store, driver, picked_up=False)
    client = api_for(driver)
    res = client.post(f"{API}/batches/{batch.pk}/arrive/", {"lat": "36.1500004", "lng": "-86.79"}, format="json")
    assert res.status_code == 200 and res.json()["status"] == "at_store"
    event = batch.events.get(to_status="at_store")
    assert (event.lat, event.lng) == (Decimal("36.150000"), Decimal("-86.790000"))
    again = client.post(f"{API}/batches/{batch.pk}/arrive/", {"lat": "36.15", "lng": "-86.79"}, format="json")
    assert again.status_code == 200 and batch.events.filter(to_status="at_store").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lat": "91", "lng": "0"}, "lat"),
        ({"lat": "36.1"}, None),
        ({"lat": "north", "lng": "0"}, "lat"),
    ],
)
def test_check_in_with_a_bad_position_changes_nothing(store, driver, body, field):
    batch, _ = make_batch(store, driver, picked_up=False)
    res = api_for(driver).post(f"{API}/batches/{batch.pk}/arrive/", body, format="json")
    assert res.status_code == 400
    if field:
        assert field in res.json()["fields"]
    else:
        assert "both lat and lng" in res.json()["detail"]
    batch.refresh_from_db()
    assert batch.status == Batch.Status.ASSIGNED


def test_check_in_on_another_drivers_batch_is_a_404(store, driver, other_driver):
    batch, _ = make_batch(store, other_driver, picked_up=False)
    res = api_for(driver).post(f"{API}/batches/{batch.pk}/arrive/", {}, format="json")
    assert res.status_code == 404
    batch.refresh_from_db()
    assert batch.status == Batch.Status.ASSIGNED


def test_check_in_far_from_the_store_is_a_400_with_the_distance_in_miles(store, driver):
    batch, _ = make_batch(store, driver, picked_up=False)
    seat = slot_seat(store, driver)
    before = snapshot(batch)
    lat, lng = north_of(store, 10_000)
    res = api_for(driver).post(f"{API}/batches/{batch.pk}/arrive/", {"lat": lat, "lng": lng}, format="json")
    assert res.status_code == 400 and res.json()["code"] == "too_far"
    assert res.json()["detail"].startswith("You are 6.2 miles from the store; check in within 820 feet of it")
    assert snapshot(batch) == before
    seat.refresh_from_db()
    assert seat.status == SlotClaim.Status.CLAIMED


def test_check_in_without_location_is_a_400_that_says_to_ask_an_associate(store, driver):
    batch, _ = make_batch(store, driver, picked_up=False)
    res = api_for(driver).post(f"{API}/batches/{batch.pk}/arrive/", {}, format="json")
    assert res.status_code == 400 and res.json()["code"] == "location_required"
    assert "ask an associate to confirm you are here" in res.json()["detail"]
    batch.refresh_from_db()
    assert batch.status == Batch.Status.ASSIGNED


def test_slot_check_in_far_away_is_a_400_and_at_the_store_checks_in_the_batch_too(store, driver):
    batch, _ = make_batch(store, driver, picked_up=False)
    seat = slot_seat(store, driver)
    client = api_for(driver)
    url = f"{API}/slots/{seat.slot_id}/check-in/"
    far = client.post(url, dict(zip(("lat", "lng"), north_of(store, 10_000), strict=True)), format="json")
    assert far.status_code == 400 and "You are 6.2 miles from the store" in far.json()["detail"]
    bare = client.post(url, {}, format="json")
    assert bare.status_code == 400 and bare.json()["code"] == "location_required"
    batch.refresh_from_db()
    assert batch.status == Batch.Status.ASSIGNED
    near = client.post(url, {"lat": str(store.lat), "lng": str(store.lng)}, format="json")
    assert near.status_code == 200 and near.json()["status"] == "checked_in"
    assert client.get(f"{API}/batches/{batch.pk}/").json()["status"] == "at_store"


# --- stops ------------------------------------------------------------------------------


def test_arrive_before_pickup_is_a_409_and_changes_nothing(store, driver):
    batch, (first, _) = make_batch(store, driver, picked_up=False)
    before = snapshot(batch)
    res = api_for(driver).post(f"{API}/stops/{first.pk}/arrive/", {}, format="json")
    assert res.status_code == 409 and res.json()["code"] == "not_picked_up"
    assert "before pickup" in res.json()["detail"]
    assert snapshot(batch) == before


def test_arrive_in_order_then_out_of_order(store, driver):
    batch, (first, second, third) = make_batch(store, driver, n=3)
    client = api_for(driver)
    res = client.post(f"{API}/stops/{third.pk}/arrive/", {}, format="json")
    assert res.status_code == 409 and res.json()["code"] == "out_of_order"
    res = client.post(f"{API}/stops/{first.pk}/arrive/", {"lat": 36.16, "lng": -86.78}, format="json")
    assert res.status_code == 200
    assert res.json()["stops"][0]["status"] == "arrived" and res.json()["next_stop_id"] == first.pk
    before = snapshot(batch)
    assert client.post(f"{API}/stops/{first.pk}/arrive/", {}, format="json").status_code == 200
    assert snapshot(batch) == before


def test_actions_on_another_drivers_stops_are_404s(store, driver, other_driver, media_root):
    batch, (first, _) = make_batch(store, other_driver)
    before = snapshot(batch)
    client = api_for(driver)
    for res in (
        client.post(f"{API}/stops/{first.pk}/arrive/", {}, format="json"),
        deliver(client, first),
        client.post(f"{API}/stops/{first.pk}/fail/", {"reason": "no_one_home"}, format="json"),
        client.post(f"{API}/batches/{batch.pk}/complete/", {}, format="json"),
    ):
        assert res.status_code == 404 and res.json()["code"] == "not_found"
    assert snapshot(batch) == before and stored_files(media_root) == []


def test_deliver_with_a_photo(store, driver, media_root):
    batch, (first, second) = make_batch(store, driver)
    client = api_for(driver)
    res = deliver(client, first, lat=str(HOME[0]), lng=str(HOME[1]))
    assert res.status_code == 200, res.json()
    body = res.json()
    assert body["stops"][0]["status"] == "delivered" and body["stops"][0]["distance_from_address_m"] == 0
    assert body["stops"][0]["has_proof_photo"] is True and body["next_stop_id"] == second.pk
    first.refresh_from_db()
    assert first.order.status == Order.Status.DELIVERED
    [path] = stored_files(media_root)
    img = Image.open(path)
    assert img.format == "JPEG" and len(img.getexif()) == 0 and "exif" not in img.info
    # the phone re-sends (it missed our answer): 200, nothing changes, no second file
    before = snapshot(batch)
    again = deliver(client, first)
    assert again.status_code == 200 and snapshot(batch) == before and len(stored_files(media_root)) == 1


def test_deliver_before_pickup_is_a_409(store, driver, media_root):
    batch, (first, _) = make_batch(store, driver, picked_up=False)
    before = snapshot(batch)
    res = deliver(api_for(driver), first)
    assert res.status_code == 409 and res.json()["code"] == "not_picked_up"
    assert snapshot(batch) == before and stored_files(media_root) == []


def test_deliver_out_of_order_is_a_409(store, driver, media_root):
    batch, (_, second) = make_batch(store, driver)
    before = snapshot(batch)
    res = deliver(api_for(driver), second)
    assert res.status_code == 409 and res.json()["code"] == "out_of_order"
    assert snapshot(batch) == before and stored_files(media_root) == []


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


@pytest.mark.parametrize(
    ("photo", "code"),
    [
        (lambda: SimpleUploadedFile("door.jpg", PDF, content_type="image/jpeg"), "not_an_image"),
        (
            lambda: SimpleUploadedFile("door.jpg", b"hello, not a photo\n" * 10, content_type="image/jpeg"),
            "not_an_image",
        ),
        (lambda: jpeg(size=(900, 700)), "photo_too_large"),
    ],
    ids=["pdf-as-jpg", "text-as-jpg", "too-large"],
)
def test_a_bad_photo_is_a_400_and_changes_nothing(store, driver, settings, media_root, photo, code):
    settings.SPARK_PHOTO_MAX_BYTES = 2048
    batch, (first, _) = make_batch(store, driver)
    before = snapshot(batch)
    res = deliver(api_for(driver), first, photo=photo())
    assert res.status_code == 400 and res.json()["code"] == code
    assert res.json()["fields"]["photo"]
    assert snapshot(batch) == before and stored_files(media_root) == []


def test_deliver_without_a_photo_is_a_400(store, driver):
    batch, (first, _) = make_batch(store, driver)
    before = snapshot(batch)
    res = api_for(driver).post(
        f"{API}/stops/{first.pk}/deliver/", {"lat": "36.16", "lng": "-86.78"}, format="multipart"
    )
    assert res.status_code == 400 and "photo" in res.json()["fields"]
    assert snapshot(batch) == before


def test_deliver_takes_multipart_only(store, driver):
    _, (first, _) = make_batch(store, driver)
    res = api_for(driver).post(f"{API}/stops/{first.pk}/deliver/", {"photo": "x"}, format="json")
    assert res.status_code == 415


def test_alcohol_needs_the_id_check(store, driver, media_root):
    batch, (first, _) = make_batch(store, driver, alcohol=True)
    client = api_for(driver)
    before = snapshot(batch)
    res = deliver(client, first)
    assert res.status_code == 400 and res.json()["code"] == "id_required"
    assert set(res.json()["fields"]) == {"id_birth_date", "id_photo"}
    res = deliver(client, first, id_birth_date=years_ago(store, 20).isoformat(), id_photo=jpeg("id.jpg"))
    assert res.status_code == 400 and res.json()["code"] == "under_21"
    assert "Alcohol refused" in res.json()["detail"]
    res = deliver(client, first, id_birth_date="not-a-date", id_photo=jpeg("id.jpg"))
    assert res.status_code == 400 and "id_birth_date" in res.json()["fields"]
    assert snapshot(batch) == before and stored_files(media_root) == []
    # then the refusal path
    res = client.post(f"{API}/stops/{first.pk}/fail/", {"reason": "refused_alcohol"}, format="json")
    assert res.status_code == 200 and res.json()["stops"][0]["failure_reason"] == "refused_alcohol"


def test_alcohol_to_someone_exactly_21_today(store, driver):
    born = years_ago(store, 21)
    _, (first, _) = make_batch(store, driver, alcohol=True)
    res = deliver(api_for(driver), first, id_birth_date=born.isoformat(), id_photo=jpeg("id.jpg"))
    assert res.status_code == 200, res.json()
    first.refresh_from_db()
    assert first.status == Stop.Status.DELIVERED and first.id_checked and first.id_birth_date == born
    assert first.id_photo


def test_a_delivery_far_from_the_address_is_recorded_not_blocked(store, driver, settings):
    settings.SPARK_DELIVERY_MAX_DISTANCE_M = 250
    _, (first, _) = make_batch(store, driver)
    res = deliver(api_for(driver), first, lat=str(HOME[0] + Decimal("0.00576")), lng=str(HOME[1]))
    assert res.status_code == 200
    distance = res.json()["stops"][0]["distance_from_address_m"]
    assert 630 <= distance <= 650
    first.refresh_from_db()
    assert first.status == Stop.Status.DELIVERED
    reason = first.events.get(to_status="delivered").reason
    assert reason.startswith(f"delivered {distance} m from the address")


def test_fail_with_a_reason_and_bad_reasons(store, driver):
    batch, (first, _) = make_batch(store, driver)
    client = api_for(driver)
    before = snapshot(batch)
    for body in ({}, {"reason": "bored"}):
        res = client.post(f"{API}/stops/{first.pk}/fail/", body, format="json")
        assert res.status_code == 400 and "reason" in res.json()["fields"]
    assert snapshot(batch) == before
    res = client.post(f"{API}/stops/{first.pk}/fail/", {"reason": "no_one_home"}, format="json")
    assert res.status_code == 200 and res.json()["stops"][0]["status"] == "failed"
    before = snapshot(batch)
    assert client.post(f"{API}/stops/{first.pk}/fail/", {"reason": "no_one_home"}, format="json").status_code == 200
    assert snapshot(batch) == before


# --- complete -----------------------------------------------------------------------------


def test_complete_lists_what_is_left_then_completes(store, driver):
    batch, (first, second) = make_batch(store, driver)
    client = api_for(driver)
    deliver(client, first)
    before = snapshot(batch)
    res = client.post(f"{API}/batches/{batch.pk}/complete/", {}, format="json")
    assert res.status_code == 409 and res.json()["code"] == "stops_left"
    assert res.json()["fields"]["stops"] == ["Stop 2: 701 Secret Lane"]
    assert snapshot(batch) == before
    deliver(client, second)
    res = client.post(f"{API}/batches/{batch.pk}/complete/", {}, format="json")
    assert res.status_code == 200 and res.json()["status"] == "completed" and res.json()["closed_at"]
    before = snapshot(batch)
    assert client.post(f"{API}/batches/{batch.pk}/complete/", {}, format="json").status_code == 200
    assert snapshot(batch) == before


def test_the_whole_trip_through_the_api(store, driver, associate):
    batch, (first, second) = make_batch(store, driver, picked_up=False)
    client = api_for(driver)
    assert (
        client.post(f"{API}/batches/{batch.pk}/arrive/", {"lat": "36.15", "lng": "-86.79"}, format="json").status_code
        == 200
    )
    batch_handoff(batch=batch, pickup_code=batch.pickup_code, actor=associate)
    assert client.get(f"{API}/batches/active/").json()["next_stop_id"] == first.pk
    assert client.post(f"{API}/stops/{first.pk}/arrive/", {}, format="json").status_code == 200
    assert deliver(client, first, lat="36.16", lng="-86.78").status_code == 200
    assert client.post(f"{API}/stops/{second.pk}/arrive/", {}, format="json").status_code == 200
    assert client.post(f"{API}/stops/{second.pk}/fail/", {"reason": "no_one_home"}, format="json").status_code == 200
    res = client.post(f"{API}/batches/{batch.pk}/complete/", {}, format="json")
    assert res.status_code == 200 and res.json()["status"] == "returning"
    # still my active batch until the associate checks the return in
    assert client.get(f"{API}/batches/active/").json()["batch_id"] == batch.pk
    order_return_check_in(order=second.order, reason="no_one_home", actor=associate)
    assert client.get(f"{API}/batches/active/").status_code == 404
    assert client.get(f"{API}/batches/{batch.pk}/").json()["status"] == "returned"


def test_no_driver_sees_another_drivers_new_stop_ids(store, driver):
    # stop ids are sequential; guessing one of someone else's must not reveal anything
    stranger = DriverFactory()
    _, (first, _) = make_batch(store, stranger)
    res = api_for(driver).post(f"{API}/stops/{first.pk + 1000}/arrive/", {}, format="json")
    assert res.status_code == 404
    res = api_for(driver).post(f"{API}/stops/{first.pk}/arrive/", {}, format="json")
    assert res.status_code == 404 and "Secret Lane" not in res.content.decode()
