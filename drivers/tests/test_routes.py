"""Routes and duty (route_set, online/offline, location) and the dispatcher's selectors
(driver_work_refusal, slot_holders_for, route_matches_for) on hand-checked geometry."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from dispatch.candidates import route_matches_for, slot_holders_for
from dispatch.tests.factories import OfferFactory
from drivers.models import Driver, Location, Route, SlotClaim
from drivers.selectors import driver_work_refusal
from drivers.services import driver_go_offline, driver_go_online, location_record, route_set
from drivers.tests.factories import DriverFactory, RouteFactory, SlotClaimFactory
from drivers.tests.helpers import D_LAT, KM_2_0, LNG, O_LAT, batch_on_meridian, store_at, trip
from orders.models import Batch
from orders.tests.factories import BatchFactory
from payments.services import pay_quote
from spark.errors import Conflict, DomainError, NotPermitted
from stores.tests.factories import DeliverySlotFactory, ZoneFactory

# Noon in the test stores' zone (America/Chicago): batches a test closed an hour ago fall on
# the same local day whenever the suite runs (just after midnight Central they did not).
CENTRAL_NOON = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)

KM_6_0 = 8673  # 0.06 deg
KM_10_0 = 14455  # 0.10 deg


def point(lat) -> dict:
    return {"lat": Decimal(lat), "lng": LNG}


# --- driver_work_refusal -------------------------------------------------------------


@pytest.mark.django_db
def test_driver_work_refusal_reasons():
    today = timezone.localdate()
    assert driver_work_refusal(DriverFactory()) is None
    assert driver_work_refusal(DriverFactory(status="suspended", reason_code="safety")) == (
        "Your account is suspended: Safety report under review."
    )
    assert "not approved yet (screening)" in driver_work_refusal(DriverFactory(status="screening"))
    assert "driver's license expired on" in driver_work_refusal(
        DriverFactory(license_expires_on=today - timedelta(days=3))
    )
    assert "insurance expired on" in driver_work_refusal(DriverFactory(insurance_expires_on=today - timedelta(days=1)))
    assert "no insurance on file" in driver_work_refusal(DriverFactory(insurance_expires_on=None))
    # valid through the expiry day
    assert driver_work_refusal(DriverFactory(license_expires_on=today)) is None


# --- route_set -----------------------------------------------------------------------


def _route_args(**over) -> dict:
    args = {
        "origin_lat": O_LAT,
        "origin_lng": LNG,
        "dest_lat": D_LAT,
        "dest_lng": LNG,
        "max_detour_meters": 5000,
    }
    return {**args, **over}


@pytest.mark.django_db
def test_route_set_replaces_the_active_route(driver):
    first = route_set(driver=driver, **_route_args())
    assert (first.mode, first.is_active, first.zone_id) == (Route.Mode.TRIP, True, driver.home_zone_id)
    # the same route again: nothing changes
    assert route_set(driver=driver, **_route_args()).pk == first.pk
    # a new one replaces it in the same transaction
    second = route_set(
        driver=driver, **_route_args(max_detour_meters=8000, arrive_by=timezone.now() + timedelta(hours=2))
    )
    assert second.pk != first.pk
    assert list(Route.objects.filter(driver=driver, is_active=True)) == [second]
    first.refresh_from_db()
    assert first.is_active is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"origin_lat": Decimal("29.951100"), "origin_lng": Decimal("-90.071500")}, "starting point is"),
        ({"dest_lat": Decimal("36.700000")}, "destination is"),
        ({"origin_lat": "north"}, "origin_lat must be a number"),
        ({"dest_lng": Decimal("-200")}, "dest_lng must be a number between -180 and 180"),
        ({"max_detour_meters": 50_001}, "0 to 31.1 mi"),
        ({"max_detour_meters": -1}, "0 to 31.1 mi"),
        ({"max_detour_meters": 2.5}, "0 to 31.1 mi"),
        ({"arrive_by": "past"}, "arrive-by time has passed"),
        ({"arrive_by": "before-leave"}, "Arrive-by must be after leave-after"),
        # Found by schemathesis: a trip "leaving after" the year 12 was kept and echoed back
        # with Chicago's pre-1883 offset (-05:50:36), which is not an RFC 3339 date-time.
        ({"leave_after": "year 12"}, "leave_after must be between a day ago and 14 days from now"),
        ({"leave_after": "2 days ago"}, "leave_after must be between a day ago and 14 days from now"),
        ({"arrive_by": "in 15 days"}, "arrive_by must be between a day ago and 14 days from now"),
    ],
)
def test_route_set_validation_changes_nothing(driver, over, message):
    kept = route_set(driver=driver, **_route_args())
    now = timezone.now()
    if over.get("arrive_by") == "past":
        over = {"arrive_by": now - timedelta(minutes=1)}
    elif over.get("arrive_by") == "before-leave":
        over = {"leave_after": now + timedelta(hours=2), "arrive_by": now + timedelta(hours=1)}
    elif over.get("leave_after") == "year 12":
        over = {"leave_after": datetime(12, 1, 1, 7, 12, 20, tzinfo=UTC)}
    elif over.get("leave_after") == "2 days ago":
        over = {"leave_after": now - timedelta(days=2)}
    elif over.get("arrive_by") == "in 15 days":
        over = {"arrive_by": now + timedelta(days=15)}
    with pytest.raises(DomainError, match=message):
        route_set(driver=driver, **_route_args(**over))
    assert list(Route.objects.filter(driver=driver, is_active=True)) == [kept]


@pytest.mark.django_db
def test_route_set_bounds_are_inclusive(driver):
    assert route_set(driver=driver, **_route_args(max_detour_meters=0)).max_detour_meters == 0
    assert route_set(driver=driver, **_route_args(max_detour_meters=50_000)).max_detour_meters == 50_000


@pytest.mark.django_db
def test_route_times_within_the_horizon_are_kept(driver):
    now = timezone.now()
    route = route_set(
        driver=driver,
        **_route_args(leave_after=now - timedelta(hours=23), arrive_by=now + timedelta(days=13, hours=23)),
    )
    assert route.leave_after == now - timedelta(hours=23)


@pytest.mark.django_db
def test_route_set_needs_a_driver_who_may_work():
    driver = DriverFactory(status=Driver.Status.SUSPENDED, reason_code="documents_expired")
    with pytest.raises(NotPermitted, match="License or insurance expired"):
        route_set(driver=driver, **_route_args())
    assert not Route.objects.filter(driver=driver).exists()


# --- Online / offline / location -----------------------------------------------------


@pytest.mark.django_db
def test_go_online_creates_an_online_route_and_records_the_position(driver):
    result = driver_go_online(driver=driver, lat=O_LAT, lng=LNG)
    assert result.is_online is True and result.online_since is not None
    route = Route.objects.get(driver=driver, is_active=True)
    assert (route.mode, route.origin_lat, route.dest_lat) == (Route.Mode.ONLINE, O_LAT, None)
    assert (Location.objects.get(driver=driver).lat, Location.objects.get(driver=driver).lng) == (O_LAT, LNG)
    # repeating (the app retries; the driver moved) keeps online_since, moves the position
    since = result.online_since
    again = driver_go_online(driver=driver, lat=D_LAT, lng=LNG)
    assert again.online_since == since
    route = Route.objects.get(driver=driver, is_active=True)
    assert route.origin_lat == D_LAT
    assert Route.objects.filter(driver=driver).count() == 1


@pytest.mark.django_db
def test_go_online_keeps_a_stated_trip_but_replaces_an_ended_one(driver):
    ongoing = trip(driver, k=3000, arrive_by=timezone.now() + timedelta(hours=1))
    driver_go_online(driver=driver, lat=O_LAT, lng=LNG)
    assert Route.objects.get(driver=driver, is_active=True).pk == ongoing.pk
    driver_go_offline(driver=driver)
    Route.objects.filter(pk=ongoing.pk).update(arrive_by=timezone.now() - timedelta(minutes=1))
    driver_go_online(driver=driver, lat=O_LAT, lng=LNG)
    assert Route.objects.get(driver=driver, is_active=True).mode == Route.Mode.ONLINE


@pytest.mark.django_db
@pytest.mark.parametrize(
    "make",
    [
        lambda: DriverFactory(status=Driver.Status.SUSPENDED, reason_code="quality"),
        lambda: DriverFactory(status=Driver.Status.APPLICANT),
        lambda: DriverFactory(insurance_expires_on=timezone.localdate() - timedelta(days=1)),
    ],
)
def test_go_online_refused_for_drivers_who_may_not_work(make):
    driver = make()
    with pytest.raises(NotPermitted) as err:
        driver_go_online(driver=driver, lat=O_LAT, lng=LNG)
    assert err.value.message == driver_work_refusal(driver)
    driver.refresh_from_db()
    assert driver.is_online is False
    assert not Location.objects.filter(driver=driver).exists()


@pytest.mark.django_db
def test_go_online_outside_the_zone_is_refused(driver):
    with pytest.raises(DomainError, match="from the centre of Nashville"):
        driver_go_online(driver=driver, lat=Decimal("29.951100"), lng=Decimal("-90.071500"))
    driver.refresh_from_db()
    assert driver.is_online is False


@pytest.mark.django_db
def test_go_offline_ends_the_online_route_and_forgets_the_position(driver):
    driver_go_online(driver=driver, lat=O_LAT, lng=LNG)
    result = driver_go_offline(driver=driver)
    assert (result.is_online, result.online_since) == (False, None)
    assert not Route.objects.filter(driver=driver, is_active=True).exists()
    assert not Location.objects.filter(driver=driver).exists()
    # twice changes nothing
    assert driver_go_offline(driver=driver).is_online is False


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Batch.Status.ASSIGNED, Batch.Status.PICKED_UP])
def test_go_offline_is_refused_while_a_batch_is_active(driver, status):
    driver_go_online(driver=driver, lat=O_LAT, lng=LNG)
    online_route = Route.objects.get(driver=driver, is_active=True)
    BatchFactory(status=status, driver=driver)
    for _ in range(2):  # asking again is refused again
        with pytest.raises(Conflict, match="can't go offline during a batch") as err:
            driver_go_offline(driver=driver)
        assert err.value.code == "batch_in_progress" and err.value.status_code == 409
    driver.refresh_from_db()
    assert driver.is_online is True and driver.online_since is not None
    assert Route.objects.get(driver=driver, is_active=True).pk == online_route.pk
    assert Location.objects.filter(driver=driver).exists()


@pytest.mark.django_db
def test_a_driver_taken_off_work_goes_offline_and_keeps_the_position_for_their_batch(driver):
    """The system's own call (suspension) is not refused: the driver is no longer active."""
    stated = trip(driver, k=3000)
    driver_go_online(driver=driver, lat=O_LAT, lng=LNG)
    BatchFactory(status=Batch.Status.PICKED_UP, driver=driver)
    Driver.objects.filter(pk=driver.pk).update(status=Driver.Status.SUSPENDED, is_online=False)
    driver_go_offline(driver=driver)
    assert Route.objects.get(driver=driver, is_active=True).pk == stated.pk
    assert Location.objects.filter(driver=driver).exists()


