"""The auto-batcher on generated instances: capacity, stops per trip and every delivery
window are honoured; orders that cannot be served even alone are reported, never squeezed in,
and every other order is placed, however short the solve."""

import random
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone
from pyvrp import Solution

from orders.batching import batching_problem, propose_batches
from spark import geo

STORE = SimpleNamespace(lat=36.15, lng=-86.79)


def generated(n, seed, *, spread_min=120, max_totes=6, lengths=(45, 60, 120)):
    rng = random.Random(seed)
    t0 = timezone.now().replace(microsecond=0)
    orders = []
    for i in range(n):
        ws = t0 + timedelta(minutes=rng.randrange(0, spread_min + 1, 15))
        orders.append(
            SimpleNamespace(
                pk=i + 1,
                lat=STORE.lat + rng.uniform(-0.07, 0.07),
                lng=STORE.lng + rng.uniform(-0.09, 0.09),
                totes=rng.randint(1, max_totes),
                window_start=ws,
                window_end=ws + timedelta(minutes=rng.choice(lengths)),
            )
        )
    return t0, orders


def tight_day(n, seed):
    """1-hour windows starting every quarter hour over a 10-hour day."""
    return generated(n, seed, spread_min=9 * 60, lengths=(60,))


def check_proposal(t0, orders, proposal, *, max_totes, max_stops):
    """No order twice, every order either in a trip or reported, and every trip within its
    capacity, its stop count and each customer's window."""
    by_id = {o.pk: o for o in orders}
    seen = [oid for b in proposal.batches for oid in b.order_ids]
    assert len(seen) == len(set(seen))
    assert set(seen) | set(proposal.unassigned) == set(by_id)
    assert not set(seen) & set(proposal.unassigned)
    for b in proposal.batches:
        assert 1 <= len(b.order_ids) <= max_stops
        assert sum(by_id[i].totes for i in b.order_ids) <= max_totes
        check_route(t0, b.order_ids, by_id)


def check_route(t0, order_ids, by_id):
    """Drive the route from the store at t0, waiting when early; every arrival must fall
    inside its window."""
    here = geo.Point.of(STORE.lat, STORE.lng)
    clock = t0
    for oid in order_ids:
        o = by_id[oid]
        there = geo.Point.of(o.lat, o.lng)
        clock += timedelta(seconds=geo.duration_s(here, there))
        clock = max(clock, o.window_start)
        assert clock <= o.window_end, f"order {oid} reached at {clock}, window ends {o.window_end}"
        clock += timedelta(seconds=geo.STOP_SERVICE_SECONDS)
        here = there


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_capacity_stops_and_windows_hold(seed):
    t0, orders = generated(40, seed)
    proposal = propose_batches(store=STORE, orders=orders, max_totes=12, max_stops=4, time_limit_s=1, start=t0)
    check_proposal(t0, orders, proposal, max_totes=12, max_stops=4)
    # Plenty of time and vehicles: everyone is served.
    assert proposal.unassigned == []


def test_unservable_orders_are_reported_not_squeezed_in():
    t0, orders = generated(6, 7)
    too_big = SimpleNamespace(
        pk=99, lat=36.16, lng=-86.78, totes=30, window_start=t0, window_end=t0 + timedelta(hours=2)
    )
    too_far_too_soon = SimpleNamespace(
        pk=98, lat=36.60, lng=-86.20, totes=1, window_start=t0, window_end=t0 + timedelta(minutes=10)
    )
    proposal = propose_batches(
        store=STORE, orders=[*orders, too_big, too_far_too_soon], max_totes=20, max_stops=5, time_limit_s=1, start=t0
    )
    assert set(proposal.unassigned) == {98, 99}
    assert all(98 not in b.order_ids and 99 not in b.order_ids for b in proposal.batches)


def test_route_distance_includes_the_drive_back():
    t0 = timezone.now()
    one = SimpleNamespace(pk=1, lat=36.20, lng=-86.79, totes=1, window_start=t0, window_end=t0 + timedelta(hours=3))
    proposal = propose_batches(store=STORE, orders=[one], max_totes=20, max_stops=5, time_limit_s=0.2, start=t0)
    leg = geo.distance_m(geo.Point.of(STORE.lat, STORE.lng), geo.Point.of(one.lat, one.lng))
    assert proposal.batches[0].route_meters == 2 * leg


