"""Building and editing a store's batches before a driver takes them: create, add and take out
orders, reorder stops, publish (now or at a ready-at time), pull back, discard; the route and
pickup deadline kept on the batch row; and a batch that loses its stops or its driver."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateformat import time_format
from django.utils.translation import gettext as _

from spark import hooks
from spark.celery import queue_on_commit
from spark.errors import Conflict, DomainError, InvalidTransition

from .models import Batch, BatchEvent, Order, Stop
from .time_rules import (
    NeedsConfirmation,
    ReadyAtPassed,
    batch_late_if_published_now,
    publish_now_confirmed,
    publish_now_plan,
    ready_at_has_passed,
    sequence_new_late_orders,
    stop_ids_after_move,
    store_local_time,
)
from .transitions import batch_set_status, order_set_status, stop_set_status


@dataclass(frozen=True)
class RouteEstimate:
    """Road distance and driving time (with the time at each stop) of a batch's round trip."""

    meters: int
    seconds: int


# --- Building batches ---------------------------------------------------------------


def batch_route_estimate(*, store, orders: list[Order]) -> RouteEstimate:
    """Meters and seconds of store -> each order in sequence -> back to the store."""
    from spark import geo

    points = [geo.Point.of(store.lat, store.lng)]
    points += [geo.Point.of(o.lat, o.lng) for o in orders]
    points.append(points[0])
    return RouteEstimate(
        meters=geo.route_m(points), seconds=geo.route_s(points) + geo.STOP_SERVICE_SECONDS * len(orders)
    )


def live_stops(batch: Batch):
    """The batch's stops not taken out, in sequence, with their orders."""
    return batch.stops.exclude(status=Stop.Status.REMOVED).select_related("order").order_by("sequence")


def _batch_check_limits(*, batch: Batch, orders: list[Order]) -> None:
    store = batch.store
    totes = sum(o.totes for o in orders)
    if totes > store.batch_max_totes:
        raise DomainError(
            f"That is {totes} totes; one vehicle takes at most {store.batch_max_totes}.", code="over_capacity"
        )
    if len(orders) > store.batch_max_stops:
        raise DomainError(f"A batch has at most {store.batch_max_stops} stops.", code="too_many_stops")


def batch_refresh_route(*, batch: Batch) -> None:
    """Recompute route distance/time and the latest pickup that keeps every window."""
    from datetime import timedelta

    from spark import geo

    stops = list(live_stops(batch))
    orders = [s.order for s in stops]
    estimate = batch_route_estimate(store=batch.store, orders=orders)
    pickup_by = None
    if orders:
        # Latest departure such that each stop is reached before its window closes.
        here = geo.Point.of(batch.store.lat, batch.store.lng)
        elapsed = 0
        slack = []
        for o in orders:
            there = geo.Point.of(o.lat, o.lng)
            elapsed += geo.duration_s(here, there)
            slack.append(o.window_end - timedelta(seconds=elapsed))
            elapsed += geo.STOP_SERVICE_SECONDS
            here = there
        pickup_by = min(slack)
    last = orders[-1] if orders else None
    Batch.objects.filter(pk=batch.pk).update(
        route_meters=estimate.meters,
        route_seconds=estimate.seconds,
        pickup_by=pickup_by,
        stops_count=len(orders),
        stops_tip_cents=sum(o.tip_cents for o in orders),
        stops_heavy=sum(1 for o in orders if o.is_heavy),
        last_stop_lat=last.lat if last else None,
        last_stop_lng=last.lng if last else None,
    )
    batch.refresh_from_db()


def _editable(batch: Batch) -> None:
    if batch.status != Batch.Status.DRAFT:
        raise InvalidTransition("Only a draft batch can be edited; pull it back to draft first.", code="not_draft")


def batch_add_orders(*, batch: Batch, orders: list[Order], actor=None) -> Batch:
    """Append orders as stops of a draft batch. All or nothing."""
    _editable(batch)
    with transaction.atomic():
        Batch.objects.select_for_update().get(pk=batch.pk)  # serialise edits of one batch
        current = [s.order for s in live_stops(batch)]
        for o in orders:
            if o.store_id != batch.store_id:
                raise DomainError(f"Order {o.external_id} belongs to another store.", code="wrong_store")
            if o.status != Order.Status.RECEIVED or any(c.pk == o.pk for c in current):
                raise Conflict(f"Order {o.external_id} is already in a batch or closed.", code="order_unavailable")
        _batch_check_limits(batch=batch, orders=current + list(orders))
        last = batch.stops.exclude(status=Stop.Status.REMOVED).order_by("-sequence").first()
        seq = last.sequence if last else 0
        for o in orders:
            try:
                order_set_status(order=o, to=Order.Status.BATCHED, actor=actor, reason=f"added to batch {batch.pk}")
            except (Conflict, InvalidTransition):
                raise Conflict(
                    f"Order {o.external_id} was just taken into another batch.", code="order_unavailable"
                ) from None
            seq += 1
            try:
                with transaction.atomic():
                    Stop.objects.create(batch=batch, order=o, sequence=seq)
            except IntegrityError:
                raise Conflict(
                    f"Order {o.external_id} is already in another batch.", code="order_unavailable"
                ) from None
        batch_refresh_route(batch=batch)
    return batch


