"""The feed's SQL prefilter: which open batches the database hands to the exact rule, ranked
by an estimate of the same net pay per hour (dispatch.route_fit), the pay included.

10,000 open batches in a zone must be ranked in well under 30 ms. The database filters,
orders and limits them with estimates; only the rows it returns (a few more than asked
for) are judged with the exact rule (spark.geo, the pay quote with tips) and re-ranked in
Python by dispatch.feed.

What makes the SQL cheap (measured on PostgreSQL 15, see bench/bench_route_feed.py):
- Converting a NUMERIC coordinate to DOUBLE PRECISION is the costly step (about 0.3 us a
  value, far more than COS or SQRT), and PostgreSQL repeats it wherever the text repeats.
  So each formula below is written once, by hand, as one expression node (_Formula), with
  every last-stop coordinate converted once per distance and each distance appearing once
  in WHERE and once in ORDER BY.
- Per-store numbers (the exact distance and time from the driver to each store, each
  store's position) are computed here and passed in as CASE constants: no join.
- WHERE uses a lower bound of the detour that needs only d(L, D): the batch without the
  drive back (R - d(L, S)) is at least R / 2, since d(L, S) <= R - d(L, S). Likewise the
  time. The estimates are deliberately generous (SQL_SLACK_*): SQL never drops a batch
  the exact rule keeps (dispatch/tests/test_feed.py checks it on random worlds).
- ORDER BY ranks by the same net pay per hour as the exact rule. With extra time
  u = x / v + a (x the detour, v the speed), (P - c x) / u = (P + c v a) / u - c v, and
  c v is the same for every row, so ordering by (P + c v a) / u needs x only once.
- A last stop outside the ellipse {|OP| + |PD| <= |OD| + K} cannot fit a trip; its
  bounding box is a plain range filter on the NUMERIC columns (no conversion), which an
  index on the last stop can serve. (Per-store ellipses were tried: tighter for small
  detours, but no faster where it counts, the large detours that cover the whole zone.)
- The pay in ORDER BY is the exact pay (pay_sql), not an estimate: see its docstring.
"""

import math
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import BooleanField, F, FloatField, Func, Q

from drivers.models import Route
from orders.models import Batch
from payments.models import PayPolicy
from payments.services import pay_total_sql
from spark import geo

from .route_fit import PICKUP_SECONDS, VEHICLE_CENTS_PER_KM

SQL_SLACK_M = 100
SQL_SLACK_RATIO = 0.005  # the fixed-latitude equirectangular estimate errs < 0.5% at 80 km
SQL_SLACK_S = 60
OVERFETCH_MIN = 20

_EARTH_M_PER_DEGREE = geo.EARTH_RADIUS_M * math.pi / 180

# The columns of a batch row, as prefiltered_rows returns them (dispatch.feed reads them by position).
BATCH_COLUMNS = (
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


@dataclass(frozen=True)
class _RoadModel:
    """The geo backend's road model, for the SQL estimates."""

    road_factor: float
    speed: float  # metres per second


def _road_model() -> _RoadModel:
    backend = geo.backend()
    return _RoadModel(
        road_factor=float(getattr(backend, "road_factor", 1.3)),
        speed=float(getattr(backend, "speed_ms", 40 / 3.6)),
    )


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


def pay_sql(policy: PayPolicy):
    """The batch's pay (the same total as dispatch.feed's exact pay and pay_quote) as one SQL
    expression: payments.services.pay_total_sql, fed from the batch's own columns (its live
    stops' count, tips and heavy orders are kept on the row by orders.batch_editing.batch_refresh_route).
    Ranking on anything less (say without tips or heavy pay) would let the LIMIT cut a batch
    whose exact pay puts it at the top; reading the stops here (a join and GROUP BY, or a
    subquery per batch) cost 2-8x the whole feed's time."""
    return pay_total_sql(
        policy,
        route_meters=F("route_meters"),
        stops=F("stops_count"),
        heavy=F("stops_heavy"),
        tip_cents=F("stops_tip_cents"),
        incentive_cents=F("incentive_cents"),
    )


def prefiltered_rows(
    route: Route,
    here: geo.Point,
    *,
    stores: dict[int, dict],
    policy: PayPolicy,
    now: datetime,
    limit: int,
    board_only: bool = False,
) -> list[tuple]:
    """Published batches of `stores` (the zone's active stores, each with its "point") that
    may fit the route, best estimate first: a few more than `limit` rows of BATCH_COLUMNS,
    never leaving out a batch the exact rule keeps (see the module docstring)."""
    road = _road_model()
    road_factor, speed = road.road_factor, road.speed
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
    qs = qs.annotate(pay_sql=pay_sql(policy))
    pay = F("pay_sql")
    cost_per_m = VEHICLE_CENTS_PER_KM / 1000

    if route.mode == Route.Mode.ONLINE:
        # detour = d(P, S); time = t(P, S) + pickup + T: per-store constants and columns only.
        key = _Formula(
            "({pay} - {c} * {dhs}) / ({ths} + {pickup} + CAST({seconds} AS DOUBLE PRECISION))",
            pay=pay,
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
        # extra time u = (d(O,S) - d(L,S) + d(L,D) - d(O,D)) / v + T + pickup; see the module docstring.
        key = _Formula(
            "({pay} + {cv} * (CAST({seconds} AS DOUBLE PRECISION) + {pickup})"
            " - {c} * CAST({meters} AS DOUBLE PRECISION))"
            " / {MAX}(({dhs} - {dls} + {dld} - {dhd}) / {speed} + CAST({seconds} AS DOUBLE PRECISION) + {pickup}, 1)",
            pay=pay,
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
    return list(qs.order_by(key.desc(), "pk").values_list(*BATCH_COLUMNS)[:fetch])