@pytest.mark.django_db
def test_location_only_on_duty(driver):
    with pytest.raises(DomainError, match="Go online"):
        location_record(driver=driver, lat=O_LAT, lng=LNG)
    assert not Location.objects.filter(driver=driver).exists()
    driver_go_online(driver=driver, lat=O_LAT, lng=LNG)
    location_record(driver=driver, lat=D_LAT, lng=LNG, accuracy_m=12)
    with time_machine.travel(timezone.now() + timedelta(seconds=10)):  # past the ping interval
        location_record(driver=driver, lat=D_LAT, lng=LNG, accuracy_m=8)
    loc = Location.objects.get(driver=driver)
    assert (loc.lat, loc.accuracy_m) == (D_LAT, 8)
    with pytest.raises(DomainError):
        location_record(driver=driver, lat=Decimal("91"), lng=LNG)


@pytest.mark.django_db
def test_location_accepted_offline_while_holding_a_batch(driver):
    BatchFactory(status=Batch.Status.PICKED_UP, driver=driver)
    location_record(driver=driver, lat=O_LAT, lng=LNG)
    assert Location.objects.get(driver=driver).lat == O_LAT


# --- route_matches_for: hand-checked geometry ------------------------------------------
#
# Store S 0.02 deg south of O, last stop L 0.02 deg south of D:
#   detour = d(O,S) + (R - d(L,S)) + d(L,D) - d(O,D) = 0.02 + 0.10 + 0.02 - 0.10 deg
#          = 0.04 deg = 2891 + 14455 + 2891 - 14455 = 5782 m.


