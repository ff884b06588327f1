"""The time rules of a store's batches, one function each, read by the services that publish and
reorder batches and by the dashboard that shows their warnings:

- publishing a set of drafts now never overrides a batch's own "ready at" (publish_now_plan);
- a "ready at" in the past is never scheduled (ready_at_has_passed);
- a stop sequence that makes an order miss its delivery window, and publishing a batch some of
  whose orders can no longer be reached in their window, need the associate's confirmation
  (sequence_new_late_orders, batch_late_if_published_now);
- orders whose delivery window has started with no batch are flagged (orders_window_started_unbatched);
- an unclaimed batch's lateness is measured against its pickup time (batch_lateness).

Every time is an aware datetime; what a person reads is shown in the store zone's timezone
(store_local_time), whatever the server's or the request's timezone.
"""

import zoneinfo
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from spark import geo
from spark.errors import DomainError

from .models import Batch, Order, Stop
from .selectors import batch_stops


class NeedsConfirmation(DomainError):
    """A change the associate must confirm first because of what it does to delivery times;
    nothing was changed. `late`: the orders affected; `proposal`: what the confirmed request
    sends again (the stop sequence of a reorder)."""

    status_code = 409
    code = "needs_confirmation"

    def __init__(
        self,
        message: str,
        *,
        late: "Sequence[LateOrder]" = (),
        proposal: tuple[int, ...] = (),
        code: str | None = None,
    ):
        super().__init__(message, code=code)
        self.late = list(late)
        self.proposal = proposal


class ReadyAtPassed(NeedsConfirmation):
    """A "ready at" time that has already passed: never scheduled (it would publish at once and
    still read "scheduled"); the associate is asked whether to publish now instead."""

    code = "ready_at_passed"


@dataclass(frozen=True)
class LateOrder:
    """An order a trip would reach after its delivery window closes."""

    order: Order
    arrives_at: datetime

    @property
    def minutes_late(self) -> int:
        return minutes_between(self.order.window_end, self.arrives_at)


@dataclass(frozen=True)
class Lateness:
    """How an unclaimed batch stands against its pickup time: minutes_late > 0 when the pickup
    time has passed, else minutes_left until it."""

    batch: Batch
    pickup_by: datetime
    minutes_late: int
    minutes_left: int

    @property
    def label(self) -> str:
        """What the dashboard says of it: "12 min late", or "pickup in 8 min"."""
        if self.minutes_late:
            return _("%(n)d min late") % {"n": self.minutes_late}
        return _("pickup in %(n)d min") % {"n": self.minutes_left}


@dataclass(frozen=True)
class PublishPlan:
    """What "publish all drafts now" does with each draft: `now` go out, `scheduled` keep their
    own future "ready at" unless confirmed, `late` have orders that leaving now cannot reach in
    their window (each with those orders) and wait for confirmation too."""

    now: list[Batch]
    scheduled: list[Batch]
    late: list[tuple[Batch, list[LateOrder]]]

    @property
    def needs_confirmation(self) -> list[Batch]:
        return self.scheduled + [b for b, _late in self.late]


