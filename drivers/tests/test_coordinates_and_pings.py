"""Coordinates come in with as many decimals as the phone's GPS gives: every endpoint rounds
them half-up to the six the columns keep (spark.geo), none refuses them. A driver's location
pings are rate-limited per driver (drivers.location_gate): one stored every few seconds, a
hard cap a minute answered 429 with Retry-After, and a cache that is down never fails a ping."""

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import cache
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from drivers.models import Location, Route, SlotClaim
from drivers.tests.factories import DriverFactory, SlotClaimFactory
from orders.models import BatchEvent, StopEvent
from orders.tests.helpers import jpeg, make_batch
from spark.errors import DomainError
from spark.geo import coordinate, round_coordinate
from stores.tests.factories import DeliverySlotFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/driver"
STEP = Decimal("0.000001")


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def api_for(driver) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=driver.user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def tie(value: Decimal) -> str:
    """`value` with a seventh decimal 5: half-up rounds away from zero, half-even would not."""
    return f"{value:.6f}5"


def up(value: Decimal) -> Decimal:
    return value + STEP if value >= 0 else value - STEP


def near(store) -> tuple[Decimal, Decimal]:
    return store.lat, store.lng  # x.xxxxx0: the tie rounds to ...1 half-up, to ...0 half-even


# --- every way coordinates come in ----------------------------------------------------------------


def test_location_and_going_online_round_instead_of_refusing(store):
    driver = DriverFactory(home_zone=store.zone)
    client = api_for(driver)
    lat, lng = near(store)
    res = client.post(f"{API}/online/", {"lat": tie(lat), "lng": tie(lng)}, format="json")
    assert res.status_code == 200, res.json()
    assert Route.objects.get(driver=driver, is_active=True).origin_lat == up(lat)
    assert (Location.objects.get(driver=driver).lat, Location.objects.get(driver=driver).lng) == (up(lat), up(lng))
    cache.clear()  # the ping interval is another test's business
    res = client.post(
        f"{API}/location/", {"lat": tie(lat + 100 * STEP), "lng": tie(lng), "accuracy_m": 5}, format="json"
    )
    assert res.status_code == 200, res.json()
    assert Location.objects.get(driver=driver).lat == up(lat + 100 * STEP)
    assert res.json()["location"]["lat"] == float(up(lat + 100 * STEP))


def test_route_rounds_instead_of_refusing(store):
    driver = DriverFactory(home_zone=store.zone)
    lat, lng = near(store)
    res = api_for(driver).put(
        f"{API}/route/",
        {
            "origin_lat": tie(lat),
            "origin_lng": tie(lng),
            "dest_lat": tie(lat + Decimal("0.01")),
            "dest_lng": tie(lng),
            "max_detour_meters": 3000,
        },
        format="json",
    )
    assert res.status_code == 200, res.json()
    route = Route.objects.get(driver=driver, is_active=True)
    assert (route.origin_lat, route.origin_lng, route.dest_lat) == (up(lat), up(lng), up(lat + Decimal("0.01")))


def test_slot_check_in_rounds_instead_of_refusing(store):
    driver = DriverFactory(home_zone=store.zone)
    slot = DeliverySlotFactory(
        store=store, starts_at=timezone.now() + timedelta(minutes=10), ends_at=timezone.now() + timedelta(hours=2)
    )
    claim = SlotClaimFactory(driver=driver, slot=slot)
    lat, lng = near(store)
    res = api_for(driver).post(f"{API}/slots/{slot.pk}/check-in/", {"lat": tie(lat), "lng": tie(lng)}, format="json")
    assert res.status_code == 200, res.json()
    assert SlotClaim.objects.get(pk=claim.pk).status == SlotClaim.Status.CHECKED_IN


def test_delivery_steps_round_half_up(store, driver, other_driver):
    batch, stops = make_batch(store, other_driver, n=3, picked_up=False)
    lat, lng = near(store)
    body = {"lat": tie(lat), "lng": tie(lng)}
    assert api_for(other_driver).post(f"{API}/batches/{batch.pk}/arrive/", body, format="json").status_code == 200
    event = BatchEvent.objects.filter(batch=batch, to_status="at_store").get()
    assert (event.lat, event.lng) == (up(lat), up(lng))

    client = api_for(driver)
    batch, (first, second, third) = make_batch(store, driver, n=3)
    assert client.post(f"{API}/stops/{first.pk}/arrive/", body, format="json").status_code == 200
    assert (
        client.post(f"{API}/stops/{first.pk}/deliver/", {"photo": jpeg(), **body}, format="multipart").status_code
        == 200
    )
    assert (
        client.post(f"{API}/stops/{second.pk}/fail/", {"reason": "no_one_home", **body}, format="json").status_code
        == 200
    )
    events = StopEvent.objects.filter(stop__in=[first, second]).exclude(lat=None)
    assert {(e.to_status, e.lat, e.lng) for e in events} == {
        ("arrived", up(lat), up(lng)),
        ("delivered", up(lat), up(lng)),
        ("failed", up(lat), up(lng)),
    }