@pytest.mark.django_db
def test_trip_detour_at_the_limit_is_included_and_one_metre_less_is_not():
    store = store_at("36.080000")
    batch = batch_on_meridian(store, "36.180000")
    assert batch.route_meters == 2 * KM_10_0
    at_limit = trip(k=5782)
    below = trip(k=5781)
    matches = route_matches_for(batch, now=timezone.now(), limit=10)
    assert [m.driver.pk for m in matches] == [at_limit.driver_id]
    why = matches[0].why
    assert why["detour_m"] == KM_2_0 + KM_10_0 + KM_2_0 - KM_10_0 == 5782
    assert why["pickup_m"] == KM_2_0
    assert why["max_detour_m"] == 5782
    assert below.driver_id not in [m.driver.pk for m in matches]


@pytest.mark.django_db
def test_a_batch_on_the_way_costs_no_detour():
    # S and L both between O and D: O -> S -> L -> D is O -> D.
    store = store_at("36.120000")
    batch = batch_on_meridian(store, "36.180000")
    route = trip(k=0)
    [match] = route_matches_for(batch, now=timezone.now(), limit=3)
    assert match.driver.pk == route.driver_id
    assert match.why["detour_m"] == KM_2_0 + KM_6_0 + KM_2_0 - KM_10_0 == 0


