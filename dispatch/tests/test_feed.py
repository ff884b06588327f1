"""The driver's ranked route feed and the board: fit, ranking, pay, areas only, SQL vs exact."""

import json
import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from dispatch import route_fit
from dispatch.feed import board_for, route_feed
from drivers.models import Location, Route
from drivers.selectors import upcoming_slots_for
from drivers.tests.factories import DriverFactory, RouteFactory, SlotClaimFactory
from drivers.tests.helpers import KM_2_0, LNG, O_LAT, batch_on_meridian, store_at, trip
from orders.models import Batch, Order
from orders.tests.factories import BatchFactory, StopFactory
from payments.models import PayPolicy
from payments.services import pay_quote
from spark import geo
from stores.tests.factories import DeliverySlotFactory, StoreFactory, ZoneFactory

pytestmark = pytest.mark.django_db


def ids(feed) -> list[int]:
    return [c["batch_id"] for c in feed]


# --- Fit (same rule as route matches) ------------------------------------------------


def test_feed_includes_a_batch_at_the_detour_limit_and_not_beyond():
    # detour of the batch: 5782 m (see test_routes); a batch on the way: 0 m
    far = batch_on_meridian(store_at("36.080000"), "36.180000")
    on_the_way = batch_on_meridian(store_at("36.120000"), "36.180000")
    now = timezone.now()
    at_limit = trip(k=5782)
    below = trip(k=5781)
    feed = route_feed(at_limit.driver, now=now)
    assert ids(feed) == [on_the_way.pk, far.pk]
    assert [c["detour_m"] for c in feed] == [0, 5782]
    assert [c["rank"] for c in feed] == [1, 2]
    assert ids(route_feed(below.driver, now=now)) == [on_the_way.pk]


def test_feed_respects_arrive_by_to_the_second():
    far = batch_on_meridian(store_at("36.080000"), "36.180000")
    now = timezone.now()
    # 2661 s from O through the batch to D (see test_routes)
    assert far.pk in ids(route_feed(trip(k=10_000, arrive_by=now + timedelta(seconds=2661)).driver, now=now))
    assert far.pk not in ids(route_feed(trip(k=10_000, arrive_by=now + timedelta(seconds=2660)).driver, now=now))


def test_feed_shows_only_published_batches_of_the_zone():
    store = store_at("36.120000")
    shown = batch_on_meridian(store, "36.180000")
    batch_on_meridian(store, "36.170000", status=Batch.Status.DRAFT)
    assigned_to = DriverFactory()
    batch_on_meridian(store, "36.160000", status=Batch.Status.ASSIGNED, driver=assigned_to)
    elsewhere = ZoneFactory(name="Memphis", slug="memphis", center_lat=Decimal("36.1"), center_lng=LNG)
    batch_on_meridian(store_at("36.120000", zone=elsewhere), "36.180000")
    batch_on_meridian(store_at("36.120000", is_active=False), "36.180000")
    assert ids(route_feed(trip(k=50_000).driver, now=timezone.now())) == [shown.pk]


def test_online_feed_uses_the_last_position_and_the_reach():
    near = batch_on_meridian(store_at("36.080000"), "36.180000")  # 2891 m from O
    driver = DriverFactory(is_online=True, online_since=timezone.now())
    RouteFactory(
        driver=driver,
        mode=Route.Mode.ONLINE,
        origin_lat=O_LAT,
        origin_lng=LNG,
        dest_lat=None,
        dest_lng=None,
        max_detour_meters=KM_2_0,
    )
    [card] = route_feed(driver, now=timezone.now())
    assert (card["batch_id"], card["pickup_m"], card["detour_m"]) == (near.pk, KM_2_0, KM_2_0)
    # they drove 0.01 deg north: the store is now out of reach
    Location.objects.create(driver=driver, lat=Decimal("36.110000"), lng=LNG)
    assert route_feed(driver, now=timezone.now()) == []