def batch_create(*, store, orders: list[Order], actor=None, batching_run=None) -> Batch:
    """A draft batch with `orders` as stops in the given sequence."""
    if not orders:
        raise DomainError("Pick at least one order for the batch.", code="empty_batch")
    with transaction.atomic():
        batch = Batch.objects.create(store=store, created_by=actor, batching_run=batching_run)
        BatchEvent.objects.create(
            batch=batch,
            from_status="",
            to_status=batch.status,
            actor=actor,
            reason="auto-batching proposal" if batching_run else "built by hand",
        )
        batch_add_orders(batch=batch, orders=orders, actor=actor)
    return batch


def batch_remove_stop(*, stop: Stop, actor=None) -> None:
    """Take an order out of a draft batch; it goes back to the queue. Taking out the last one
    withdraws (cancels) the batch: a batch never lives on without a stop."""
    batch = stop.batch
    _editable(batch)
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        _editable(batch)
        stop_set_status(stop=stop, to=Stop.Status.REMOVED, actor=actor, reason="removed by associate")
        order_set_status(
            order=stop.order, to=Order.Status.RECEIVED, actor=actor, reason=f"removed from batch {batch.pk}"
        )
        _resequence(batch, [s.pk for s in live_stops(batch)])
        batch_withdraw_if_empty(batch=batch, actor=actor, reason="its last order was taken out")
    stop.batch.refresh_from_db()


def _resequence(batch: Batch, stop_ids: list[int]) -> None:
    # Two passes: the live-sequence unique index cannot be deferred (it is partial), so
    # first move every stop out of the way, then write the final numbers.
    live = Stop.objects.filter(batch=batch).exclude(status=Stop.Status.REMOVED)
    for i, stop_id in enumerate(stop_ids, start=1):
        live.filter(pk=stop_id).update(sequence=1000 + i)
    for i, stop_id in enumerate(stop_ids, start=1):
        live.filter(pk=stop_id).update(sequence=i)


def batch_move_stop(*, stop: Stop, offset: int, actor=None, confirmed: bool = False) -> None:
    """Move a stop up (offset -1) or down (+1) in a draft batch (see batch_set_order for
    `confirmed`)."""
    batch = stop.batch
    _editable(batch)
    with transaction.atomic():
        Batch.objects.select_for_update().get(pk=batch.pk)
        ids = stop_ids_after_move(batch=batch, stop_id=stop.pk, offset=offset)
        _batch_resequence_checked(batch=batch, stop_ids=ids, confirmed=confirmed)


def batch_set_order(*, batch: Batch, stop_ids: list[int], actor=None, confirmed: bool = False) -> None:
    """Set the whole stop sequence (drag and drop). A sequence that makes orders miss their
    delivery window (orders_late_in_sequence) is only applied once `confirmed`: otherwise
    NeedsConfirmation lists those orders and nothing changes."""
    _editable(batch)
    with transaction.atomic():
        Batch.objects.select_for_update().get(pk=batch.pk)
        _batch_resequence_checked(batch=batch, stop_ids=stop_ids, confirmed=confirmed)


def _batch_resequence_checked(*, batch: Batch, stop_ids: Sequence[int], confirmed: bool) -> None:
    live = [s.pk for s in live_stops(batch)]
    if sorted(live) != sorted(stop_ids):
        raise DomainError("The new order must list each stop of the batch once.", code="bad_sequence")
    late = sequence_new_late_orders(batch=batch, stop_ids=stop_ids, now=timezone.now())
    if late and not confirmed:
        raise NeedsConfirmation(
            _("In this order, these deliveries would arrive after their window closes:"),
            late=late,
            proposal=tuple(stop_ids),
        )
    _resequence(batch, list(stop_ids))
    batch_refresh_route(batch=batch)