@pytest.mark.django_db
def test_arrive_by_at_the_limit_fits_and_a_second_less_does_not():
    # time: t(O,S) 260 s + pickup 600 s + (T - t(L,S)) + t(L,D) 260 s, with
    # T = 2 x 1301 s + 240 s at the door = 2842 s, so the batch part is 1541 s: 2661 s in all.
    store = store_at("36.080000")
    batch = batch_on_meridian(store, "36.180000")
    assert batch.route_seconds == 2842
    now = timezone.now()
    fits = trip(k=10_000, arrive_by=now + timedelta(seconds=2661))
    late = trip(k=10_000, arrive_by=now + timedelta(seconds=2660))
    ids = [m.driver.pk for m in route_matches_for(batch, now=now, limit=10)]
    assert fits.driver_id in ids
    assert late.driver_id not in ids


@pytest.mark.django_db
def test_pay_per_hour_uses_the_extra_time_of_the_trip():
    store = store_at("36.080000")
    batch = batch_on_meridian(store, "36.180000")
    trip(k=10_000)
    [match] = route_matches_for(batch, now=timezone.now(), limit=1)
    # extra time = 2661 s of the trip with the batch - 1301 s of the trip without it = 1360 s
    pay = pay_quote(batch=batch)["total_cents"]
    assert match.why["pay_per_hour_cents"] == round(pay * 3600 / 1360)