def test_no_route_or_an_ended_trip_gives_an_empty_feed(driver):
    batch_on_meridian(store_at("36.120000"), "36.180000")
    assert route_feed(driver, now=timezone.now()) == []
    ended = trip(k=10_000, arrive_by=timezone.now() + timedelta(minutes=1))
    assert route_feed(ended.driver, now=timezone.now() + timedelta(minutes=2)) == []


def test_a_driver_leaving_later_only_sees_batches_they_can_pick_up_in_time():
    store = store_at("36.120000")
    now = timezone.now()
    # leaving in an hour; the store is 260 s from O
    later = trip(k=10_000, leave_after=now + timedelta(hours=1))
    ok = batch_on_meridian(store, "36.180000", pickup_by=now + timedelta(hours=1, seconds=260))
    missed = batch_on_meridian(store, "36.170000", pickup_by=now + timedelta(hours=1, seconds=259))
    no_deadline = batch_on_meridian(store, "36.160000")
    assert set(ids(route_feed(later.driver, now=now))) == {ok.pk, no_deadline.pk}
    # someone available now still sees the late one: it needs a driver most of all
    assert missed.pk in ids(route_feed(trip(k=10_000).driver, now=now))


# --- Ranking -------------------------------------------------------------------------


def test_feed_ranks_by_pay_per_hour_when_the_detour_is_equal():
    store = store_at("36.120000")
    low, high = batch_on_meridian(store, "36.180000"), batch_on_meridian(store, "36.180000")
    # same trip, the customer of `high` tips $20 instead of $5
    Order.objects.filter(stops__batch=high).update(tip_cents=2000)
    feed = route_feed(trip(k=1000).driver, now=timezone.now())
    assert ids(feed) == [high.pk, low.pk]
    assert feed[0]["pay_per_hour_cents"] > feed[1]["pay_per_hour_cents"]
    assert feed[0]["pay_total_cents"] - feed[1]["pay_total_cents"] == 1500


def test_feed_ranks_the_smaller_detour_first_when_the_pay_is_equal():
    # Same route length and pay; the second store is off the meridian, so it costs a detour.
    on_route = batch_on_meridian(store_at("36.120000"), "36.180000")
    off = StoreFactory(lat=Decimal("36.120000"), lng=Decimal("-86.790000"))
    off_route = BatchFactory(
        store=off,
        status=Batch.Status.PUBLISHED,
        route_meters=on_route.route_meters,
        route_seconds=on_route.route_seconds,
        last_stop_lat=Decimal("36.180000"),
        last_stop_lng=LNG,
        stops_count=1,
    )
    StopFactory(batch=off_route, sequence=1, order__lat=Decimal("36.180000"), order__lng=LNG)
    feed = route_feed(trip(k=10_000).driver, now=timezone.now())
    assert ids(feed) == [on_route.pk, off_route.pk]
    assert feed[0]["detour_m"] < feed[1]["detour_m"]
    assert feed[0]["pay_total_cents"] == feed[1]["pay_total_cents"]


def test_feed_limit():
    store = store_at("36.120000")
    for _ in range(5):
        batch_on_meridian(store, "36.180000")
    feed = route_feed(trip(k=1000).driver, now=timezone.now(), limit=3)
    assert [c["rank"] for c in feed] == [1, 2, 3]


# --- What a card shows ---------------------------------------------------------------


def test_feed_pay_is_the_pay_quote_with_incentive_heavy_and_tips():
    PayPolicy.objects.create(
        zone=ZoneFactory(),
        base_cents=500,
        per_stop_cents=175,
        per_mile_cents=65,
        heavy_order_cents=250,
        incentive_cap_cents=600,
    )
    store = store_at("36.120000")
    plain = batch_on_meridian(store, "36.180000")
    rich = batch_on_meridian(store, "36.170000", incentive_cents=900)  # above the cap of 600
    StopFactory(
        batch=rich,
        sequence=2,
        order__lat=Decimal("36.175000"),
        order__lng=LNG,
        order__is_heavy=True,
        order__tip_cents=1234,
    )
    feed = {c["batch_id"]: c for c in route_feed(trip(k=10_000).driver, now=timezone.now())}
    for batch in (plain, rich):
        batch.refresh_from_db()
        expected = pay_quote(batch=batch, incentive_cents=batch.incentive_cents)["total_cents"]
        assert feed[batch.pk]["pay_total_cents"] == expected
        assert feed[batch.pk]["pay_total"] == f"${expected // 100}.{expected % 100:02d}"
    assert feed[rich.pk]["heavy"] is True and feed[rich.pk]["stops_count"] == 2
    assert feed[rich.pk]["totes"] == 6


