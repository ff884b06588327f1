"""The driver's ranked feed and the open board (what a driver sees): published batches of
their zone that fit their active route (dispatch.route_fit), best first.

Ranking, the feed (one driver, many batches): net pay per hour (dispatch.route_fit), best
first. Ties: the smaller detour, then the older batch.

The database picks the rows (dispatch.feed_prefilter: SQL estimates that never drop a batch
the exact rule keeps); only those are judged with the exact rule and priced exactly here.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import F

from drivers.models import Driver, Route
from orders.models import Batch, Stop, batch_is_late
from payments.models import PayPolicy
from payments.services import pay_breakdown
from spark import geo
from spark.money import format_cents
from stores.models import Store

from .feed_prefilter import BATCH_COLUMNS, prefiltered_rows
from .route_fit import PICKUP_SECONDS, BatchShape, Fit, batch_fit, net_per_hour, starting_point

# Before a batch is theirs a driver sees each stop's area: its ZIP code and a point rounded
# to 0.01 degree (about 1.1 km north-south, 0.9 km east-west here), never the address.
AREA_DECIMALS = 2


@dataclass(frozen=True)
class _ActiveRoute:
    route: Route
    here: geo.Point  # where the driver sets out from (dispatch.route_fit.starting_point)


def _active_route(driver: Driver, now: datetime) -> _ActiveRoute | None:
    """The driver's active route and where they are on it; None without one or after the trip."""
    route = (
        Route.objects.filter(driver=driver, is_active=True)
        .annotate(_at_lat=F("driver__location__lat"), _at_lng=F("driver__location__lng"))
        .first()
    )
    if route is None:
        return None
    if route.mode == Route.Mode.TRIP and route.arrive_by is not None and route.arrive_by <= now:
        return None  # the trip is over
    location = (route._at_lat, route._at_lng) if route._at_lat is not None else None
    return _ActiveRoute(route=route, here=starting_point(route, location))


_POLICY_FIELDS = ("base_cents", "per_stop_cents", "per_mile_cents", "heavy_order_cents", "incentive_cap_cents")


@dataclass(frozen=True)
class _ZoneContext:
    stores: dict[int, dict]  # the zone's active stores by id: id, name, number, point
    policy: PayPolicy


def _zone_context(zone_id: int) -> _ZoneContext:
    """The zone's active stores and its pay policy (the model's defaults without one), in one query."""
    rows = Store.objects.filter(zone_id=zone_id, is_active=True).values_list(
        "pk", "name", "number", "lat", "lng", *[f"zone__pay_policy__{f}" for f in _POLICY_FIELDS]
    )
    stores, policy = {}, PayPolicy(zone_id=zone_id)
    for pk, name, number, lat, lng, *pay in rows:
        stores[pk] = {"id": pk, "name": name, "number": number, "point": geo.Point.of(lat, lng)}
        if pay[0] is not None:
            for field, value in zip(_POLICY_FIELDS, pay, strict=True):
                setattr(policy, field, value)
    return _ZoneContext(stores=stores, policy=policy)


_STOP_COLUMNS = (
    "batch_id",
    "sequence",
    "order__postal_code",
    "order__lat",
    "order__lng",
    "order__totes",
    "order__is_heavy",
    "order__contains_alcohol",
    "order__tip_cents",
    "order__window_end",
)
_SEQ, _ZIP, _LAT, _LNG, _TOTES, _HEAVY, _ALCOHOL, _TIP, _WINDOW_END = range(1, 10)


def _stops_of(batch_ids: list[int]) -> dict[int, list[tuple]]:
    stops: dict[int, list[tuple]] = {i: [] for i in batch_ids}
    for row in (
        Stop.objects.filter(batch_id__in=batch_ids)
        .exclude(status=Stop.Status.REMOVED)
        .order_by("batch_id", "sequence")
        .values_list(*_STOP_COLUMNS)
    ):
        stops[row[0]].append(row)
    return stops


def _pay(policy, *, route_meters: int, incentive_cents: int, stops: list[tuple]) -> dict:
    """payments.services.pay_quote(...) for many batches without a query each: the same formula
    (payments.services.pay_breakdown) fed from rows already loaded. The parts in cents
    (base_cents ... tip_cents) and their total_cents, as an offer's pay snapshot has them."""
    return pay_breakdown(
        policy,
        route_meters=route_meters,
        stops=len(stops),
        heavy=sum(1 for s in stops if s[_HEAVY]),
        tip_cents=sum(s[_TIP] for s in stops),
        incentive_cents=incentive_cents,
    )