@pytest.mark.django_db
def test_online_driver_within_reach_of_the_store():
    store = store_at("36.080000")
    batch = batch_on_meridian(store, "36.180000")
    near, far = DriverFactory(is_online=True), DriverFactory(is_online=True)
    for driver, k in ((near, KM_2_0), (far, KM_2_0 - 1)):
        RouteFactory(
            driver=driver,
            mode=Route.Mode.ONLINE,
            origin_lat=O_LAT,
            origin_lng=LNG,
            dest_lat=None,
            dest_lng=None,
            max_detour_meters=k,
        )
    matches = route_matches_for(batch, now=timezone.now(), limit=10)
    assert [(m.driver.pk, m.why["pickup_m"], m.why["detour_m"], m.why["mode"]) for m in matches] == [
        (near.pk, KM_2_0, KM_2_0, "online")
    ]
    # the last known position counts, not where they went online
    Location.objects.create(driver=far, lat=Decimal("36.090000"), lng=LNG)
    assert {m.driver.pk for m in route_matches_for(batch, now=timezone.now(), limit=10)} == {near.pk, far.pk}


@pytest.mark.django_db
def test_route_matches_exclude_offline_busy_offered_ineligible_and_other_zones():
    store = store_at("36.120000")
    batch = batch_on_meridian(store, "36.180000")
    good = trip(k=1000)
    offline = trip(k=1000, online=False)
    busy = trip(k=1000)
    BatchFactory(status=Batch.Status.ASSIGNED, driver=busy.driver)
    offered = trip(k=1000)
    OfferFactory(batch=batch, driver=offered.driver, status="declined")
    expired = trip(DriverFactory(is_online=True, license_expires_on=timezone.localdate() - timedelta(days=1)), k=1000)
    elsewhere_zone = ZoneFactory(name="Memphis", slug="memphis", center_lat=Decimal("36.1"), center_lng=LNG)
    elsewhere = trip(DriverFactory(is_online=True, home_zone=elsewhere_zone), k=1000)
    ids = [m.driver.pk for m in route_matches_for(batch, now=timezone.now(), limit=None)]
    assert ids == [good.driver_id]
    for r in (offline, busy, offered, expired, elsewhere):
        assert r.driver_id not in ids
    # the board's draw asks about one claimant, offline or offered before
    judged = route_matches_for(
        batch, now=timezone.now(), limit=None, drivers=[offered.driver, offline.driver], include_offered=True
    )
    assert {m.driver.pk for m in judged} == {offered.driver_id, offline.driver_id}


@pytest.mark.django_db
@time_machine.travel(CENTRAL_NOON, tick=False)  # "today" is the zone's day: an hour ago is in it at noon
def test_route_matches_rank_by_fairness_when_the_fit_is_equal():
    store = store_at("36.120000")
    batch = batch_on_meridian(store, "36.180000")
    now = timezone.now()
    busy_today = trip(DriverFactory(is_online=True, online_since=now - timedelta(hours=2)), k=1000)
    for _ in range(2):
        BatchFactory(
            status=Batch.Status.COMPLETED,
            driver=busy_today.driver,
            assigned_at=now - timedelta(hours=1),
            closed_at=now - timedelta(minutes=50),
        )
    idle_long = trip(DriverFactory(is_online=True, online_since=now - timedelta(minutes=50)), k=1000)
    idle_short = trip(DriverFactory(is_online=True, online_since=now - timedelta(minutes=5)), k=1000)
    matches = route_matches_for(batch, now=now, limit=2)
    # fewest batches today first, then the longest idle; limit keeps the best two
    assert [m.driver.pk for m in matches] == [idle_long.driver_id, idle_short.driver_id]
    assert [m.why["rank"] for m in matches] == [1, 2]
    assert [m.why["idle_minutes"] for m in matches] == [50, 5]
    everyone = route_matches_for(batch, now=now, limit=None)
    assert everyone[-1].driver.pk == busy_today.driver_id
    assert everyone[-1].why["batches_today"] == 2


