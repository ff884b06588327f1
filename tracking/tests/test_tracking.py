"""The customer's tracking page /t/<token>, its status.json and the delivery photo.

Every stage of an order (received, preparing, picked up heading elsewhere / here, delivered,
cancelled, undeliverable) through the foundation's services; what the customer may see (driver's
first name and vehicle, an approximate position only while the driver heads to this customer) and
what they never see (the driver's last name, phone, plate; other customers); the per-IP rate
limit; privacy headers; and the token-checked photo.
"""

import json
import math
import re
import secrets
from datetime import timedelta
from decimal import Decimal
from html import escape

import pytest
import time_machine
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from orders.cancellation import order_cancel
from orders.models import Order, Stop
from orders.tests.helpers import (
    DRIVER_LAST_NAME,
    DRIVER_PHONE,
    DRIVER_PLATE,
    HOMES,
    NOW,
    Trip,
    arrive,
    deliver,
    jpeg_bytes,
    make_trip,
    put_driver_at,
)
from orders.tracking import approximate_position
from orders.transitions import order_set_status, stop_set_status
from spark import geo
from stores.tests.factories import ZoneFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def denver(db):
    return ZoneFactory(
        name="Denver",
        slug="denver",
        timezone="America/Denver",
        center_lat=Decimal("39.7392"),
        center_lng=Decimal("-104.9903"),
    )


def page(client, order: Order, **extra):
    return client.get(reverse("tracking", args=[order.tracking_token]), **extra)


def status_json(client, order: Order, **extra):
    return client.get(reverse("tracking-status", args=[order.tracking_token]), **extra)


def both(client, order: Order) -> tuple[str, dict, str]:
    """(page HTML, status.json body, raw JSON text)."""
    res = page(client, order)
    assert res.status_code == 200
    js = status_json(client, order)
    assert js.status_code == 200
    return res.content.decode(), js.json(), js.content.decode()