def test_order_intake_rounds_the_address_coordinates(store):
    from store_api.serializers import AddressSerializer

    data = AddressSerializer(
        data={
            "line1": "501 Broadway",
            "city": "Nashville",
            "state": "TN",
            "postal_code": "37203",
            "lat": "36.1605005",
            "lng": "-86.7770005",
        }
    )
    assert data.is_valid(), data.errors
    assert (data.validated_data["lat"], data.validated_data["lng"]) == (Decimal("36.160501"), Decimal("-86.777001"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lat": "91", "lng": "-86.78"}, "lat"),
        ({"lat": "36.16", "lng": "-180.0000006"}, "lng"),
        ({"lat": "NaN", "lng": "-86.78"}, "lat"),
        ({"lat": "north", "lng": "-86.78"}, "lat"),
        ({"lat": "1e400", "lng": "-86.78"}, "lat"),
        ({"lat": True, "lng": "-86.78"}, "lat"),
    ],
)
def test_bad_coordinates_are_still_a_400_on_the_field(store, body, field):
    driver = DriverFactory(home_zone=store.zone)
    res = api_for(driver).post(f"{API}/online/", body, format="json")
    assert res.status_code == 400 and field in res.json()["fields"], res.json()
    assert not Location.objects.filter(driver=driver).exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("36.1627775", "36.162778"),
        ("36.1627765", "36.162777"),
        ("-86.7816005", "-86.781601"),
        (" 36.16 ", "36.160000"),
        (36.1627765, "36.162777"),
        (36, "36.000000"),
        (Decimal("1.0000004"), "1.000000"),
    ],
)
def test_round_coordinate_is_half_up_to_six_places(value, expected):
    assert round_coordinate(value) == Decimal(expected)


@pytest.mark.parametrize("value", [None, "", "abc", "NaN", "Infinity", "1e400", True, [1]])
def test_round_coordinate_refuses_what_is_not_a_number(value):
    with pytest.raises(ValueError):
        round_coordinate(value)


def test_coordinate_checks_the_range_per_axis():
    assert coordinate("-180", axis="lng") == Decimal("-180.000000")
    with pytest.raises(DomainError) as err:
        coordinate("-180", axis="lat", field="origin_lat")
    assert err.value.code == "invalid_coordinate" and "origin_lat" in err.value.fields


# --- location pings: interval, cap, cache down ---------------------------------------------------------


@pytest.fixture
def online(store):
    driver = DriverFactory(home_zone=store.zone)
    client = api_for(driver)
    assert client.post(f"{API}/online/", {"lat": "36.150000", "lng": "-86.790000"}, format="json").status_code == 200
    return driver, client


def ping(client, lat: str, accuracy_m: int = 5):
    return client.post(f"{API}/location/", {"lat": lat, "lng": "-86.790000", "accuracy_m": accuracy_m}, format="json")


def test_a_ping_sooner_than_the_interval_is_answered_but_not_written(online, settings):
    settings.SPARK_LOCATION_MIN_INTERVAL_SECONDS = 5
    driver, client = online
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        first = ping(client, "36.151000", 7)
        assert first.status_code == 200 and first.json()["status"] == "recorded"
    with time_machine.travel(start + timedelta(seconds=2), tick=False):
        soon = ping(client, "36.152000", 9)
    # then the answer is a 200 with the stored position, and nothing was written
    assert soon.status_code == 200 and soon.json()["status"] == "kept"
    assert soon.json()["location"]["lat"] == 36.151 and soon.json()["location"]["accuracy_m"] == 7
    loc = Location.objects.get(driver=driver)
    assert (loc.lat, loc.accuracy_m) == (Decimal("36.151000"), 7)
    # after the interval the next one is stored
    with time_machine.travel(start + timedelta(seconds=6), tick=False):
        later = ping(client, "36.153000")
    assert later.status_code == 200 and later.json()["status"] == "recorded"
    assert Location.objects.get(driver=driver).lat == Decimal("36.153000")


def test_past_the_cap_a_minute_pings_get_429_with_retry_after(online, settings):
    settings.SPARK_LOCATION_MIN_INTERVAL_SECONDS = 0
    settings.SPARK_LOCATION_MAX_PER_MINUTE = 3
    driver, client = online
    start = timezone.now().replace(second=10)
    with time_machine.travel(start, tick=False):
        assert [ping(client, f"36.15{i}000").status_code for i in range(3)] == [200, 200, 200]
        refused = ping(client, "36.159000")
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 50
    assert Location.objects.get(driver=driver).lat == Decimal("36.152000")  # the refused one changed nothing
    # another driver is not affected, and the next minute starts afresh
    other = api_for(DriverFactory(home_zone=driver.home_zone))
    assert other.post(f"{API}/online/", {"lat": "36.15", "lng": "-86.79"}, format="json").status_code == 200
    with time_machine.travel(start, tick=False):
        assert ping(other, "36.151000").status_code == 200
    with time_machine.travel(start + timedelta(seconds=60), tick=False):
        assert ping(client, "36.158000").status_code == 200


def test_a_cache_that_is_down_never_fails_a_ping(online, settings):
    driver, client = online
    # nothing listens on port 1: every cache call fails at once
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    settings.SPARK_LOCATION_MAX_PER_MINUTE = 1
    answers = [ping(client, f"36.15{i}000") for i in range(3)]
    assert [(r.status_code, r.json()["status"]) for r in answers] == [(200, "recorded")] * 3
    assert Location.objects.get(driver=driver).lat == Decimal("36.152000")