def batch_discard(*, batch: Batch, actor=None, reason: str = "discarded") -> None:
    """Cancel a draft (or unclaimed published) batch; its orders go back to the queue.

    A batch a driver already holds is not discarded here: taking work away from a driver
    is a separate decision (with pay consequences) for ops."""
    if batch.status not in (Batch.Status.DRAFT, Batch.Status.PUBLISHED, Batch.Status.CANCELLED):
        raise InvalidTransition(
            "A driver already has this batch; ask ops to reassign or cancel it.", code="batch_taken"
        )
    with transaction.atomic():
        batch_set_status(batch=batch, to=Batch.Status.CANCELLED, actor=actor, reason=reason)
        for stop in live_stops(batch):
            if stop.status == Stop.Status.PENDING:
                stop_set_status(stop=stop, to=Stop.Status.REMOVED, actor=actor, reason=reason)
                if stop.order.status in (Order.Status.BATCHED, Order.Status.READY):
                    order_set_status(order=stop.order, to=Order.Status.RECEIVED, actor=actor, reason=reason)
        hooks.batch_withdrawn(batch=batch, actor=actor, reason=reason)
        batch_refresh_route(batch=batch)  # stops_count: no live stop left


def batch_publish(*, batch: Batch, actor=None) -> Batch:
    """Publish a draft batch to drivers now: the associate says it can really be picked up.

    Its orders become ready. Dispatch (offers) starts after commit (spark.hooks.batch_published).
    """
    with transaction.atomic():
        locked = Batch.objects.select_for_update().get(pk=batch.pk)
        if locked.status == Batch.Status.PUBLISHED:
            return locked  # a retry
        stops = list(live_stops(locked))
        batch_require_live_stops(batch=locked, action="published", stops=stops)
        _batch_check_limits(batch=locked, orders=[s.order for s in stops])
        batch_set_status(
            batch=locked,
            to=Batch.Status.PUBLISHED,
            actor=actor,
            reason="marked ready",
            updates={
                "ready_at": None,
                "stops_count": len(stops),
                "stops_tip_cents": sum(s.order.tip_cents for s in stops),
                "stops_heavy": sum(1 for s in stops if s.order.is_heavy),
            },
        )
        for s in stops:
            order_set_status(order=s.order, to=Order.Status.READY, actor=actor, reason=f"batch {batch.pk} published")
    batch.refresh_from_db()
    return batch


def batch_publish_now(*, batch: Batch, actor=None, confirmed: bool = False) -> Batch:
    """The associate's "ready now": publish a draft, unless a driver leaving now would reach
    some of its orders after their window (its pickup time has passed): then only once
    `confirmed`, and NeedsConfirmation lists those orders otherwise (nothing changes)."""
    now = timezone.now()
    if batch.status == Batch.Status.DRAFT and not confirmed:
        if late := batch_late_if_published_now(batch=batch, now=now):
            raise NeedsConfirmation(_late_publish_question(batch, now), late=late)
    return batch_publish(batch=batch, actor=actor)


def _late_publish_question(batch: Batch, now) -> str:
    # Late with its pickup time still ahead: its stop order waits for a later window first.
    if batch.pickup_by is None or batch.pickup_by >= now:
        return _("Leaving now, in this stop order, these deliveries arrive after their window closes:")
    shown = time_format(store_local_time(batch.store, batch.pickup_by), "g:i A")
    return _(
        "Its pickup time (%(time)s) has passed: leaving now, these deliveries arrive after their window closes:"
    ) % {"time": shown}


@dataclass(frozen=True)
class PublishNowResult:
    """What "publish all drafts now" did: `published`; `held`, drafts left as they were because
    they needed a confirmation they did not get (their own "ready at" is ahead, or they are
    late); `failed`, drafts a rule refused, each with the error."""

    published: list[Batch]
    held: list[Batch]
    failed: list[tuple[Batch, DomainError]]


def batches_publish_now(
    *, batches: Sequence[Batch], actor=None, confirmed_ids: Collection[int] = ()
) -> PublishNowResult:
    """Publish a set of drafts now (time_rules.publish_now_plan): a draft with its own "ready at"
    still ahead, or one whose orders can no longer all be reached in time, goes out only if its
    id is in `confirmed_ids` (the associate ticked it); otherwise it is left as it was."""
    plan = publish_now_plan(batches=batches, now=timezone.now())
    going = publish_now_confirmed(plan=plan, confirmed_ids=confirmed_ids)
    published, failed = [], []
    for batch in going:
        try:
            published.append(batch_publish(batch=batch, actor=actor))
        except DomainError as exc:
            failed.append((batch, exc))
    held = [b for b in plan.needs_confirmation if b not in going]
    return PublishNowResult(published=published, held=held, failed=failed)