def test_no_orders_no_batches():
    assert propose_batches(store=STORE, orders=[], max_totes=20, max_stops=5).batches == []


def _door_at(minutes_drive):
    """A point due north of the store that takes about `minutes_drive` to reach."""
    store = geo.Point.of(STORE.lat, STORE.lng)
    lat = STORE.lat
    while geo.duration_s(store, geo.Point.of(lat, STORE.lng)) < minutes_drive * 60:
        lat += 0.001
    return lat, geo.duration_s(store, geo.Point.of(lat, STORE.lng))


def test_only_an_order_that_cannot_be_served_alone_is_unservable():
    t0 = timezone.now().replace(microsecond=0)
    lat, drive = _door_at(20)

    def order(pk, *, closes_after_s, totes=2):
        return SimpleNamespace(
            pk=pk,
            lat=lat,
            lng=STORE.lng,
            totes=totes,
            window_start=t0,
            window_end=t0 + timedelta(seconds=closes_after_s),
        )

    just_in_time = order(1, closes_after_s=drive)  # a driver leaving now arrives as it closes
    one_second_short = order(2, closes_after_s=drive - 1)
    closed_already = SimpleNamespace(**{**vars(order(3, closes_after_s=0)), "window_start": t0 - timedelta(hours=2)})
    too_many_totes = order(4, closes_after_s=3 * 3600, totes=21)
    fine = order(5, closes_after_s=3 * 3600)
    orders = [just_in_time, one_second_short, closed_already, too_many_totes, fine]

    problem = batching_problem(store=STORE, orders=orders, max_totes=20, max_stops=5, start=t0)
    assert [o.pk for o in problem.unservable] == [2, 3, 4]
    assert [o.pk for o in problem.orders] == [1, 5]

    proposal = propose_batches(store=STORE, orders=orders, max_totes=20, max_stops=5, time_limit_s=0.5, start=t0)
    assert sorted(proposal.unassigned) == [2, 3, 4]
    assert sorted(oid for b in proposal.batches for oid in b.order_ids) == [1, 5]


def test_no_time_to_search_still_places_every_servable_order():
    """Stopped before its first iteration, the solver hands back the constructive start: a
    short solve gives a plainer plan, never "unservable" orders."""
    t0, orders = tight_day(30, 4)
    proposal = propose_batches(store=STORE, orders=orders, max_totes=20, max_stops=5, time_limit_s=0, start=t0)
    assert proposal.unassigned == []
    check_proposal(t0, orders, proposal, max_totes=20, max_stops=5)


@pytest.mark.parametrize("seed", [1, 2])
def test_tight_window_day_places_every_servable_order(seed):
    t0, orders = tight_day(30, seed)
    # Two orders nobody can reach in time, among thirty that can.
    far_lat, _ = _door_at(45)
    late = [
        SimpleNamespace(
            pk=100 + k, lat=far_lat, lng=STORE.lng, totes=1, window_start=t0, window_end=t0 + timedelta(minutes=30)
        )
        for k in range(2)
    ]
    proposal = propose_batches(store=STORE, orders=orders + late, max_totes=20, max_stops=5, time_limit_s=2, start=t0)
    assert sorted(proposal.unassigned) == [100, 101]
    check_proposal(t0, orders + late, proposal, max_totes=20, max_stops=5)
    # Trips are shared: far fewer than one per order.
    assert len(proposal.batches) <= 12


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_constructive_start_is_a_valid_plan(seed):
    t0, orders = tight_day(30, seed)
    problem = batching_problem(store=STORE, orders=orders, max_totes=12, max_stops=4, start=t0)
    routes = problem.constructive_routes()
    solution = Solution(problem.model().data(), routes)
    assert solution.is_complete() and solution.is_feasible()
    # The same, checked by our own clock rather than PyVRP's.
    by_id = {o.pk: o for o in problem.orders}
    for route in routes:
        ids = [problem.orders[i].pk for i in route]
        assert 1 <= len(ids) <= 4 and sum(by_id[i].totes for i in ids) <= 12
        check_route(t0, ids, by_id)
    assert sorted(i for r in routes for i in r) == list(range(len(problem.orders)))
