"""The fit of a batch to a driver's route: one rule, used by targeted offers
(dispatch.candidates.route_matches_for) and by the driver's feed (dispatch.feed).

Distances d() and drive times t() come from spark.geo (straight line x road factor by
default). S is the batch's store, L its last stop, R = batch.route_meters (store -> every
stop -> back to the store) and T = batch.route_seconds (the same path, with time at doors).

TRIP route (origin O, destination D, leave after t1, arrive by t2, up to K m out of the way):
    out_m  = R - d(L, S)                                   the batch without the drive back
    detour = d(O, S) + out_m + d(L, D) - d(O, D)           fits when detour <= K
    finish = max(now, t1) + t(O, S) + PICKUP_SECONDS + (T - t(L, S)) + t(L, D)
                                                            fits when finish <= t2 (if given)
ONLINE route (position P = the last Location, else where they went online; K = how far
they will drive to a store):
    detour = d(P, S)                                       fits when d(P, S) <= K
A driver who is not available yet (t1 in the future) must also reach the store by the
batch's pickup_by. Drivers available now are never excluded by it: a late batch still needs
someone, and they are the quickest.

Pay per hour = the batch's pay (payments.services.pay_quote: pay policy, the batch's current
incentive and the customers' tips) / the time the batch costs this driver:
    TRIP:   t(O, S) + PICKUP_SECONDS + (T - t(L, S)) + t(L, D) - t(O, D)   extra time on their trip
    ONLINE: t(P, S) + PICKUP_SECONDS + T
and never less than PICKUP_SECONDS.

Net pay per hour (net_per_hour, what both rankings start from): the pay minus the vehicle
cost of the extra distance (VEHICLE_CENTS_PER_KM, the IRS mileage rate), per hour of that
time, so one number prefers short detours and well-paid hours, in the driver's own units.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from drivers.models import Route
from spark import geo

# Parking, finding the pickup desk and the handoff: added to the time of every batch.
PICKUP_SECONDS = 600
# IRS standard mileage rate 2025 (70 c/mile): the vehicle cost of one extra kilometre.
VEHICLE_CENTS_PER_KM = 44


@dataclass(frozen=True)
class BatchShape:
    """What the fit rule needs of a batch."""

    store: geo.Point
    last: geo.Point
    route_meters: int
    route_seconds: int
    pickup_by: datetime | None


@dataclass(frozen=True)
class Fit:
    detour_m: int  # extra distance the batch costs the driver
    pickup_m: int  # from the driver (origin or position) to the store
    distance_m: int  # all they drive with the batch: to the store, the stops, on to D (trip) / back (online)
    seconds: int  # the time the batch costs them


def batch_fit(route: Route, here: geo.Point, shape: BatchShape, *, now: datetime) -> Fit | None:
    """The fit rule of the module docstring; None when the batch does not fit."""
    d_hs = geo.distance_m(here, shape.store)
    t_hs = geo.duration_s(here, shape.store)
    start = max(now, route.leave_after) if route.leave_after else now
    if route.mode == Route.Mode.ONLINE:
        if d_hs > route.max_detour_meters:
            return None
        detour, distance = d_hs, d_hs + shape.route_meters
        seconds = t_hs + PICKUP_SECONDS + shape.route_seconds
    else:
        if route.arrive_by is not None and route.arrive_by <= now:
            return None
        assert route.dest_lat is not None and route.dest_lng is not None  # a CHECK: trips have one
        dest = geo.Point.of(route.dest_lat, route.dest_lng)
        out_m = max(0, shape.route_meters - geo.distance_m(shape.last, shape.store))
        out_s = max(0, shape.route_seconds - geo.duration_s(shape.last, shape.store))
        d_ld = geo.distance_m(shape.last, dest)
        detour = max(0, d_hs + out_m + d_ld - geo.distance_m(here, dest))
        if detour > route.max_detour_meters:
            return None
        trip_s = t_hs + PICKUP_SECONDS + out_s + geo.duration_s(shape.last, dest)
        if route.arrive_by is not None and start + timedelta(seconds=trip_s) > route.arrive_by:
            return None
        seconds = trip_s - geo.duration_s(here, dest)
        distance = d_hs + out_m + d_ld
    if start > now and shape.pickup_by is not None and start + timedelta(seconds=t_hs) > shape.pickup_by:
        return None
    return Fit(detour_m=detour, pickup_m=d_hs, distance_m=distance, seconds=max(PICKUP_SECONDS, seconds))


def net_per_hour(pay_cents: int, fit: Fit) -> float:
    return (pay_cents - VEHICLE_CENTS_PER_KM * fit.detour_m / 1000) * 3600 / fit.seconds


def starting_point(route: Route, location: tuple | None) -> geo.Point:
    """Where the driver sets out from: on an online route their last known `location`
    (lat, lng) if any, else the route's origin."""
    if route.mode == Route.Mode.ONLINE and location is not None:
        return geo.Point.of(*location)
    return geo.Point.of(route.origin_lat, route.origin_lng)
