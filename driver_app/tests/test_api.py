"""The driver API end to end through DRF: offers, board, claims, duty, slots, 403/404/409/410/429."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from dispatch import rounds
from dispatch.models import ClaimAttempt, Offer
from drivers.tests.factories import DriverFactory, SlotClaimFactory
from orders.batch_editing import batch_create, batch_publish
from orders.models import Batch
from orders.tests.factories import OrderFactory
from payments.tests.factories import PayPolicyFactory
from stores.tests.factories import DeliverySlotFactory, StoreFactory, ZoneFactory

API = "/api/v1/driver"


@pytest.fixture
def zone(db):
    z = ZoneFactory()
    PayPolicyFactory(zone=z)
    return z


@pytest.fixture
def store(zone):
    return StoreFactory(zone=zone, pickup_instructions="Park by the pickup sign", store_rules="ID at the desk")


def api_for(driver) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=driver.user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def published(store, *, alcohol=False):
    start = timezone.now() + timedelta(hours=1)
    orders = [
        OrderFactory(
            store=store,
            window_start=start,
            window_end=start + timedelta(hours=2),
            lat=Decimal("36.161234"),
            lng=Decimal("-86.781234"),
            contains_alcohol=alcohol,
            address_line1=f"{700 + i} Secret Lane",
        )
        for i in range(2)
    ]
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    batch.refresh_from_db()
    return batch


def holder_with_offer(store, zone, **kw):
    slot = DeliverySlotFactory(
        store=store, starts_at=timezone.now() - timedelta(minutes=5), ends_at=timezone.now() + timedelta(hours=2)
    )
    driver = SlotClaimFactory(driver=DriverFactory(home_zone=zone), slot=slot).driver
    batch = published(store, **kw)
    rounds.dispatch_advance(batch_id=batch.pk)
    return driver, batch, Offer.objects.get(batch=batch, driver=driver)


def test_offer_card_shows_pay_and_areas_but_no_address(store, zone):
    driver, batch, offer = holder_with_offer(store, zone, alcohol=True)
    res = api_for(driver).get(f"{API}/offers/")
    assert res.status_code == 200
    [card] = res.json()
    assert card["id"] == offer.pk and 0 < card["seconds_left"] <= 60
    assert card["pay"]["total_cents"] == offer.pay.total_cents and card["pay"]["total"].startswith("$")
    assert card["batch"]["alcohol"] is True and card["batch"]["stops_count"] == 2
    assert card["batch"]["store"]["store_rules"] == "ID at the desk"
    text = res.content.decode()
    assert "Secret Lane" not in text and "36.161234" not in text and "-86.781234" not in text
    assert card["batch"]["stops"][0]["area_lat"] == 36.16


def test_accept_and_the_rest_of_the_errors(store, zone):
    driver, batch, offer = holder_with_offer(store, zone)
    stranger = DriverFactory(home_zone=zone)
    assert api_for(stranger).post(f"{API}/offers/{offer.pk}/accept/").status_code == 404
    res = api_for(driver).post(f"{API}/offers/{offer.pk}/accept/")
    assert res.status_code == 200 and res.json()["status"] == "accepted"
    assert api_for(driver).post(f"{API}/offers/{offer.pk}/accept/").status_code == 200  # retry is fine
    batch.refresh_from_db()
    assert batch.driver_id == driver.pk


def test_expired_offer_is_410_and_changes_nothing(store, zone):
    driver, batch, offer = holder_with_offer(store, zone)
    Offer.objects.filter(pk=offer.pk).update(
        created_at=timezone.now() - timedelta(minutes=2), expires_at=timezone.now() - timedelta(seconds=1)
    )
    res = api_for(driver).post(f"{API}/offers/{offer.pk}/accept/")
    assert res.status_code == 410 and res.json()["code"] == "offer_expired"
    batch.refresh_from_db()
    assert batch.status == "published"


def test_decline_needs_a_listed_reason(store, zone):
    driver, batch, offer = holder_with_offer(store, zone)
    res = api_for(driver).post(f"{API}/offers/{offer.pk}/decline/", {"reason": "meh"}, format="json")
    assert res.status_code == 400 and "reason" in res.json()["fields"]
    res = api_for(driver).post(f"{API}/offers/{offer.pk}/decline/", {"reason": "too_far"}, format="json")
    assert res.status_code == 200 and res.json()["status"] == "declined"
    assert Offer.objects.get(pk=offer.pk).decline_reason == "too_far"


def test_board_and_claims(store, zone):
    batch = published(store)
    assert rounds.dispatch_advance(batch_id=batch.pk) == "board"
    a, b = DriverFactory(home_zone=zone), DriverFactory(home_zone=zone, is_online=True)
    board = api_for(a).get(f"{API}/board/").json()
    assert [item["batch_id"] for item in board] == [batch.pk]
    assert "Secret Lane" not in str(board)
    # Offline: the board is there to look at, claiming needs going online in the zone first.
    res = api_for(a).post(f"{API}/batches/{batch.pk}/claim/")
    assert res.status_code == 403 and res.json()["code"] == "not_online"
    assert res.json()["detail"] == f"Go online in {zone.name} to claim this batch."
    assert not ClaimAttempt.objects.filter(batch=batch).exists()
    a.is_online = True
    a.save(update_fields=["is_online"])
    res = api_for(a).post(f"{API}/batches/{batch.pk}/claim/")
    assert res.status_code == 202 and res.json()["status"] == "pooled"
    Batch.objects.filter(pk=batch.pk).update(board_at=timezone.now() - timedelta(seconds=10))
    res = api_for(b).post(f"{API}/batches/{batch.pk}/claim/")
    # The pool is settled first (a wins, the only pooled claim), so b arrives too late.
    assert res.status_code == 409 and res.json()["code"] == "batch_taken"
    batch.refresh_from_db()
    assert batch.driver_id == a.pk


def test_claims_are_rate_limited_with_retry_after(store, zone):
    zone.claim_rate_per_minute = 3
    zone.save()
    driver = DriverFactory(home_zone=zone)
    client = api_for(driver)
    codes = [client.post(f"{API}/batches/999999/claim/").status_code for _ in range(4)]
    assert codes[:3] == [404, 404, 404] and codes[3] == 429
    res = client.post(f"{API}/batches/999999/claim/")
    assert res.status_code == 429 and int(res["Retry-After"]) > 0
    assert res.json()["code"] == "throttled"


@pytest.mark.parametrize(
    ("status", "reason", "words"),
    [
        ("suspended", "documents_expired", "License or insurance expired"),
        ("applicant", "", "not approved yet"),
        ("deactivated", "fraud", "Suspected fraud"),
    ],
)
def test_drivers_who_cannot_work_get_403_with_the_reason(zone, status, reason, words):
    driver = DriverFactory(home_zone=zone, status=status, reason_code=reason)
    for method, path in [("get", "/offers/"), ("get", "/board/"), ("post", "/online/"), ("get", "/slots/")]:
        res = getattr(api_for(driver), method)(f"{API}{path}", {"lat": "36.16", "lng": "-86.78"}, format="json")
        assert res.status_code == 403, path
        assert words.lower() in res.json()["detail"].lower(), res.json()


def test_non_drivers_and_anonymous_are_refused(store, associate):
    assert APIClient().get(f"{API}/offers/").status_code == 401
    client = APIClient()
    client.force_authenticate(associate)
    assert client.get(f"{API}/offers/").status_code == 403


def test_duty_route_and_location(store, zone):
    driver = DriverFactory(home_zone=zone)
    client = api_for(driver)
    assert client.post(f"{API}/location/", {"lat": "36.16", "lng": "-86.78"}, format="json").status_code == 400
    assert client.post(f"{API}/online/", {"lat": "36.16", "lng": "-86.78"}, format="json").status_code == 200
    assert (
        client.post(f"{API}/location/", {"lat": "36.161", "lng": "-86.781", "accuracy_m": 8}, format="json").status_code
        == 200
    )
    driver.refresh_from_db()
    assert driver.is_online and driver.location.accuracy_m == 8
    bad = client.put(
        f"{API}/route/",
        {
            "origin_lat": "36.16",
            "origin_lng": "-86.78",
            "dest_lat": "29.95",
            "dest_lng": "-90.07",
            "max_detour_meters": 5000,
        },
        format="json",
    )
    assert bad.status_code == 400  # destination outside the zone
    ok = client.put(
        f"{API}/route/",
        {
            "origin_lat": "36.16",
            "origin_lng": "-86.78",
            "dest_lat": "36.20",
            "dest_lng": "-86.70",
            "max_detour_meters": 5000,
        },
        format="json",
    )
    assert ok.status_code == 200 and ok.json()["max_detour_meters"] == 5000
    assert client.post(f"{API}/offline/").status_code == 200
    driver.refresh_from_db()
    assert not driver.is_online


def test_slots_list_claim_cancel_and_check_in(store, zone):
    driver = DriverFactory(home_zone=zone)
    client = api_for(driver)
    later = DeliverySlotFactory(
        store=store,
        starts_at=timezone.now() + timedelta(hours=5),
        ends_at=timezone.now() + timedelta(hours=7),
        capacity=2,
    )
    now_slot = DeliverySlotFactory(
        store=store,
        starts_at=timezone.now() + timedelta(minutes=10),
        ends_at=timezone.now() + timedelta(hours=2),
        capacity=2,
    )
    listed = {s["id"]: s for s in client.get(f"{API}/slots/").json()}
    assert listed[later.pk]["seats_free"] == 2 and listed[later.pk]["my_claim"] is None
    assert client.post(f"{API}/slots/{later.pk}/claim/").status_code == 200
    mine = {s["id"]: s for s in client.get(f"{API}/slots/").json()}[later.pk]
    assert mine["my_claim"] is not None and mine["seats_free"] == 1
    res = client.post(f"{API}/slots/{later.pk}/cancel/")
    assert res.status_code == 200 and res.json()["status"] == "cancelled"
    assert client.post(f"{API}/slots/{now_slot.pk}/claim/").status_code == 200
    far = client.post(f"{API}/slots/{now_slot.pk}/check-in/", {"lat": "36.20", "lng": "-86.79"}, format="json")
    assert far.status_code == 400 and "You are 3.5 miles from the store" in far.json()["detail"]
    near = client.post(
        f"{API}/slots/{now_slot.pk}/check-in/", {"lat": str(store.lat), "lng": str(store.lng)}, format="json"
    )
    assert near.status_code == 200 and near.json()["status"] == "checked_in"
    other_zone_slot = DeliverySlotFactory(store=StoreFactory(zone=ZoneFactory(name="NOLA", slug="nola")))
    assert client.post(f"{API}/slots/{other_zone_slot.pk}/claim/").status_code == 404


def test_every_driver_endpoint_is_in_the_schema(client):
    paths = client.get("/api/schema/?format=json").json()["paths"]
    for p in [
        "offers/",
        "offers/{offer_id}/accept/",
        "offers/{offer_id}/decline/",
        "board/",
        "batches/{batch_id}/claim/",
        "route/",
        "online/",
        "offline/",
        "location/",
        "slots/",
        "slots/{slot_id}/claim/",
        "slots/{slot_id}/cancel/",
        "slots/{slot_id}/check-in/",
    ]:
        assert f"/api/v1/driver/{p}" in paths, p


def test_dispatch_log_shows_my_offers_and_how_they_ended(store, zone):
    driver, batch, offer = holder_with_offer(store, zone)
    api_for(driver).post(f"{API}/offers/{offer.pk}/decline/", {"reason": "too_far"}, format="json")
    other, _, _ = holder_with_offer(StoreFactory(zone=zone), zone)  # someone else's offer elsewhere
    log = api_for(driver).get(f"{API}/dispatch-log/").json()
    assert [(e["offer_id"], e["status"], e["decline_reason"]) for e in log] == [(offer.pk, "declined", "too_far")]
    assert "slot" in log[0]["why"] and log[0]["pay_total_cents"] > 0 and log[0]["ended_at"]
    assert all(e["offer_id"] != offer.pk for e in api_for(other).get(f"{API}/dispatch-log/").json())


@pytest.mark.django_db
def test_route_leaving_in_the_year_12_is_refused(zone):
    """Found by schemathesis: it was kept, and echoed with Chicago's pre-1883 offset
    (-05:50:36), which breaks the documented date-time format."""
    driver = DriverFactory(home_zone=zone)
    res = api_for(driver).put(
        f"{API}/route/",
        {
            "origin_lat": 36.15,
            "origin_lng": -86.79,
            "dest_lat": 36.2,
            "dest_lng": -86.7,
            "leave_after": "0012-01-01T07:12:20Z",
            "max_detour_meters": 180,
        },
        format="json",
    )
    assert res.status_code == 400 and res.json()["code"] == "bad_time"
    assert list(res.json()["fields"]) == ["leave_after"]
    assert not driver.routes.exists()


def test_going_offline_is_refused_while_a_batch_is_active(store, zone):
    batch = published(store)
    assert rounds.dispatch_advance(batch_id=batch.pk) == "board"
    Batch.objects.filter(pk=batch.pk).update(board_at=timezone.now() - timedelta(seconds=10))
    driver = DriverFactory(home_zone=zone)
    client = api_for(driver)
    assert client.post(f"{API}/online/", {"lat": "36.16", "lng": "-86.78"}, format="json").status_code == 200
    assert client.post(f"{API}/batches/{batch.pk}/claim/").json()["status"] == "assigned"
    res = client.post(f"{API}/offline/")
    assert res.status_code == 409 and res.json()["code"] == "batch_in_progress"
    assert "can't go offline during a batch" in res.json()["detail"]
    driver.refresh_from_db()
    assert driver.is_online is True
    assert driver.routes.filter(is_active=True, mode="online").exists()
    res = client.post(f"{API}/offline/", HTTP_ACCEPT_LANGUAGE="es")
    assert res.json()["detail"].startswith("No puedes desconectarte durante un lote.")


def test_a_late_batch_is_marked_and_pays_the_late_incentive(store, zone):
    """Once its pickup time has passed, the board, the offers and the active batch say "late",
    and the pay shown includes the incentive the dispatch sweep added (the zone's cap)."""
    batch = published(store)
    rounds.dispatch_advance(batch_id=batch.pk)
    driver = DriverFactory(home_zone=zone, is_online=True)
    client = api_for(driver)
    [card] = client.get(f"{API}/board/").json()
    assert card["late"] is False
    on_time_pay = card["pay_total_cents"]
    Batch.objects.filter(pk=batch.pk).update(pickup_by=timezone.now() - timedelta(minutes=1))
    rounds.dispatch_sweep()
    [card] = client.get(f"{API}/board/").json()
    assert card["late"] is True
    assert card["pay_total_cents"] == on_time_pay + zone.pay_policy.incentive_cap_cents
    Batch.objects.filter(pk=batch.pk).update(board_at=timezone.now() - timedelta(minutes=1))
    claimed = client.post(f"{API}/batches/{batch.pk}/claim/").json()
    assert claimed["status"] == "assigned" and claimed["batch"]["late"] is True
    offer = Offer.objects.get(batch=batch, driver=driver)
    assert offer.pay.incentive_cents == zone.pay_policy.incentive_cap_cents
    assert client.get(f"{API}/batches/{batch.pk}/").json()["late"] is True