def test_feed_never_shows_an_exact_address_or_position():
    store = store_at("36.120000")
    batch = batch_on_meridian(store, "36.183457")
    Batch.objects.filter(pk=batch.pk).update(dispatch_stage=Batch.Stage.BOARD, board_at=timezone.now())
    order = batch.stops.get().order
    Order.objects.filter(pk=order.pk).update(
        lat=Decimal("36.183457"),
        lng=Decimal("-86.781234"),
        address_line1="742 Evergreen Terrace",
        address_line2="Apt 3B",
        customer_name="Marge Simpson",
        customer_phone="+16155550142",
        postal_code="37208",
    )
    order.refresh_from_db()
    driver = trip(k=10_000).driver
    for listing in (
        route_feed(driver, now=timezone.now()),
        board_for(driver, now=timezone.now()),
        board_for(DriverFactory(), now=timezone.now()),
    ):
        assert ids(listing) == [batch.pk]
        text = json.dumps(listing, default=str)
        for secret in (
            order.address_line1,
            "Evergreen",
            order.address_line2,
            order.customer_name,
            order.customer_phone,
            order.customer_email,
            str(order.lat),
            str(order.lng),
            "183457",
            "781234",
            order.tracking_token,
        ):
            assert secret not in text, secret
    [card] = route_feed(driver, now=timezone.now())
    [stop] = card["stops"]
    # the area: ZIP code and a point rounded to 0.01 degree (about a kilometre)
    assert (stop["postal_code"], stop["area_lat"], stop["area_lng"]) == ("37208", 36.18, -86.78)


def test_feed_runs_a_fixed_number_of_queries(django_assert_max_num_queries):
    store = store_at("36.120000")
    for _ in range(30):
        batch_on_meridian(store, "36.180000")
    driver = trip(k=10_000).driver
    driver = type(driver).objects.select_related("home_zone").get(pk=driver.pk)
    with django_assert_max_num_queries(4):
        assert len(route_feed(driver, now=timezone.now())) == 30


# --- SQL prefilter vs the exact rule ---------------------------------------------------