def embedded_state(html: str) -> dict:
    match = re.search(r'<script id="trk-state" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page embeds its initial state for tracking.js"
    return json.loads(match.group(1))


def steps(state: dict) -> dict:
    return {s["key"]: (s["state"], s["time"]) for s in state["timeline"]}


def assert_private(html: str, raw_json: str, trip: Trip, me: int) -> None:
    """Nothing about the driver beyond first name + vehicle, nothing about the other customers."""
    for text in (html, raw_json):
        assert DRIVER_LAST_NAME not in text
        assert DRIVER_PHONE not in text and DRIVER_PLATE not in text
        if trip.driver:
            assert trip.driver.user.email not in text
        for i, other in enumerate(trip.orders):
            if i == me:
                continue
            assert other.customer_name not in text and other.address_line1 not in text
            assert other.tracking_token not in text
            assert str(other.lat) not in text and str(other.lng) not in text


def assert_private_headers(res) -> None:
    assert res["Referrer-Policy"] == "same-origin"  # never to another site; our forms need their Origin
    assert "noindex" in res["X-Robots-Tag"]


# --- Stages ---------------------------------------------------------------------------------


def test_received_shows_the_window_in_the_store_zone_and_no_driver(client, denver):
    # given an order just received by a Denver store
    trip = make_trip(denver, stops=1, until="received")
    order = trip.orders[0]
    # when the customer opens the link
    html, state, raw = both(client, order)
    # then: received now, the delivery window as the estimate, in Denver time (not Chicago's)
    assert state["status"] == "received" and state["headline"] == "We have your order"
    assert steps(state) == {
        "received": ("current", "12:00 PM"),
        "preparing": ("todo", ""),
        "on_the_way": ("todo", ""),
        "delivered": ("todo", ""),
    }
    assert state["eta"]["kind"] == "window" and state["eta"]["text"] == "3:00 PM – 5:00 PM"
    assert state["driver"] is None and state["position"] is None and state["delivered"] is None
    assert state["poll"] is True
    assert "3:00 PM – 5:00 PM" in html and '<meta name="robots" content="noindex' in html
    assert 'id="trk-map-card" class="card trk-card" hidden' in html


def test_batched_is_preparing_without_a_driver(client, denver):
    trip = make_trip(denver, stops=2, until="batched")
    html, state, raw = both(client, trip.orders[0])
    assert state["status"] == "batched" and state["status_label"] == "Preparing"
    assert steps(state)["preparing"] == ("current", "12:00 PM")
    assert steps(state)["received"][0] == "done"
    assert state["driver"] is None and state["position"] is None
    assert state["eta"]["kind"] == "window"
    assert_private(html, raw, trip, me=0)


def test_assigned_shows_first_name_and_vehicle_but_never_a_position_before_pickup(client, denver):
    # given a published batch a driver took, and the driver's phone reporting a fresh position
    trip = make_trip(denver, stops=2, until="assigned")
    put_driver_at(trip.driver, "39.745123", "-104.985321")
    # when the customer looks
    html, state, raw = both(client, trip.orders[0])
    # then they see who is coming in what car, still "preparing", and no position
    assert state["status"] == "ready" and state["status_label"] == "Preparing"
    assert state["driver"] == {
        "first_name": "Dana",
        "vehicle": "Blue Toyota Corolla",
        "text": "Dana will pick up your order at the store.",
    }
    assert state["position"] is None
    assert "Dana" in html and "Blue Toyota Corolla" in html
    assert "39.745123" not in html + raw and "39.745" not in raw
    assert_private(html, raw, trip, me=0)


def test_picked_up_heading_to_this_customer_shows_an_approximate_position(client, denver):
    # given a picked-up batch whose first stop is this customer, and a fresh driver position
    trip = make_trip(denver, stops=2)
    exact = ("39.746789", "-104.983456")
    put_driver_at(trip.driver, *exact, age=timedelta(seconds=20))
    # when the first customer looks
    html, state, raw = both(client, trip.orders[0])
    # then the driver heads to them: the position is on the map, rounded to ~200 m
    assert state["status"] == "picked_up" and state["headline"] == "Your driver is heading to you"
    assert steps(state)["on_the_way"] == ("current", "12:00 PM")
    pos = state["position"]
    assert pos is not None and pos["radius_m"] == 200
    off_m = geo.haversine_m(geo.Point.of(*exact), geo.Point(pos["lat"], pos["lng"]))
    assert 0 < off_m <= 200 * 0.75
    assert (pos["lat"], pos["lng"]) != (float(exact[0]), float(exact[1]))
    for text in (html, raw):
        assert exact[0] not in text and exact[1] not in text and "39.74678" not in text
    assert 'id="trk-map-card" class="card trk-card">' in html  # not hidden
    assert state["driver"]["text"] == "Dana is delivering your order."
    assert state["stops_before"] == 0
    assert_private(html, raw, trip, me=0)


def test_picked_up_but_driver_at_an_earlier_stop_shows_no_position(client, denver):
    # given the driver standing at the first customer's door
    trip = make_trip(denver, stops=2)
    arrive(trip.stop(0))
    put_driver_at(trip.driver, HOMES[0][0], HOMES[0][1])
    # when the second customer looks
    html, state, raw = both(client, trip.orders[1])
    # then: on the way, one stop first, an estimate, but no position (it would reveal the other home)
    assert state["status"] == "picked_up"
    assert state["headline"] == "On the way: 1 stop before yours"
    assert state["position"] is None
    assert state["eta"]["kind"] == "estimate"
    assert 'id="trk-map-card" class="card trk-card" hidden' in html
    assert_private(html, raw, trip, me=1)


def test_next_customer_gets_the_position_once_the_earlier_stop_is_delivered(client, denver):
    trip = make_trip(denver, stops=3)
    deliver(trip.stop(0))
    put_driver_at(trip.driver, "39.751111", "-104.979999")
    _, second, _ = both(client, trip.orders[1])
    _, third, raw3 = both(client, trip.orders[2])
    assert second["position"] is not None and second["headline"] == "Your driver is heading to you"
    assert third["position"] is None and third["stops_before"] == 1
    assert "39.75111" not in raw3


def test_arrived_at_this_customer(client, denver):
    trip = make_trip(denver, stops=1)
    arrive(trip.stop(0))
    put_driver_at(trip.driver, HOMES[0][0], HOMES[0][1])
    _, state, _ = both(client, trip.orders[0])
    assert state["headline"] == "Your driver has arrived"
    assert state["eta"]["kind"] == "arrived" and state["position"] is not None


def test_stale_driver_position_is_not_shown(client, denver):
    trip = make_trip(denver, stops=1)
    put_driver_at(trip.driver, "39.745000", "-104.985000", age=timedelta(minutes=30))
    _, state, _ = both(client, trip.orders[0])
    assert state["position"] is None
    assert state["eta"]["kind"] == "estimate"  # from the store: no recent position


def test_eta_is_drive_time_through_earlier_stops_plus_four_minutes_each(client, denver):
    # given the driver near the store with two stops before the third customer
    trip = make_trip(denver, stops=3)
    here = geo.Point(39.7420, -104.9880)
    put_driver_at(trip.driver, here.lat, here.lng)
    # when the third customer looks
    _, state, _ = both(client, trip.orders[2])
    # then the estimate is now + drive (driver -> home 1 -> home 2 -> home 3) + 2 x 4 min
    homes = [geo.Point.of(*h) for h in HOMES]
    seconds = geo.route_s([here, *homes]) + 2 * 240
    expected = NOW + timedelta(minutes=math.ceil(seconds / 60))
    assert state["eta"]["at"] == expected.isoformat()
    assert state["eta"]["minutes"] == math.ceil(seconds / 60)
    local = timezone.localtime(expected, timezone.get_fixed_timezone(-360))
    assert state["eta"]["text"] == f"Around {local:%-I:%M} PM"


def test_eta_never_in_the_past_and_falls_back_to_the_window_when_unbelievable(client, denver):
    trip = make_trip(denver, stops=1)
    put_driver_at(trip.driver, HOMES[0][0], HOMES[0][1])  # already at the door, not yet "arrived"
    _, state, _ = both(client, trip.orders[0])
    assert state["eta"]["minutes"] == 1
    put_driver_at(trip.driver, "36.160000", "-86.780000")  # a bad fix 1,500 km away
    _, state, _ = both(client, trip.orders[0])
    assert state["eta"]["kind"] == "window"


def test_delivered_shows_photo_and_time_and_never_a_position(client, denver):
    # given the order delivered with a photo, and the driver's phone still reporting nearby
    trip = make_trip(denver, stops=2)
    with time_machine.travel(NOW + timedelta(minutes=25), tick=False):
        deliver(trip.stop(0))
        put_driver_at(trip.driver, "39.750500", "-104.980500")
        html, state, raw = both(client, trip.orders[0])
    # then: delivered at 12:25 PM Denver time, the photo link, no position, polling stops
    assert state["status"] == "delivered" and state["headline"] == "Delivered at 12:25 PM"
    assert steps(state)["delivered"] == ("current", "12:25 PM")
    assert state["delivered"]["time"] == "12:25 PM"
    photo_url = reverse("tracking-photo", args=[trip.orders[0].tracking_token])
    assert state["delivered"]["photo_url"] == photo_url
    assert state["position"] is None and state["eta"] is None and state["poll"] is False
    assert f'src="{photo_url}"' in html
    assert "/media/" not in html and "proof/" not in html + raw  # never the storage path
    assert state["driver"]["text"] == "Delivered by Dana."
    assert_private(html, raw, trip, me=0)


def test_cancelled_and_undeliverable_end_the_timeline(client, denver):
    trip = make_trip(denver, stops=2, until="received")
    order_cancel(order=trip.orders[0], reason="customer changed their mind")
    _, state, _ = both(client, trip.orders[0])
    assert [s["key"] for s in state["timeline"]] == ["received", "cancelled"]
    assert state["timeline"][-1]["state"] == "current" and state["poll"] is False
    assert state["eta"] is None

    trip = make_trip(denver, stops=1)
    stop = trip.stop(0)
    stop_set_status(stop=stop, to=Stop.Status.FAILED, updates={"failure_reason": "no_one_home"})
    order_set_status(order=trip.orders[0], to=Order.Status.UNDELIVERABLE)
    put_driver_at(trip.driver, HOMES[0][0], HOMES[0][1])
    _, state, _ = both(client, trip.orders[0])
    assert state["status_label"] == "Could not be delivered"
    assert state["timeline"][-1]["key"] == "undeliverable" and state["position"] is None


def test_tip_shows_the_current_tip_and_promises_no_raise_it_cannot_do(client, denver):
    # An order without a saved card (no Tip row here: made by the factory) cannot be raised from
    # the page, and the page no longer says it can.
    trip = make_trip(denver, stops=1, until="received")
    html, state, _ = both(client, trip.orders[0])
    assert state["tip"] == {"cents": 650, "text": "$6.50", "note": "", "can_raise": False}
    assert "$6.50" in html and "add to your tip" not in html
    assert "<form" not in html


# --- status.json mirrors the page -----------------------------------------------------------------


@pytest.mark.parametrize("stage", ["received", "assigned", "heading_here", "elsewhere", "delivered"])
def test_status_json_mirrors_the_page(client, denver, stage):
    until = "received" if stage == "received" else "assigned" if stage == "assigned" else "picked_up"
    trip = make_trip(denver, stops=2, until=until)
    if trip.driver:
        put_driver_at(trip.driver, "39.748000", "-104.982000")
    me = 1 if stage == "elsewhere" else 0
    if stage == "delivered":
        deliver(trip.stop(0))
    html, state, raw = both(client, trip.orders[me])
    # the page embeds exactly what status.json returns, and shows it
    assert embedded_state(html) == state
    shown = [state["headline"], state["tip"]["text"]]
    shown += [state["eta"]["text"]] if state["eta"] else []
    shown += [state["driver"]["text"], state["driver"]["vehicle"]] if state["driver"] else []
    shown += [state["delivered"]["time"]] if state["delivered"] else []
    for step in state["timeline"]:
        shown += [step["label"], step["time"]]
    for text in shown:
        assert escape(text) in html, text
    assert ("hidden" not in html.split('id="trk-map-card"')[1].split(">")[0]) == (state["position"] is not None)
    assert_private(html, raw, trip, me=me)


def test_position_grid_hides_small_moves_and_stays_within_150_m():
    import random

    rng = random.Random(7)
    for _ in range(500):
        lat, lng = 39.7 + rng.random() * 0.1, -105.0 + rng.random() * 0.1
        snapped = approximate_position(f"{lat:.6f}", f"{lng:.6f}")
        assert geo.haversine_m(geo.Point(lat, lng), geo.Point(snapped["lat"], snapped["lng"])) <= 150
        # every point near a cell's centre shows as that centre: moves of a few metres are invisible
        nudged = approximate_position(snapped["lat"] + 0.00003, snapped["lng"] - 0.00003)
        assert (nudged["lat"], nudged["lng"]) == (snapped["lat"], snapped["lng"])


# --- Not found, headers, rate limit ------------------------------------------------------------


def test_unknown_token_is_a_plain_404_that_leaks_nothing(client, denver):
    trip = make_trip(denver, stops=1, until="received")
    unknown = secrets.token_urlsafe(32)
    pages = [
        client.get(reverse("tracking", args=[unknown])),
        client.get(reverse("tracking", args=["x"])),
        client.get(reverse("tracking", args=[trip.orders[0].tracking_token[:-1]])),
    ]
    for res in pages:
        assert res.status_code == 404
        assert_private_headers(res)
        body = res.content.decode()
        assert '<meta name="robots" content="noindex' in body
        assert trip.store.name not in body and unknown not in body
    assert pages[0].content == pages[2].content
    res = client.get(reverse("tracking-status", args=[unknown]))
    assert res.status_code == 404 and res.json()["code"] == "not_found"
    assert_private_headers(res)
    assert client.get(reverse("tracking-photo", args=[unknown])).status_code == 404


def test_privacy_headers_on_every_response(client, denver):
    trip = make_trip(denver, stops=1)
    deliver(trip.stop(0))
    token = trip.orders[0].tracking_token
    for name in ("tracking", "tracking-status", "tracking-photo"):
        res = client.get(reverse(name, args=[token]))
        assert res.status_code == 200, name
        assert_private_headers(res)
    assert client.get(reverse("tracking", args=[token]))["Cache-Control"] == "no-store"
    assert client.post(reverse("tracking", args=[token])).status_code == 405


def test_rate_limited_per_client_ip_with_retry_after(client, denver, settings):
    settings.SPARK_TRACKING_RATE_LIMIT = 3
    trip = make_trip(denver, stops=1, until="received")
    order = trip.orders[0]
    # page and JSON count together, per IP
    assert page(client, order).status_code == 200
    assert status_json(client, order).status_code == 200
    assert page(client, order).status_code == 200
    res = page(client, order)
    assert res.status_code == 429
    assert 1 <= int(res["Retry-After"]) <= 60
    assert_private_headers(res)
    res = status_json(client, order)
    assert res.status_code == 429 and res.json()["code"] == "rate_limited" and int(res["Retry-After"]) > 0
    # unknown tokens are limited too (guessing costs requests)
    assert client.get(reverse("tracking", args=[secrets.token_urlsafe(32)])).status_code == 429
    # a spoofed X-Forwarded-For does not reset the count: no proxy is trusted here
    assert page(client, order, HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 429
    # another client is not affected
    assert page(client, order, REMOTE_ADDR="198.51.100.7").status_code == 200
    # the next window starts afresh
    with time_machine.travel(NOW + timedelta(seconds=61), tick=False):
        assert page(client, order).status_code == 200


def test_rate_limit_behind_a_trusted_proxy_uses_the_forwarded_address(client, denver, settings):
    settings.SPARK_TRACKING_RATE_LIMIT = 1
    settings.SPARK_TRUSTED_PROXIES = 1
    order = make_trip(denver, stops=1, until="received").orders[0]
    assert page(client, order, HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 200
    assert page(client, order, HTTP_X_FORWARDED_FOR="203.0.113.1").status_code == 429
    assert page(client, order, HTTP_X_FORWARDED_FOR="203.0.113.2").status_code == 200


# --- The photo ------------------------------------------------------------------------------


def test_photo_is_served_for_the_right_token_after_delivery_only(client, denver):
    trip = make_trip(denver, stops=2)
    first, second = trip.orders
    photo_for = lambda o: client.get(reverse("tracking-photo", args=[o.tracking_token]))  # noqa: E731
    # before delivery: nothing, even if a photo were already attached to the stop
    assert photo_for(first).status_code == 404
    arrive(trip.stop(0))
    name = default_storage.save("proof/test/early.jpg", ContentFile(jpeg_bytes()))
    Stop.objects.filter(pk=trip.stop(0).pk).update(proof_photo=name)
    assert photo_for(first).status_code == 404
    # after delivery: the photo, inline, to this token only
    Stop.objects.filter(pk=trip.stop(0).pk).update(proof_photo="")
    deliver(trip.stop(0))
    res = photo_for(first)
    assert res.status_code == 200 and res["Content-Type"] == "image/jpeg"
    assert b"".join(res.streaming_content) == jpeg_bytes()
    assert res["Content-Disposition"].startswith("inline")
    assert "no-store" not in res["Cache-Control"] and "private" in res["Cache-Control"]
    assert_private_headers(res)
    # the other customer's token does not reach it (not delivered yet)...
    assert photo_for(second).status_code == 404
    # ...nor after their own delivery without a photo
    deliver(trip.stop(1), photo=False)
    assert photo_for(second).status_code == 404
    _, state, _ = both(client, second)
    assert state["delivered"]["photo_url"] is None


def test_missing_photo_file_is_a_404_not_a_500(client, denver):
    trip = make_trip(denver, stops=1)
    name = deliver(trip.stop(0))
    default_storage.delete(name)
    assert client.get(reverse("tracking-photo", args=[trip.orders[0].tracking_token])).status_code == 404