def batch_schedule_publish(*, batch: Batch, ready_at, actor=None) -> Batch:
    """Publish automatically at `ready_at` (a countdown task and the beat sweeper both try).
    A time that has passed is refused (ReadyAtPassed): the associate decides whether to
    publish now instead, it is never reported as scheduled."""
    from .tasks import publish_batch_if_due

    _editable(batch)
    if ready_at_has_passed(ready_at=ready_at, now=timezone.now()):
        shown = time_format(store_local_time(batch.store, ready_at), "g:i A")
        raise ReadyAtPassed(_("%(time)s has already passed. Publish the batch now instead?") % {"time": shown})
    batch_require_live_stops(batch=batch, action="published")
    Batch.objects.filter(pk=batch.pk, status=Batch.Status.DRAFT).update(ready_at=ready_at)
    batch.refresh_from_db()
    delay = (ready_at - timezone.now()).total_seconds()
    from django.conf import settings

    if delay <= settings.SPARK_MAX_TASK_COUNTDOWN_SECONDS:
        queue_on_commit(publish_batch_if_due, batch.pk, countdown=delay)
    return batch


def batch_publish_if_due(*, batch_id: int) -> bool:
    """Publish a draft batch whose ready_at has passed. Idempotent; False if not due/gone."""
    batch = Batch.objects.filter(pk=batch_id, status=Batch.Status.DRAFT, ready_at__lte=timezone.now()).first()
    if batch is None:
        return False
    try:
        batch_publish(batch=batch)
    except DomainError:
        return False
    return True


def batches_publish_due(*, limit: int = 200) -> int:
    ids = list(
        Batch.objects.filter(status=Batch.Status.DRAFT, ready_at__lte=timezone.now())
        .order_by("ready_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(batch_publish_if_due(batch_id=i) for i in ids)


def batch_unpublish(*, batch: Batch, actor=None) -> Batch:
    """Pull a published batch nobody has taken back to draft (orders back to batched)."""
    with transaction.atomic():
        batch_set_status(batch=batch, to=Batch.Status.DRAFT, actor=actor, reason="pulled back by store")
        for s in live_stops(batch):
            order_set_status(order=s.order, to=Order.Status.BATCHED, actor=actor, reason="batch pulled back")
        hooks.batch_withdrawn(batch=batch, actor=actor, reason="batch pulled back")
    return batch


# --- A batch that loses its stops or its driver ---------------------------------------
#
# Two ways a batch stops being workable before pickup, through no fault of the delivery:
# every order in it is cancelled (it is withdrawn), or its driver can no longer act on it
# (it goes back to dispatch). Either way a driver who held it has their accepted offer
# released and is paid for the trip, in the same transaction as the status change, and is
# told by push: dispatch does that (dispatch.services.batch_take_from_driver, set off through
# spark.hooks.batch_taken_from_driver); sending a batch back to dispatch is
# dispatch.services.batch_release_to_dispatch.


def batch_require_live_stops(*, batch: Batch, action: str, stops: list | None = None) -> None:
    """The one rule every entry point asks (publish, offer accept, board claim, handoff,
    complete): a batch without a live stop is never dispatched or worked. `stops`: the live
    stops when the caller has them loaded already (no second query)."""
    has_stops = bool(stops) if stops is not None else live_stops(batch).exists()
    if not has_stops:
        raise InvalidTransition(
            f"An empty batch cannot be {action}: every order in it was cancelled or taken out.", code="empty_batch"
        )


def batch_withdraw_if_empty(*, batch: Batch, actor=None, reason: str) -> bool:
    """Call in the transaction that took a stop out of `batch`, with the batch row locked.

    With live stops left, the route, pickup deadline and stop count are refreshed. With none,
    the batch is withdrawn: cancelled with `reason` (the store's dashboard shows it), pending
    offers withdrawn and their drivers told, and a driver who held it (assigned or at the
    store) released and paid for the trip. Returns whether it withdrew the batch."""
    if live_stops(batch).exists():
        batch_refresh_route(batch=batch)
        return False
    if batch.status in (Batch.Status.ASSIGNED, Batch.Status.AT_STORE):
        hooks.batch_taken_from_driver(batch=batch, actor=actor, reason=f"batch withdrawn: {reason}")
    if batch.status in (Batch.Status.DRAFT, Batch.Status.PUBLISHED, Batch.Status.ASSIGNED, Batch.Status.AT_STORE):
        batch_set_status(
            batch=batch, to=Batch.Status.CANCELLED, actor=actor, reason=f"withdrawn: {reason}", current=batch.status
        )
    hooks.batch_withdrawn(batch=batch, actor=actor, reason=f"batch withdrawn: {reason}")
    batch_refresh_route(batch=batch)  # no live stop: the count goes to 0 (allowed once cancelled)
    return True


def batch_let_driver_finish(*, batch: Batch, actor=None) -> Batch:
    """Ops let a driver who can no longer take work finish the batch they hold: they may still
    act on this batch, and only on it (orders.selectors.driver_finishing_batch). Idempotent."""
    Batch.objects.filter(pk=batch.pk, status__in=Batch.ACTIVE_STATUSES, finish_first_at__isnull=True).update(
        finish_first_at=timezone.now()
    )
    batch.refresh_from_db()
    return batch