def test_sql_prefilter_never_drops_a_batch_the_exact_rule_keeps():
    """Random batches and trips around Nashville: the feed (SQL bounding box, equirectangular
    estimates, then the exact rule) returns exactly the batches a brute-force pass of the
    exact rule over every batch keeps, best first."""
    rng = random.Random(4)
    zone = ZoneFactory()
    c_lat, c_lng = float(zone.center_lat), float(zone.center_lng)

    def near(spread: float = 0.18) -> tuple[Decimal, Decimal]:
        return (
            Decimal(f"{c_lat + rng.uniform(-spread, spread):.6f}"),
            Decimal(f"{c_lng + rng.uniform(-spread, spread):.6f}"),
        )

    stores = [StoreFactory(zone=zone, lat=p[0], lng=p[1]) for p in (near(0.12) for _ in range(6))]
    batches = []
    for _ in range(300):
        store = rng.choice(stores)
        last = near()
        s, e = geo.Point.of(store.lat, store.lng), geo.Point.of(*last)
        out = geo.distance_m(s, e) + rng.randint(0, 6000)  # the stops before the last one add some
        batches.append(
            Batch(
                store=store,
                status=Batch.Status.PUBLISHED,
                last_stop_lat=last[0],
                last_stop_lng=last[1],
                stops_count=1,
                route_meters=out + geo.distance_m(e, s),
                route_seconds=round((out + geo.distance_m(e, s)) / 11.11) + 240,
            )
        )
    Batch.objects.bulk_create(batches)
    now = timezone.now()
    checked = 0
    for _ in range(25):
        o, d = near(), near()
        route = RouteFactory(
            driver=DriverFactory(),
            origin_lat=o[0],
            origin_lng=o[1],
            dest_lat=d[0],
            dest_lng=d[1],
            max_detour_meters=rng.choice([2000, 5000, 10_000, 20_000]),
            arrive_by=rng.choice([None, now + timedelta(minutes=rng.randint(30, 120))]),
        )
        here = geo.Point.of(route.origin_lat, route.origin_lng)
        expected = set()
        for b in Batch.objects.filter(status=Batch.Status.PUBLISHED).select_related("store"):
            shape = route_fit.BatchShape(
                store=geo.Point.of(b.store.lat, b.store.lng),
                last=geo.Point.of(b.last_stop_lat, b.last_stop_lng),
                route_meters=b.route_meters,
                route_seconds=b.route_seconds,
                pickup_by=b.pickup_by,
            )
            if route_fit.batch_fit(route, here, shape, now=now):
                expected.add(b.pk)
        feed = route_feed(route.driver, now=now, limit=1000)
        assert set(ids(feed)) == expected
        # best first: net pay per hour (pay less the vehicle cost of the detour) never rises
        net = [
            c["pay_per_hour_cents"] * (1 - route_fit.VEHICLE_CENTS_PER_KM * c["detour_m"] / 1000 / c["pay_total_cents"])
            for c in feed
        ]
        assert all(a >= b - 1 for a, b in zip(net, net[1:], strict=False))
        checked += len(expected)
    assert checked > 100  # the sample exercised the filter


# --- The board ------------------------------------------------------------------------


def test_board_lists_route_fits_first_then_the_rest_of_the_board():
    store = store_at("36.120000")
    far_store = store_at("36.300000")
    fits = batch_on_meridian(store, "36.180000", dispatch_stage=Batch.Stage.BOARD, board_at=timezone.now())
    rest = batch_on_meridian(
        far_store, "36.350000", dispatch_stage=Batch.Stage.BOARD, board_at=timezone.now() - timedelta(minutes=5)
    )
    batch_on_meridian(store, "36.170000", dispatch_stage=Batch.Stage.SLOT)  # still with slot holders
    driver = trip(k=1000).driver
    board = board_for(driver, now=timezone.now())
    assert [(c["batch_id"], c["fits_route"], c["rank"]) for c in board] == [(fits.pk, True, 1), (rest.pk, False, 2)]
    assert board[1]["detour_m"] is None
    # without a route: every board batch, oldest on the board first
    assert ids(board_for(DriverFactory(), now=timezone.now())) == [rest.pk, fits.pk]


# --- Slots list ------------------------------------------------------------------------


def test_upcoming_slots_show_my_claim_and_hide_started_slots_i_do_not_hold(driver):
    now = timezone.now()
    store = StoreFactory()
    upcoming = DeliverySlotFactory(store=store, starts_at=now + timedelta(hours=1), ends_at=now + timedelta(hours=3))
    mine_under_way = DeliverySlotFactory(
        store=store, starts_at=now - timedelta(minutes=20), ends_at=now + timedelta(hours=1)
    )
    DeliverySlotFactory(store=store, starts_at=now - timedelta(minutes=10), ends_at=now + timedelta(hours=1))
    DeliverySlotFactory(store=store, starts_at=now + timedelta(days=20), ends_at=now + timedelta(days=20, hours=2))
    claim = SlotClaimFactory(driver=driver, slot=mine_under_way)
    slots = upcoming_slots_for(driver, now=now)
    assert [s.pk for s in slots] == [mine_under_way.pk, upcoming.pk]
    assert slots[0].my_claim.pk == claim.pk and slots[1].my_claim is None
