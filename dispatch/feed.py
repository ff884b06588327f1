"""Route matching (who is offered a batch) and the ranked feed and board (what a driver sees).

Fit of a batch to a route (one rule, used by targeted offers and by the driver's feed)
------------------------------------------------------------------------------------
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

Ranking, the feed (one driver, many batches): net pay per hour, best first. The net pay is
the pay minus the vehicle cost of the extra distance (VEHICLE_CENTS_PER_KM, the IRS mileage
rate), so one number prefers short detours and well-paid hours, in the driver's own units.
Ties: the smaller detour, then the older batch.

Ranking, route matches (one batch, many drivers): the same net pay per hour, minus
FAIRNESS_CENTS_PER_BATCH for each batch the driver was assigned today (zone's local day),
plus IDLE_CENTS_PER_10_MINUTES for every 10 minutes idle, counted up to IDLE_CAP_MINUTES.
With the defaults, three batches today cost as much as $9/h of pay, an idle hour is worth $6/h.
"""

import math
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import BooleanField, Count, Exists, F, FloatField, Func, Max, OuterRef, Q

from drivers.models import Driver, Location, Route, SlotClaim
from drivers.selectors import SLOT_EARLY_MINUTES, eligible_q, zone_today
from orders.models import Batch, Stop
from payments.models import PayPolicy
from payments.services import pay_breakdown, pay_quote, pay_total_sql
from spark import geo
from spark.money import format_cents
from stores.models import Store

from .models import Offer

# Parking, finding the pickup desk and the handoff: added to the time of every batch.
PICKUP_SECONDS = 600
# IRS standard mileage rate 2025 (70 c/mile): the vehicle cost of one extra kilometre.
VEHICLE_CENTS_PER_KM = 44
# Fairness in route matches, in cents per hour of pay (see the module docstring).
FAIRNESS_CENTS_PER_BATCH = 300
IDLE_CENTS_PER_10_MINUTES = 100
IDLE_CAP_MINUTES = 60
# Before a batch is theirs a driver sees each stop's area: its ZIP code and a point rounded
# to 0.01 degree (about 1.1 km north-south, 0.9 km east-west here), never the address.
AREA_DECIMALS = 2

_EARTH_M_PER_DEGREE = geo.EARTH_RADIUS_M * math.pi / 180


# --- Eligibility -------------------------------------------------------------------------


def _busy(driver_ref: str = "pk") -> Exists:
    return Exists(Batch.objects.filter(driver_id=OuterRef(driver_ref), status__in=Batch.ACTIVE_STATUSES))


def _offered(batch: Batch, driver_ref: str = "pk") -> Exists:
    """Offered this batch and had their say (accepted, declined, let it expire). A withdrawn
    offer does not count: it ended because the batch went away (taken by another driver,
    pulled back), so when the batch is offered again (e.g. sent back to dispatch by
    dispatch.services.batch_release_to_dispatch) those drivers are asked again."""
    return Exists(
        Offer.objects.filter(batch_id=batch.pk, driver_id=OuterRef(driver_ref)).exclude(status=Offer.Status.WITHDRAWN)
    )


def _fairness(driver_ids, *, day_start: datetime) -> dict[int, tuple[int, datetime | None]]:
    """{driver id: (batches assigned today, when the last of them closed)}, one query."""
    rows = (
        Batch.objects.filter(driver_id__in=list(driver_ids), assigned_at__gte=day_start)
        .order_by()
        .values("driver_id")
        .annotate(n=Count("pk"), last_closed=Max("closed_at"))
    )
    return {r["driver_id"]: (r["n"], r["last_closed"]) for r in rows}