@pytest.mark.django_db
def test_route_matches_prefer_the_smaller_detour():
    store = store_at("36.080000")
    batch = batch_on_meridian(store, "36.180000")
    on_the_way = trip(k=10_000)  # detour 5782 m from O
    nearer = DriverFactory(is_online=True, online_since=on_the_way.driver.online_since)
    RouteFactory(
        driver=nearer,
        origin_lat=Decimal("36.080000"),
        origin_lng=LNG,
        dest_lat=Decimal("36.180000"),
        dest_lng=LNG,
        max_detour_meters=10_000,
    )  # starts at the store, ends at the stop: detour 0
    matches = route_matches_for(batch, now=timezone.now(), limit=None)
    assert [m.driver.pk for m in matches] == [nearer.pk, on_the_way.driver_id]
    assert [m.why["detour_m"] for m in matches] == [0, 5782]


# --- slot_holders_for ----------------------------------------------------------------


@pytest.mark.django_db
def test_slot_holders_cover_from_30_minutes_before_the_start_to_the_end():
    now = timezone.now()
    store = store_at("36.120000")
    batch = batch_on_meridian(store, "36.180000")

    def holder(starts_in_min: float, hours: float = 2, status=SlotClaim.Status.CLAIMED, slot_store=None):
        starts = now + timedelta(minutes=starts_in_min)
        slot = DeliverySlotFactory(store=slot_store or store, starts_at=starts, ends_at=starts + timedelta(hours=hours))
        return SlotClaimFactory(slot=slot, status=status).driver

    starting_soon = holder(20)
    under_way = holder(-60)
    checked_in = holder(-10, status=SlotClaim.Status.CHECKED_IN)
    too_early = holder(40)
    ended = holder(-180, hours=2)
    cancelled = holder(-11, status=SlotClaim.Status.CANCELLED)
    other_store = holder(-12, slot_store=store_at("36.110000"))
    busy = holder(-13)
    BatchFactory(status=Batch.Status.AT_STORE, driver=busy)
    offered = holder(-14)
    OfferFactory(batch=batch, driver=offered, status="expired")
    suspended = holder(-15)
    Driver.objects.filter(pk=suspended.pk).update(status=Driver.Status.SUSPENDED, reason_code="other")

    ids = {d.pk for d in slot_holders_for(batch, now=now)}
    assert ids == {starting_soon.pk, under_way.pk, checked_in.pk}
    for d in (too_early, ended, cancelled, other_store, busy, offered, suspended):
        assert d.pk not in ids


@pytest.mark.django_db
@time_machine.travel(CENTRAL_NOON, tick=False)  # "today" is the zone's day: an hour ago is in it at noon
def test_slot_holders_fewest_batches_today_then_longest_idle():
    now = timezone.now()
    store = store_at("36.120000")
    batch = batch_on_meridian(store, "36.180000")
    slot = DeliverySlotFactory(store=store, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=1))
    worked = SlotClaimFactory(slot=slot, status=SlotClaim.Status.CHECKED_IN, checked_in_at=now - timedelta(minutes=55))
    BatchFactory(
        status=Batch.Status.COMPLETED,
        driver=worked.driver,
        assigned_at=now - timedelta(minutes=50),
        closed_at=now - timedelta(minutes=30),
    )
    waiting_long = SlotClaimFactory(
        slot=slot, status=SlotClaim.Status.CHECKED_IN, checked_in_at=now - timedelta(minutes=40)
    )
    waiting_short = SlotClaimFactory(
        slot=slot, status=SlotClaim.Status.CHECKED_IN, checked_in_at=now - timedelta(minutes=10)
    )
    # a driver holding two overlapping slots at the store is listed once
    other_slot = DeliverySlotFactory(
        store=store, starts_at=now - timedelta(minutes=30), ends_at=now + timedelta(hours=2)
    )
    SlotClaimFactory(slot=other_slot, driver=waiting_short.driver)

    holders = slot_holders_for(batch, now=now)
    assert [d.pk for d in holders] == [waiting_long.driver_id, waiting_short.driver_id, worked.driver_id]
    assert [(d.batches_today, d.idle_minutes) for d in holders] == [(0, 40), (0, 10), (1, 30)]
