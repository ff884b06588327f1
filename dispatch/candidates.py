"""Who is offered a batch (dispatch.rounds): the drivers holding a slot at its store, fairest
first, and the online drivers whose route fits it (dispatch.route_fit), best first.

Ranking, route matches (one batch, many drivers): net pay per hour (dispatch.route_fit),
minus FAIRNESS_CENTS_PER_BATCH for each batch the driver was assigned today (zone's local
day), plus IDLE_CENTS_PER_10_MINUTES for every 10 minutes idle, counted up to
IDLE_CAP_MINUTES. With the defaults, three batches today cost as much as $9/h of pay, an
idle hour is worth $6/h. Ties: the smaller detour, then the driver id.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Exists, Max, OuterRef

from drivers.models import Driver, Location, Route, SlotClaim
from drivers.selectors import SLOT_EARLY_MINUTES, eligible_q, zone_today
from orders.models import Batch
from payments.services import pay_quote
from spark import geo

from .models import Offer
from .route_fit import BatchShape, batch_fit, net_per_hour, starting_point

# Fairness in route matches, in cents per hour of pay (see the module docstring).
FAIRNESS_CENTS_PER_BATCH = 300
IDLE_CENTS_PER_10_MINUTES = 100
IDLE_CAP_MINUTES = 60


@dataclass(frozen=True)
class RouteMatch:
    """One driver whose route fits the batch, and the why of their place (see route_matches_for)."""

    driver: Driver
    why: dict


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


@dataclass(frozen=True)
class _Today:
    """A driver's work today, for fairness."""

    batches: int  # batches assigned today
    last_closed: datetime | None  # when the last of them closed


_NO_WORK_TODAY = _Today(batches=0, last_closed=None)


def _fairness(driver_ids: Iterable[int], *, day_start: datetime) -> dict[int, _Today]:
    """{driver id: their work today}, one query; drivers without any are left out."""
    rows = (
        Batch.objects.filter(driver_id__in=list(driver_ids), assigned_at__gte=day_start)
        .order_by()
        .values("driver_id")
        .annotate(n=Count("pk"), last_closed=Max("closed_at"))
    )
    return {r["driver_id"]: _Today(batches=r["n"], last_closed=r["last_closed"]) for r in rows}


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
        worked = fairness.get(driver.pk, _NO_WORK_TODAY)
        driver.batches_today = worked.batches  # type: ignore[attr-defined]
        driver.idle_minutes = _idle_minutes(  # type: ignore[attr-defined]
            now, worked.last_closed, claim.checked_in_at, driver.online_since, fallback=min(claim.slot.starts_at, now)
        )
        drivers.append(driver)
    drivers.sort(key=lambda d: (d.batches_today, -d.idle_minutes, d.pk))  # type: ignore[attr-defined]
    return drivers


# --- Route matches -------------------------------------------------------------------


def route_matches_for(
    batch: Batch, *, now: datetime, limit: int | None, drivers=None, include_offered: bool = False
) -> list[RouteMatch]:
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
    shape = BatchShape(
        store=geo.Point.of(store.lat, store.lng),
        last=geo.Point.of(batch.last_stop_lat, batch.last_stop_lng),
        route_meters=batch.route_meters,
        route_seconds=batch.route_seconds,
        pickup_by=batch.pickup_by,
    )
    fits = []
    for route in candidates:
        fit = batch_fit(route, starting_point(route, located.get(route.driver_id)), shape, now=now)
        if fit is not None:
            fits.append((route, fit))
    if not fits:
        return []
    pay = pay_quote(batch=batch, incentive_cents=batch.incentive_cents)["total_cents"]
    fairness = _fairness((r.driver_id for r, _ in fits), day_start=day_start)
    scored = []
    for route, fit in fits:
        driver = route.driver
        worked = fairness.get(driver.pk, _NO_WORK_TODAY)
        idle = _idle_minutes(now, worked.last_closed, driver.online_since, fallback=day_start)
        score = (
            net_per_hour(pay, fit)
            - FAIRNESS_CENTS_PER_BATCH * worked.batches
            + IDLE_CENTS_PER_10_MINUTES * min(idle, IDLE_CAP_MINUTES) / 10
        )
        scored.append((score, route, fit, worked.batches, idle))
    scored.sort(key=lambda s: (-s[0], s[2].detour_m, s[1].driver_id))
    if limit is not None:
        scored = scored[:limit]
    return [
        RouteMatch(
            driver=route.driver,
            why={
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