def _idle_minutes(now: datetime, *moments: datetime | None, fallback: datetime) -> int:
    """Minutes since the latest of `moments` (the driver's last sign of work), or `fallback`."""
    known = [m for m in moments if m is not None]
    since = max(known) if known else fallback
    return max(0, int((now - since).total_seconds() // 60))


# --- Slots ---------------------------------------------------------------------------


def slot_holders_for(batch: Batch, *, now: datetime) -> list[Driver]:
    """Drivers holding a live seat (signed up or checked in) in a slot of the batch's store
    that covers `now` (from SLOT_EARLY_MINUTES before its start to its end), who may work,
    have no active batch and were never offered this batch. Fairest first: fewest batches
    assigned today, then longest idle. Each driver carries `batches_today` and `idle_minutes`."""
    zone = batch.store.zone
    day_start, today = zone_today(zone, now)
    claims = (
        SlotClaim.objects.filter(
            status__in=SlotClaim.ACTIVE_STATUSES,
            slot__store_id=batch.store_id,
            slot__starts_at__lte=now + timedelta(minutes=SLOT_EARLY_MINUTES),
            slot__ends_at__gte=now,
        )
        .filter(eligible_q(today, prefix="driver__"))
        .exclude(_busy("driver_id"))
        .exclude(_offered(batch, "driver_id"))
        .select_related("driver__user", "slot")
        .order_by("claimed_at", "pk")
    )
    holders: dict[int, tuple[Driver, SlotClaim]] = {}
    for claim in claims:
        holders.setdefault(claim.driver_id, (claim.driver, claim))  # overlapping slots: once
    fairness = _fairness(holders, day_start=day_start)
    drivers = []
    for driver, claim in holders.values():
        batches_today, last_closed = fairness.get(driver.pk, (0, None))
        driver.batches_today = batches_today  # type: ignore[attr-defined]
        driver.idle_minutes = _idle_minutes(  # type: ignore[attr-defined]
            now, last_closed, claim.checked_in_at, driver.online_since, fallback=min(claim.slot.starts_at, now)
        )
        drivers.append(driver)
    drivers.sort(key=lambda d: (d.batches_today, -d.idle_minutes, d.pk))  # type: ignore[attr-defined]
    return drivers


# --- Route fit (exact, in Python) ------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """What the fit rule needs of a batch."""

    store: geo.Point
    last: geo.Point
    route_meters: int
    route_seconds: int
    pickup_by: datetime | None


@dataclass(frozen=True)
class _Fit:
    detour_m: int  # extra distance the batch costs the driver
    pickup_m: int  # from the driver (origin or position) to the store
    distance_m: int  # all they drive with the batch: to the store, the stops, on to D (trip) / back (online)
    seconds: int  # the time the batch costs them


def _fit(route: Route, here: geo.Point, shape: _Shape, *, now: datetime) -> _Fit | None:
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
    return _Fit(detour_m=detour, pickup_m=d_hs, distance_m=distance, seconds=max(PICKUP_SECONDS, seconds))


def _net_per_hour(pay_cents: int, fit: _Fit) -> float:
    return (pay_cents - VEHICLE_CENTS_PER_KM * fit.detour_m / 1000) * 3600 / fit.seconds


def _here(route: Route, location: tuple | None) -> geo.Point:
    if route.mode == Route.Mode.ONLINE and location is not None:
        return geo.Point.of(*location)
    return geo.Point.of(route.origin_lat, route.origin_lng)


# --- Route matches (dispatch) --------------------------------------------------------


def route_matches_for(
    batch: Batch, *, now: datetime, limit: int | None, drivers=None, include_offered: bool = False
) -> list[tuple[Driver, dict]]:
    """Online drivers of the batch's zone whose active route fits the batch, best first,
    each with the why: {"rank", "detour_m", "pickup_m", "distance_m", "pay_per_hour_cents",
    "batches_today", "idle_minutes", "max_detour_m", "mode", "score"}.

    Only drivers who may work, have no active batch and were never offered this batch
    (`include_offered=True` lifts the last). `drivers` judges just those drivers, online
    or not (the board's claim draw asks about one claimant). `limit=None`: all of them.
    """
    if batch.last_stop_lat is None or batch.last_stop_lng is None:
        return []
    store = batch.store
    zone = store.zone
    day_start, today = zone_today(zone, now)
    routes = (
        Route.objects.filter(is_active=True, driver__home_zone_id=zone.pk)
        .filter(eligible_q(today, prefix="driver__"))
        .exclude(_busy("driver_id"))
        .select_related("driver__user")
    )
    if drivers is None:
        routes = routes.filter(driver__is_online=True)
    else:
        routes = routes.filter(driver_id__in=[d.pk for d in drivers])
    if not include_offered:
        routes = routes.exclude(_offered(batch, "driver_id"))
    candidates = list(routes)
    online = [r.driver_id for r in candidates if r.mode == Route.Mode.ONLINE]
    located = (
        {
            d: (lat, lng)
            for d, lat, lng in Location.objects.filter(driver_id__in=online).values_list("driver_id", "lat", "lng")
        }
        if online
        else {}
    )
    shape = _Shape(
        store=geo.Point.of(store.lat, store.lng),
        last=geo.Point.of(batch.last_stop_lat, batch.last_stop_lng),
        route_meters=batch.route_meters,
        route_seconds=batch.route_seconds,
        pickup_by=batch.pickup_by,
    )
    fits = []
    for route in candidates:
        fit = _fit(route, _here(route, located.get(route.driver_id)), shape, now=now)
        if fit is not None:
            fits.append((route, fit))
    if not fits:
        return []
    pay = pay_quote(batch=batch, incentive_cents=batch.incentive_cents)["total_cents"]
    fairness = _fairness((r.driver_id for r, _ in fits), day_start=day_start)
    scored = []
    for route, fit in fits:
        driver = route.driver
        batches_today, last_closed = fairness.get(driver.pk, (0, None))
        idle = _idle_minutes(now, last_closed, driver.online_since, fallback=day_start)
        score = (
            _net_per_hour(pay, fit)
            - FAIRNESS_CENTS_PER_BATCH * batches_today
            + IDLE_CENTS_PER_10_MINUTES * min(idle, IDLE_CAP_MINUTES) / 10
        )
        scored.append((score, route, fit, batches_today, idle))
    scored.sort(key=lambda s: (-s[0], s[2].detour_m, s[1].driver_id))
    if limit is not None:
        scored = scored[:limit]
    return [
        (
            route.driver,
            {
                "rank": rank,
                "detour_m": fit.detour_m,
                "pickup_m": fit.pickup_m,
                "distance_m": fit.distance_m,
                "pay_per_hour_cents": round(pay * 3600 / fit.seconds),
                "batches_today": batches_today,
                "idle_minutes": idle,
                "max_detour_m": route.max_detour_meters,
                "mode": route.mode,
                "score": round(score),
            },
        )
        for rank, (score, route, fit, batches_today, idle) in enumerate(scored, start=1)
    ]


# --- The feed (SQL does the heavy lifting) -------------------------------------------
#
# 10,000 open batches in a zone must be ranked in well under 30 ms. The database filters,
# orders and limits them with estimates; only the rows it returns (a few more than asked
# for) are judged with the exact rule above (spark.geo, the pay quote with tips) and
# re-ranked in Python.
#
# What makes the SQL cheap (measured on PostgreSQL 15, see bench/bench_route_feed.py):
# - Converting a NUMERIC coordinate to DOUBLE PRECISION is the costly step (about 0.3 us a
#   value, far more than COS or SQRT), and PostgreSQL repeats it wherever the text repeats.
#   So each formula below is written once, by hand, as one expression node (_Formula), with
#   every last-stop coordinate converted once per distance and each distance appearing once
#   in WHERE and once in ORDER BY.
# - Per-store numbers (the exact distance and time from the driver to each store, each
#   store's position) are computed here and passed in as CASE constants: no join.
# - WHERE uses a lower bound of the detour that needs only d(L, D): the batch without the
#   drive back (R - d(L, S)) is at least R / 2, since d(L, S) <= R - d(L, S). Likewise the
#   time. The estimates are deliberately generous (SQL_SLACK_*): SQL never drops a batch
#   the exact rule keeps (dispatch/tests/test_feed.py checks it on random worlds).
# - ORDER BY ranks by the same net pay per hour as the exact rule. With extra time
#   u = x / v + a (x the detour, v the speed), (P - c x) / u = (P + c v a) / u - c v, and
#   c v is the same for every row, so ordering by (P + c v a) / u needs x only once.
# - A last stop outside the ellipse {|OP| + |PD| <= |OD| + K} cannot fit a trip; its
#   bounding box is a plain range filter on the NUMERIC columns (no conversion), which an
#   index on the last stop can serve. (Per-store ellipses were tried: tighter for small
#   detours, but no faster where it counts, the large detours that cover the whole zone.)

SQL_SLACK_M = 100
SQL_SLACK_RATIO = 0.005  # the fixed-latitude equirectangular estimate errs < 0.5% at 80 km
SQL_SLACK_S = 60
OVERFETCH_MIN = 20


def _road_model() -> tuple[float, float]:
    """(road factor, metres per second) of the geo backend, for the SQL estimates."""
    backend = geo.backend()
    return float(getattr(backend, "road_factor", 1.3)), float(getattr(backend, "speed_ms", 40 / 3.6))


class _Formula(Func):
    """One SQL formula as one expression node. `sql` names its parts in braces: an
    expression (F(), another _Formula) is compiled in place; a float is bound as
    CAST(%s AS DOUBLE PRECISION) (folded once by the planner); an int is bound as is.
    {MAX}/{MIN} are GREATEST/LEAST (MAX/MIN on SQLite). A few nodes instead of hundreds
    also keep Django's own compile time of the feed query small."""

    def __init__(self, sql: str, *, output_field=None, **parts):
        self.sql = sql
        self.exprs = [k for k, v in parts.items() if hasattr(v, "resolve_expression")]
        self.numbers = {k: v for k, v in parts.items() if not hasattr(v, "resolve_expression")}
        super().__init__(*[parts[k] for k in self.exprs], output_field=output_field or FloatField())

    def as_sql(self, compiler, connection, function=None, template=None, arg_joiner=None, **extra_context):
        compiled = {
            name: compiler.compile(expr) for name, expr in zip(self.exprs, self.get_source_expressions(), strict=True)
        }
        sqlite = connection.vendor == "sqlite"
        names = {"MAX": "MAX" if sqlite else "GREATEST", "MIN": "MIN" if sqlite else "LEAST"}
        out, params = [], []
        for literal, field, _, _ in string.Formatter().parse(self.sql):
            out.append(literal.replace("%", "%%"))
            if field is None:
                continue
            if field in names:
                out.append(names[field])
            elif field in compiled:
                sql, part_params = compiled[field]
                out.append(f"({sql})")
                params.extend(part_params)
            elif isinstance(self.numbers[field], float):
                out.append("CAST(%s AS DOUBLE PRECISION)")
                params.append(self.numbers[field])
            else:
                out.append("%s")
                params.append(int(self.numbers[field]))
        return "".join(out), params


def _per_store(values: dict[int, float]) -> _Formula:
    """CASE store_id WHEN ... THEN <float> ... END."""
    parts: dict = {"store": F("store_id")}
    whens = []
    for i, (store_id, value) in enumerate(values.items()):
        parts[f"s{i}"], parts[f"v{i}"] = int(store_id), float(value)
        whens.append(f"WHEN {{s{i}}} THEN {{v{i}}}")
    return _Formula(f"CASE {{store}} {' '.join(whens)} END", **parts)


def _last_stop_to(lat0, lng0, cos_lat, *, road_factor: float) -> _Formula:
    """Road distance (m) from the batch's last stop to a point (floats, or per-store CASEs),
    equirectangular with the cosine at the point's latitude: each coordinate is converted
    from NUMERIC once."""
    return _Formula(
        "SQRT(POWER(CAST({lat} AS DOUBLE PRECISION) - {lat0}, 2)"
        " + POWER((CAST({lng} AS DOUBLE PRECISION) - {lng0}) * {cos}, 2)) * {scale}",
        lat=F("last_stop_lat"),
        lng=F("last_stop_lng"),
        lat0=lat0,
        lng0=lng0,
        cos=cos_lat,
        scale=_EARTH_M_PER_DEGREE * road_factor,
    )


def _ellipse_box(o: geo.Point, d: geo.Point, reach_m: float) -> tuple[float, float, float, float]:
    """(min lat, max lat, min lng, max lng) around every point P with |OP| + |PD| <= reach_m
    (straight-line metres). A batch whose last stop lies outside cannot fit a trip:
    O -> S -> ... -> L -> D is at least |OL| + |LD| long."""
    lat0 = (o.lat + d.lat) / 2
    kx = _EARTH_M_PER_DEGREE * math.cos(math.radians(lat0))
    ky = _EARTH_M_PER_DEGREE
    x1, y1, x2, y2 = o.lng * kx, o.lat * ky, d.lng * kx, d.lat * ky
    focal = math.hypot(x2 - x1, y2 - y1) / 2
    a = max(reach_m / 2, focal)
    b = math.sqrt(max(0.0, a * a - focal * focal))
    theta = math.atan2(y2 - y1, x2 - x1)
    ex = math.sqrt((a * math.cos(theta)) ** 2 + (b * math.sin(theta)) ** 2)
    ey = math.sqrt((a * math.sin(theta)) ** 2 + (b * math.cos(theta)) ** 2)
    margin = 1.01
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return (cy - ey * margin) / ky, (cy + ey * margin) / ky, (cx - ex * margin) / kx, (cx + ex * margin) / kx


def _active_route(driver: Driver, now: datetime) -> tuple[Route, geo.Point] | None:
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
    return route, _here(route, location)


_POLICY_FIELDS = ("base_cents", "per_stop_cents", "per_mile_cents", "heavy_order_cents", "incentive_cap_cents")


def _zone_context(zone_id: int) -> tuple[dict[int, dict], PayPolicy]:
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
    return stores, policy


def _pay_total(policy, *, route_meters: int, incentive_cents: int, stops: list[tuple]) -> int:
    """payments.services.pay_quote(...)["total_cents"] for many batches without a query each:
    the same formula (payments.services.pay_breakdown) fed from rows already loaded."""
    return pay_breakdown(
        policy,
        route_meters=route_meters,
        stops=len(stops),
        heavy=sum(1 for s in stops if s[_HEAVY]),
        tip_cents=sum(s[_TIP] for s in stops),
        incentive_cents=incentive_cents,
    )["total_cents"]


def _pay_sql(policy: PayPolicy):
    """The batch's pay (the same total as _pay_total and pay_quote) as one SQL expression:
    payments.services.pay_total_sql, fed from the batch's own columns (its live stops' count,
    tips and heavy orders are kept on the row by orders.batch_editing.batch_refresh_route). Ranking
    on anything less (say without tips or heavy pay) would let the LIMIT cut a batch whose
    exact pay puts it at the top; reading the stops here (a join and GROUP BY, or a subquery
    per batch) cost 2-8x the whole feed's time."""
    return pay_total_sql(
        policy,
        route_meters=F("route_meters"),
        stops=F("stops_count"),
        heavy=F("stops_heavy"),
        tip_cents=F("stops_tip_cents"),
        incentive_cents=F("incentive_cents"),
    )


_BATCH_COLUMNS = (
    "pk",
    "store_id",
    "route_meters",
    "route_seconds",
    "incentive_cents",
    "last_stop_lat",
    "last_stop_lng",
    "pickup_by",
    "dispatch_stage",
)
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


def _card(row: tuple, *, store: dict, stops: list[tuple], pay: int, fit: _Fit | None, capacity: int) -> dict:
    """One feed/board entry. Stops show their area only (DESIGN rule 6)."""
    batch_id, _, route_meters, route_seconds, _, _, _, pickup_by, stage = row
    totes = sum(s[_TOTES] for s in stops)
    seconds = fit.seconds if fit else PICKUP_SECONDS + route_seconds
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
        "pickup_by": pickup_by.isoformat() if pickup_by else None,
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
    stores, policy = _zone_context(zone.pk)
    road_factor, speed = _road_model()
    start = max(now, route.leave_after) if route.leave_after else now
    to_store = {pk: (geo.distance_m(here, s["point"]), geo.duration_s(here, s["point"])) for pk, s in stores.items()}
    qs = Batch.objects.filter(status=Batch.Status.PUBLISHED, last_stop_lat__isnull=False, last_stop_lng__isnull=False)
    if board_only:
        qs = qs.filter(dispatch_stage=Batch.Stage.BOARD)
    k = route.max_detour_meters

    if route.mode == Route.Mode.ONLINE:
        keep = [pk for pk, (d_hs, _) in to_store.items() if d_hs <= k]
    else:
        assert route.dest_lat is not None and route.dest_lng is not None  # a CHECK: trips have one
        dest = geo.Point.of(route.dest_lat, route.dest_lng)
        d_hd = geo.distance_m(here, dest)
        budget = (route.arrive_by - start).total_seconds() if route.arrive_by else None
        # Necessary for any batch of store S: O -> S -> D within the detour (and the time).
        keep = [
            pk
            for pk, (d_hs, t_hs) in to_store.items()
            if d_hs + geo.distance_m(stores[pk]["point"], dest) <= d_hd + k + 5
            and (budget is None or t_hs + PICKUP_SECONDS <= budget)
        ]
    if not keep:
        return []
    qs = qs.filter(store_id__in=keep)
    if start > now:
        # Not available yet: only stores they can reach before a batch's pickup deadline.
        reachable = Q(pickup_by__isnull=True)
        for pk in keep:
            reachable |= Q(store_id=pk, pickup_by__gte=start + timedelta(seconds=to_store[pk][1]))
        qs = qs.filter(reachable)
    d_hs = _per_store({pk: to_store[pk][0] for pk in keep})
    t_hs = _per_store({pk: to_store[pk][1] for pk in keep})
    qs = qs.annotate(pay_sql=_pay_sql(policy))
    pay_sql = F("pay_sql")
    cost_per_m = VEHICLE_CENTS_PER_KM / 1000

    if route.mode == Route.Mode.ONLINE:
        # detour = d(P, S); time = t(P, S) + pickup + T: per-store constants and columns only.
        key = _Formula(
            "({pay} - {c} * {dhs}) / ({ths} + {pickup} + CAST({seconds} AS DOUBLE PRECISION))",
            pay=pay_sql,
            c=cost_per_m,
            dhs=d_hs,
            ths=t_hs,
            pickup=float(PICKUP_SECONDS),
            seconds=F("route_seconds"),
        )
    else:
        # O -> S -> ... -> L -> D is at least |OL| + |LD| long: L lies in the ellipse with foci
        # O and D. Its bounding box is compared on the NUMERIC columns directly (no
        # conversion), so PostgreSQL applies it first, and an index on the last stop can serve it.
        lat_min, lat_max, lng_min, lng_max = _ellipse_box(
            here, dest, (d_hd + k) / road_factor * (1 + SQL_SLACK_RATIO) + SQL_SLACK_M
        )
        qs = qs.filter(
            last_stop_lat__gte=Decimal(f"{lat_min:.6f}"),
            last_stop_lat__lte=Decimal(f"{lat_max:.6f}"),
            last_stop_lng__gte=Decimal(f"{lng_min:.6f}"),
            last_stop_lng__lte=Decimal(f"{lng_max:.6f}"),
        )
        d_ld = _last_stop_to(dest.lat, dest.lng, math.cos(math.radians(dest.lat)), road_factor=road_factor)
        d_ls = _last_stop_to(
            _per_store({pk: stores[pk]["point"].lat for pk in keep}),
            _per_store({pk: stores[pk]["point"].lng for pk in keep}),
            _per_store({pk: math.cos(math.radians(stores[pk]["point"].lat)) for pk in keep}),
            road_factor=road_factor,
        )
        slack_m = SQL_SLACK_M + SQL_SLACK_RATIO * (d_hd + k)
        # detour >= d(O,S) + R/2 + d(L,D) - d(O,D) <= K, and the same for the time.
        bound = "{dhd} + {k} + {slack} - {dhs} - CAST({meters} AS DOUBLE PRECISION) / 2"
        parts = {"dhd": float(d_hd), "k": float(k), "slack": slack_m, "dhs": d_hs, "meters": F("route_meters")}
        if budget is not None:
            bound = (
                f"{{MIN}}({bound}, ({{budget}} - {{ths}} - {{pickup}}"
                " - CAST({seconds} AS DOUBLE PRECISION) / 2) * {speed})"
            )
            parts.update(
                budget=budget + SQL_SLACK_S + slack_m / speed,
                ths=t_hs,
                pickup=float(PICKUP_SECONDS),
                seconds=F("route_seconds"),
                speed=speed,
            )
        qs = qs.filter(_Formula(f"{{dld}} <= {bound}", output_field=BooleanField(), dld=d_ld, **parts))
        # extra time u = (d(O,S) - d(L,S) + d(L,D) - d(O,D)) / v + T + pickup; see above.
        key = _Formula(
            "({pay} + {cv} * (CAST({seconds} AS DOUBLE PRECISION) + {pickup})"
            " - {c} * CAST({meters} AS DOUBLE PRECISION))"
            " / {MAX}(({dhs} - {dls} + {dld} - {dhd}) / {speed} + CAST({seconds} AS DOUBLE PRECISION) + {pickup}, 1)",
            pay=pay_sql,
            cv=cost_per_m * speed,
            c=cost_per_m,
            seconds=F("route_seconds"),
            pickup=float(PICKUP_SECONDS),
            meters=F("route_meters"),
            dhs=d_hs,
            dls=d_ls,
            dld=d_ld,
            dhd=float(d_hd),
            speed=speed,
        )
    fetch = limit + max(OVERFETCH_MIN, limit // 2)
    rows = list(qs.order_by(key.desc(), "pk").values_list(*_BATCH_COLUMNS)[:fetch])
    if not rows:
        return []

    # Exact numbers for the few rows the database picked.
    stops = _stops_of([r[0] for r in rows])
    judged = []
    for row in rows:
        batch_id, store_id, route_meters, route_seconds, incentive, last_lat, last_lng, pickup_by, _ = row
        shape = _Shape(
            store=stores[store_id]["point"],
            last=geo.Point.of(last_lat, last_lng),
            route_meters=route_meters,
            route_seconds=route_seconds,
            pickup_by=pickup_by,
        )
        fit = _fit(route, here, shape, now=now)
        if fit is None:
            continue
        pay = _pay_total(policy, route_meters=route_meters, incentive_cents=incentive, stops=stops[batch_id])
        judged.append((_net_per_hour(pay, fit), row, fit, pay))
    judged.sort(key=lambda j: (-j[0], j[2].detour_m, j[1][0]))
    cards = []
    for rank, (_, row, fit, pay) in enumerate(judged[:limit], start=1):
        card = _card(
            row, store=stores[row[1]], stops=stops[row[0]], pay=pay, fit=fit, capacity=driver.vehicle_tote_capacity
        )
        card["rank"] = rank
        cards.append(card)
    return cards


def route_feed(driver: Driver, *, now: datetime, limit: int = 50) -> list[dict]:
    """Published batches of the driver's zone that fit their active route, best first (see
    the module docstring), at most `limit`. Each entry: batch_id, store, stops_count,
    totes, detour_m, pickup_m, distance_m, minutes, pay_total_cents, pay_per_hour_cents,
    rank, and per stop only its area (ZIP code, a point rounded to about 1 km). Empty
    without an active route."""
    active = _active_route(driver, now)
    if active is None:
        return []
    route, here = active
    return _ranked_batches(driver, route, here, now=now, limit=limit)


def board_for(driver: Driver, *, now: datetime, limit: int = 100) -> list[dict]:
    """The open board of the driver's zone: batches that fit their route first (ranked as
    in route_feed, `fits_route` true), then every other board batch, oldest on the board
    first (`fits_route` false; no detour). Same entries as route_feed."""
    active = _active_route(driver, now)
    cards = _ranked_batches(driver, active[0], active[1], now=now, limit=limit, board_only=True) if active else []
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
        .values_list(*_BATCH_COLUMNS)[:room]
    )
    if not rows:
        return cards
    stores, policy = _zone_context(driver.home_zone_id)
    stops = _stops_of([r[0] for r in rows])
    for row in rows:
        pay = _pay_total(policy, route_meters=row[2], incentive_cents=row[4], stops=stops[row[0]])
        card = _card(
            row, store=stores[row[1]], stops=stops[row[0]], pay=pay, fit=None, capacity=driver.vehicle_tote_capacity
        )
        card["rank"] = len(cards) + 1
        cards.append(card)
    return cards
