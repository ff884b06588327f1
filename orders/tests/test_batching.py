"""The auto-batcher on generated instances: capacity, stops per trip and every delivery
window are honoured, and orders that cannot be served are reported, never squeezed in."""

import random
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from orders.batching import propose_batches
from spark import geo

STORE = SimpleNamespace(lat=36.15, lng=-86.79)


def generated(n, seed, *, spread_min=120, max_totes=6):
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
                window_end=ws + timedelta(minutes=rng.choice([45, 60, 120])),
            )
        )
    return t0, orders


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
    by_id = {o.pk: o for o in orders}
    seen = [oid for b in proposal.batches for oid in b.order_ids]
    assert len(seen) == len(set(seen))  # no order twice
    assert set(seen) | set(proposal.unassigned) == set(by_id)
    for b in proposal.batches:
        assert 1 <= len(b.order_ids) <= 4
        assert sum(by_id[i].totes for i in b.order_ids) <= 12
        check_route(t0, b.order_ids, by_id)
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