def minutes_between(earlier: datetime, later: datetime) -> int:
    """Whole minutes from `earlier` to `later`, as a clock counts them (0 if `later` is not later)."""
    return max(0, int((later - earlier).total_seconds() // 60))


def store_local_time(store, when: datetime) -> datetime:
    """`when` in the store zone's timezone: how every time of these rules is shown."""
    return timezone.localtime(when, zoneinfo.ZoneInfo(store.zone.timezone))


# --- Arrival times -----------------------------------------------------------------------


def stop_arrivals(*, store, orders: Sequence[Order], depart_at: datetime) -> list[datetime]:
    """When a driver leaving the store at `depart_at` reaches each order, in sequence. A driver
    early for a window waits for it to open (a delivery before the window is not a delivery in
    it), so a later window placed first delays every stop after it."""
    here = geo.Point.of(store.lat, store.lng)
    clock = depart_at
    arrivals = []
    for order in orders:
        there = geo.Point.of(order.lat, order.lng)
        clock = max(clock + timedelta(seconds=geo.duration_s(here, there)), order.window_start)
        arrivals.append(clock)
        clock += timedelta(seconds=geo.STOP_SERVICE_SECONDS)
        here = there
    return arrivals


def orders_late_in_sequence(*, store, orders: Sequence[Order], depart_at: datetime) -> list[LateOrder]:
    """The orders a trip in this sequence, leaving at `depart_at`, reaches after their window."""
    arrivals = stop_arrivals(store=store, orders=orders, depart_at=depart_at)
    return [LateOrder(order=o, arrives_at=t) for o, t in zip(orders, arrivals, strict=True) if t > o.window_end]


def batch_departure(*, batch: Batch, now: datetime) -> datetime:
    """The earliest a draft can leave: now, or its own "ready at" if that is later."""
    return max(now, batch.ready_at) if batch.ready_at else now


def _live_orders(batch: Batch) -> list[Order]:
    return [s.order for s in batch_stops(batch=batch)]


# --- Rule: reordering stops ----------------------------------------------------------------


def sequence_new_late_orders(*, batch: Batch, stop_ids: Sequence[int], now: datetime) -> list[LateOrder]:
    """The orders the stop sequence `stop_ids` would deliver after their window closes that the
    batch's present sequence delivers in time: moving a stop out of its window order. Orders
    already late either way are not the move's doing and are not listed."""
    stops = {s.pk: s for s in batch.stops.exclude(status=Stop.Status.REMOVED).select_related("order")}
    if sorted(stops) != sorted(stop_ids):
        return []  # not a sequence of this batch: the service refuses it
    current = [s.order for s in sorted(stops.values(), key=lambda s: s.sequence)]
    proposed = [stops[i].order for i in stop_ids]
    depart_at = batch_departure(batch=batch, now=now)
    late_before = {x.order.pk for x in orders_late_in_sequence(store=batch.store, orders=current, depart_at=depart_at)}
    late_after = orders_late_in_sequence(store=batch.store, orders=proposed, depart_at=depart_at)
    return [x for x in late_after if x.order.pk not in late_before]


def stop_ids_after_move(*, batch: Batch, stop_id: int, offset: int) -> list[int]:
    """The live stop sequence once `stop_id` moves `offset` places (-1 up, +1 down), clamped to
    the ends."""
    ids = list(batch.stops.exclude(status=Stop.Status.REMOVED).order_by("sequence").values_list("pk", flat=True))
    if stop_id not in ids:
        return ids  # taken out meanwhile: nothing to move
    i = ids.index(stop_id)
    ids.insert(max(0, min(len(ids) - 1, i + offset)), ids.pop(i))
    return ids


# --- Rule: publishing now --------------------------------------------------------------------


def batch_late_if_published_now(*, batch: Batch, now: datetime) -> list[LateOrder]:
    """The orders of `batch` a driver leaving now would reach after their window closes: its
    pickup time has passed (or its sequence cannot keep every window). Empty: publish freely."""
    return orders_late_in_sequence(store=batch.store, orders=_live_orders(batch), depart_at=now)


def publish_now_plan(*, batches: Sequence[Batch], now: datetime) -> PublishPlan:
    """Rule for "publish all drafts now": a draft with its own "ready at" still ahead keeps it,
    and one whose orders can no longer all be reached in time is not sent without a look."""
    plan = PublishPlan(now=[], scheduled=[], late=[])
    for batch in batches:
        if batch.status != Batch.Status.DRAFT:
            continue
        if batch.ready_at and batch.ready_at > now:
            plan.scheduled.append(batch)
        elif late := batch_late_if_published_now(batch=batch, now=now):
            plan.late.append((batch, late))
        else:
            plan.now.append(batch)
    return plan


def publish_now_confirmed(*, plan: PublishPlan, confirmed_ids: Collection[int]) -> list[Batch]:
    """The drafts of `plan` to publish: those free to go, and those the associate confirmed."""
    return plan.now + [b for b in plan.needs_confirmation if b.pk in confirmed_ids]


# --- Rule: "ready at" ---------------------------------------------------------------------------


def ready_at_has_passed(*, ready_at: datetime, now: datetime) -> bool:
    """A "ready at" not after now is never scheduled: the associate is asked whether to publish
    now instead (a scheduled time in the past would publish at once and still say "scheduled")."""
    return ready_at <= now


# --- Rule: orders waiting for a batch ------------------------------------------------------------


def orders_window_started_unbatched(*, store_id: int, now: datetime) -> QuerySet[Order]:
    """The store's orders whose delivery window has started while they are in no batch (still
    received): the customer is already waiting. Earliest window first. The dashboard flags them
    above the queue; the store API lists them with ?waiting_for_batch=true."""
    return Order.objects.filter(store_id=store_id, status=Order.Status.RECEIVED, window_start__lte=now).order_by(
        "window_start", "window_end", "pk"
    )


# --- Rule: lateness of an unclaimed batch ---------------------------------------------------------


def batch_lateness(*, batch: Batch, now: datetime) -> Lateness | None:
    """How late an unclaimed batch is: against its pickup time (the latest departure that keeps
    every window), or, without one, its earliest window end. None for a batch with no stop."""
    pickup_by = batch.pickup_by
    if pickup_by is None:
        ends = [o.window_end for o in _live_orders(batch)]
        if not ends:
            return None
        pickup_by = min(ends)
    return Lateness(
        batch=batch,
        pickup_by=pickup_by,
        minutes_late=minutes_between(pickup_by, now),
        minutes_left=minutes_between(now, pickup_by),
    )


def batches_at_risk(*, store_ids: Collection[int], now: datetime, within_minutes: int | None = None) -> list[Lateness]:
    """Published batches nobody has taken whose pickup time is near (the zone's at_risk_minutes,
    or `within_minutes`) or past, each with its real lateness; the most overdue first."""
    candidates = (
        Batch.objects.filter(store_id__in=store_ids, status=Batch.Status.PUBLISHED, pickup_by__isnull=False)
        .select_related("store__zone")
        .order_by("pickup_by", "pk")
    )
    rows = []
    for batch in candidates:
        window = within_minutes if within_minutes is not None else batch.store.zone.at_risk_minutes
        lateness = batch_lateness(batch=batch, now=now)
        if lateness is not None and lateness.pickup_by <= now + timedelta(minutes=window):
            rows.append(lateness)
    return rows