def _card(
    row: tuple, *, store: dict, stops: list[tuple], pay_parts: dict, fit: Fit | None, capacity: int, now: datetime
) -> dict:
    """One feed/board entry. Stops show their area only (DESIGN rule 6). `late`: its pickup
    time has passed (its pay then includes the late incentive, dispatch.rounds)."""
    batch_id, _, route_meters, route_seconds, _, _, _, pickup_by, stage = row
    totes = sum(s[_TOTES] for s in stops)
    seconds = fit.seconds if fit else PICKUP_SECONDS + route_seconds
    pay = pay_parts["total_cents"]
    return {
        "batch_id": batch_id,
        "store": {"id": store["id"], "name": store["name"], "number": store["number"]},
        "stops_count": len(stops),
        "totes": totes,
        "fits_vehicle": totes <= capacity,
        "heavy": any(s[_HEAVY] for s in stops),
        "alcohol": any(s[_ALCOHOL] for s in stops),
        "fits_route": fit is not None,
        "detour_m": fit.detour_m if fit else None,
        "pickup_m": fit.pickup_m if fit else None,
        "distance_m": fit.distance_m if fit else route_meters,
        "minutes": round(seconds / 60),
        "pay_total_cents": pay,
        "pay_total": format_cents(pay),
        "pay_per_hour_cents": round(pay * 3600 / seconds),
        "pay": {k: v for k, v in pay_parts.items() if k.endswith("_cents")},
        "pickup_by": pickup_by.isoformat() if pickup_by else None,
        "late": batch_is_late(pickup_by=pickup_by, status=Batch.Status.PUBLISHED, now=now),
        "on_board": stage == Batch.Stage.BOARD,
        "stops": [
            {
                "sequence": s[_SEQ],
                "postal_code": s[_ZIP],
                "area_lat": round(float(s[_LAT]), AREA_DECIMALS),
                "area_lng": round(float(s[_LNG]), AREA_DECIMALS),
                "distance_from_store_m": geo.distance_m(store["point"], geo.Point.of(s[_LAT], s[_LNG])),
                "totes": s[_TOTES],
                "heavy": s[_HEAVY],
                "alcohol": s[_ALCOHOL],
                "window_end": s[_WINDOW_END].isoformat(),
            }
            for s in stops
        ],
    }


def _ranked_batches(
    driver: Driver, route: Route, here: geo.Point, *, now: datetime, limit: int, board_only: bool = False
) -> list[dict]:
    zone = driver.home_zone  # the route was set in it; if ops moved the driver, the new zone counts
    context = _zone_context(zone.pk)
    stores, policy = context.stores, context.policy
    rows = prefiltered_rows(route, here, stores=stores, policy=policy, now=now, limit=limit, board_only=board_only)
    if not rows:
        return []

    # Exact numbers for the few rows the database picked.
    stops = _stops_of([r[0] for r in rows])
    judged = []
    for row in rows:
        batch_id, store_id, route_meters, route_seconds, incentive, last_lat, last_lng, pickup_by, _ = row
        shape = BatchShape(
            store=stores[store_id]["point"],
            last=geo.Point.of(last_lat, last_lng),
            route_meters=route_meters,
            route_seconds=route_seconds,
            pickup_by=pickup_by,
        )
        fit = batch_fit(route, here, shape, now=now)
        if fit is None:
            continue
        pay = _pay(policy, route_meters=route_meters, incentive_cents=incentive, stops=stops[batch_id])
        judged.append((net_per_hour(pay["total_cents"], fit), row, fit, pay))
    judged.sort(key=lambda j: (-j[0], j[2].detour_m, j[1][0]))
    cards = []
    for rank, (_, row, fit, pay) in enumerate(judged[:limit], start=1):
        card = _card(
            row,
            store=stores[row[1]],
            stops=stops[row[0]],
            pay_parts=pay,
            fit=fit,
            capacity=driver.vehicle_tote_capacity,
            now=now,
        )
        card["rank"] = rank
        cards.append(card)
    return cards


def route_feed(driver: Driver, *, now: datetime, limit: int = 50) -> list[dict]:
    """Published batches of the driver's zone that fit their active route, best first (see
    the module docstring), at most `limit`. Each entry: batch_id, store, stops_count,
    totes, detour_m, pickup_m, distance_m, minutes, pay_total_cents, pay_per_hour_cents, pay (the parts
    of the pay, base_cents ... tip_cents, as an offer's snapshot has them), late,
    rank, and per stop only its area (ZIP code, a point rounded to about 1 km). Empty
    without an active route."""
    active = _active_route(driver, now)
    if active is None:
        return []
    return _ranked_batches(driver, active.route, active.here, now=now, limit=limit)


def board_for(driver: Driver, *, now: datetime, limit: int = 100) -> list[dict]:
    """The open board of the driver's zone: batches that fit their route first (ranked as
    in route_feed, `fits_route` true), then every other board batch, oldest on the board
    first (`fits_route` false; no detour). Same entries as route_feed."""
    active = _active_route(driver, now)
    cards = _ranked_batches(driver, active.route, active.here, now=now, limit=limit, board_only=True) if active else []
    room = limit - len(cards)
    if room <= 0:
        return cards
    rows = list(
        Batch.objects.filter(
            status=Batch.Status.PUBLISHED,
            dispatch_stage=Batch.Stage.BOARD,
            store__zone_id=driver.home_zone_id,
            store__is_active=True,
        )
        .exclude(pk__in=[c["batch_id"] for c in cards])
        .order_by("board_at", "pk")
        .values_list(*BATCH_COLUMNS)[:room]
    )
    if not rows:
        return cards
    context = _zone_context(driver.home_zone_id)
    stops = _stops_of([r[0] for r in rows])
    for row in rows:
        pay = _pay(context.policy, route_meters=row[2], incentive_cents=row[4], stops=stops[row[0]])
        card = _card(
            row,
            store=context.stores[row[1]],
            stops=stops[row[0]],
            pay_parts=pay,
            fit=None,
            capacity=driver.vehicle_tote_capacity,
            now=now,
        )
        card["rank"] = len(cards) + 1
        cards.append(card)
    return cards
