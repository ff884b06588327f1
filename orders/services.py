"""Every write to orders, batches and stops goes through here (offers: dispatch.services).

Each status change is one call of spark.statemachine.transition: allowed-transition map,
guarded UPDATE, event row, and a no-op when repeated.
"""

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from spark import hooks
from spark.celery import queue_on_commit
from spark.errors import Conflict, DomainError, InvalidTransition, NotFound
from spark.statemachine import TransitionResult, transition

from . import notifications
from .models import (
    Batch,
    BatchEvent,
    Order,
    OrderEvent,
    Stop,
    StopEvent,
)

logger = logging.getLogger(__name__)


def order_set_status(*, order: Order, to: str, actor=None, reason: str = "", updates=None) -> TransitionResult:
    return transition(
        order,
        to=to,
        allowed=Order.TRANSITIONS,
        event_model=OrderEvent,
        event_fk="order",
        actor=actor,
        reason=reason,
        updates=updates,
    )


def stop_set_status(
    *, stop: Stop, to: str, actor=None, reason: str = "", lat=None, lng=None, updates=None
) -> TransitionResult:
    return transition(
        stop,
        to=to,
        allowed=Stop.TRANSITIONS,
        event_model=StopEvent,
        event_fk="stop",
        actor=actor,
        reason=reason,
        lat=lat,
        lng=lng,
        updates=updates,
    )


# Timestamp columns stamped when a batch enters a status.
_BATCH_STAMPS: dict[str, str] = {
    Batch.Status.PUBLISHED: "published_at",
    Batch.Status.ASSIGNED: "assigned_at",
    Batch.Status.AT_STORE: "arrived_at_store_at",
    Batch.Status.PICKED_UP: "picked_up_at",
    Batch.Status.COMPLETED: "closed_at",
    Batch.Status.CANCELLED: "closed_at",
    Batch.Status.RETURNED: "closed_at",
}


def batch_set_status(
    *,
    batch: Batch,
    to: str,
    actor=None,
    reason: str = "",
    lat=None,
    lng=None,
    updates=None,
    extra_filter=None,
    current: str | None = None,
    savepoint: bool = True,
) -> TransitionResult:
    """The one path for batch status changes; writes a BatchEvent (who, when, where, why)."""
    values = dict(updates or {})
    stamp = _BATCH_STAMPS.get(to)
    if stamp and stamp not in values:
        values[stamp] = timezone.now()
    if to in (Batch.Status.PUBLISHED, Batch.Status.DRAFT):
        # Back on offer: nobody holds it any more, nor may finish it.
        values.setdefault("driver", None)
        values.setdefault("finish_first_at", None)
    result = transition(
        batch,
        to=to,
        allowed=Batch.TRANSITIONS,
        event_model=BatchEvent,
        event_fk="batch",
        actor=actor,
        reason=reason,
        lat=lat,
        lng=lng,
        updates=values,
        extra_filter=extra_filter,
        current=current,
        savepoint=savepoint,
    )
    if result.changed and to == Batch.Status.PUBLISHED:
        # Back on offer (published, or back to dispatch): dispatch starts once committed.
        hooks.batch_published(batch_id=batch.pk)
    return result


# --- Intake -------------------------------------------------------------------------


def _intake_fingerprint(data: dict) -> str:
    """Stable hash of a validated intake body, to tell a safe retry from a conflicting one."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def order_intake(*, store, data: dict, idempotency_key: str | None = None) -> tuple[Order, bool]:
    """Create an order from the store's e-commerce system. Returns (order, created).

    Idempotent: the same external id (or Idempotency-Key) with the same body returns the
    existing order; with a different body it is a Conflict and nothing changes. Two
    identical requests racing each other end with one row (the unique index decides).
    """
    fingerprint = _intake_fingerprint(data)

    def existing() -> Order | None:
        q = Order.objects.filter(store=store, external_id=data["external_id"])
        found = q.first()
        if found is None and idempotency_key:
            found = Order.objects.filter(store=store, idempotency_key=idempotency_key).first()
        return found

    def replay(found: Order) -> tuple[Order, bool]:
        if found.intake_fingerprint != fingerprint:
            what = "external_id" if found.external_id == data["external_id"] else "Idempotency-Key"
            raise Conflict(f"An order with this {what} already exists with different details.", code="intake_conflict")
        if idempotency_key and found.idempotency_key not in (None, idempotency_key):
            raise Conflict("This external_id was sent before with another Idempotency-Key.", code="intake_conflict")
        return found, False

    found = existing()
    if found:
        return replay(found)
    try:
        with transaction.atomic():
            order = Order.objects.create(
                store=store, intake_fingerprint=fingerprint, idempotency_key=idempotency_key or None, **data
            )
            OrderEvent.objects.create(order=order, from_status="", to_status=order.status, reason="intake")
    except IntegrityError:
        found = existing()
        if found is None:
            raise
        return replay(found)
    return order, True


_PICKED_UP_ORDER = (Order.Status.PICKED_UP, Order.Status.DELIVERED, Order.Status.UNDELIVERABLE, Order.Status.RETURNED)


def order_cancel(*, order: Order, reason: str, actor=None) -> Order:
    """Cancel an order until pickup. If it sits in a batch that is not yet picked up, its stop
    leaves the batch, and a batch left without a live stop is withdrawn in the same
    transaction (batch_withdraw_if_empty)."""
    too_late = InvalidTransition(
        "The order has been picked up already; it can no longer be cancelled.", code="too_late_to_cancel"
    )
    if order.status in _PICKED_UP_ORDER:
        raise too_late
    with transaction.atomic():
        stop = Stop.objects.filter(order=order, status=Stop.Status.PENDING).first()
        # The batch row first, as every batch write takes its locks (batch, then its orders and
        # stops): a claim or an accept racing this cancel then either lands before it (and the
        # withdrawal takes the batch back from that driver) or finds the batch withdrawn.
        batch = Batch.objects.select_for_update().get(pk=stop.batch_id) if stop else None
        try:
            order_set_status(
                order=order,
                to=Order.Status.CANCELLED,
                actor=actor,
                reason=reason,
                updates={"cancel_reason": reason[:255]},
            )
        except InvalidTransition:
            order.refresh_from_db()
            if order.status in _PICKED_UP_ORDER:
                raise too_late from None  # handed over meanwhile
            raise
        if stop is not None and batch is not None:
            removed = stop_set_status(stop=stop, to=Stop.Status.REMOVED, actor=actor, reason="order cancelled")
            if removed.changed:
                why = f"its last order ({order.external_id}) was cancelled" + (f": {reason}" if reason else "")
                batch_withdraw_if_empty(batch=batch, actor=actor, reason=why)
    return order


# --- Building batches ---------------------------------------------------------------


def batch_route_estimate(*, store, orders: list[Order]) -> tuple[int, int]:
    """(meters, seconds) of store -> each order in sequence -> back to the store."""
    from spark import geo

    points = [geo.Point.of(store.lat, store.lng)]
    points += [geo.Point.of(o.lat, o.lng) for o in orders]
    points.append(points[0])
    return geo.route_m(points), geo.route_s(points) + geo.STOP_SERVICE_SECONDS * len(orders)


def _live_stops(batch: Batch):
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

    stops = list(_live_stops(batch))
    orders = [s.order for s in stops]
    meters, seconds = batch_route_estimate(store=batch.store, orders=orders)
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
        route_meters=meters,
        route_seconds=seconds,
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
        current = [s.order for s in _live_stops(batch)]
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
        _resequence(batch, [s.pk for s in _live_stops(batch)])
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


def batch_move_stop(*, stop: Stop, offset: int, actor=None) -> None:
    """Move a stop up (offset -1) or down (+1) in a draft batch."""
    batch = stop.batch
    _editable(batch)
    with transaction.atomic():
        Batch.objects.select_for_update().get(pk=batch.pk)
        ids = [s.pk for s in _live_stops(batch)]
        i = ids.index(stop.pk)
        j = max(0, min(len(ids) - 1, i + offset))
        ids.insert(j, ids.pop(i))
        _resequence(batch, ids)
        batch_refresh_route(batch=batch)


def batch_set_order(*, batch: Batch, stop_ids: list[int], actor=None) -> None:
    """Set the whole stop sequence (drag and drop)."""
    _editable(batch)
    with transaction.atomic():
        Batch.objects.select_for_update().get(pk=batch.pk)
        live = [s.pk for s in _live_stops(batch)]
        if sorted(live) != sorted(stop_ids):
            raise DomainError("The new order must list each stop of the batch once.", code="bad_sequence")
        _resequence(batch, stop_ids)
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
        for stop in _live_stops(batch):
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
        stops = list(_live_stops(locked))
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


def batch_schedule_publish(*, batch: Batch, ready_at, actor=None) -> Batch:
    """Publish automatically at `ready_at` (a countdown task and the beat sweeper both try)."""
    from .tasks import publish_batch_if_due

    _editable(batch)
    if ready_at <= timezone.now():
        return batch_publish(batch=batch, actor=actor)
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
        for s in _live_stops(batch):
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
    has_stops = bool(stops) if stops is not None else _live_stops(batch).exists()
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
    if _live_stops(batch).exists():
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


# --- At the store -------------------------------------------------------------------


def batch_driver_arrived(*, batch: Batch, driver, lat=None, lng=None, actor=None) -> Batch:
    """The driver checked in at the store for this batch (assigned -> at_store)."""
    if batch.driver_id != driver.pk:
        raise NotFound("This batch is not yours.")
    batch_set_status(batch=batch, to=Batch.Status.AT_STORE, actor=actor, reason="driver checked in", lat=lat, lng=lng)
    return batch


def batch_handoff(*, batch: Batch, pickup_code: str, actor=None) -> Batch:
    """The associate hands the batch over after checking the driver's pickup code.

    A wrong code changes nothing. Orders become picked up with the batch.
    """
    import hmac

    code = (pickup_code or "").strip()
    if batch.status not in (Batch.Status.AT_STORE, Batch.Status.ASSIGNED):
        raise InvalidTransition("This batch is not waiting for a handoff.", code="not_at_store")
    if not hmac.compare_digest(code, batch.pickup_code):
        raise DomainError(
            "That pickup code does not match this batch. Nothing was handed over.", code="wrong_pickup_code"
        )
    batch_require_live_stops(batch=batch, action="handed over")
    with transaction.atomic():
        if batch.status == Batch.Status.ASSIGNED:
            # Associate confirmed the driver in person without the app check-in.
            batch_set_status(batch=batch, to=Batch.Status.AT_STORE, actor=actor, reason="confirmed by associate")
        picked = batch_set_status(
            batch=batch,
            to=Batch.Status.PICKED_UP,
            actor=actor,
            reason="handed over",
            extra_filter={"pickup_code": batch.pickup_code},
        )
        for s in _live_stops(batch):
            order_set_status(order=s.order, to=Order.Status.PICKED_UP, actor=actor, reason="handed over")
        if picked.changed:
            batch_notify_on_the_way(batch=batch)
    return batch


# --- Returns ------------------------------------------------------------------------

RETURN_REASONS = {
    "refused_alcohol": "Alcohol refused (no valid ID / under 21)",
    "no_one_home": "No one home",
    "damaged": "Damaged",
    "refused": "Refused by customer",
    "wrong_address": "Address not found",
    "other": "Other",
}


def order_return_check_in(*, order: Order, reason: str, actor=None) -> Order:
    """The associate checks an undeliverable order back in; it ends returned with its reason.
    When the last outstanding return of a returning batch is in, the batch is returned."""
    if reason not in RETURN_REASONS:
        raise DomainError(
            "Pick a return reason from the list.",
            code="bad_reason",
            fields={"reason": [f"One of: {', '.join(RETURN_REASONS)}"]},
        )
    if order.status != Order.Status.UNDELIVERABLE:
        if order.status == Order.Status.RETURNED:
            return order
        raise InvalidTransition("Only an undeliverable order can be checked in as a return.", code="not_returning")
    with transaction.atomic():
        order_set_status(
            order=order,
            to=Order.Status.RETURNED,
            actor=actor,
            reason=RETURN_REASONS[reason],
            updates={"return_reason": reason},
        )
        stop = Stop.objects.filter(order=order, status=Stop.Status.FAILED).select_related("batch").first()
        if stop:
            stop_set_status(stop=stop, to=Stop.Status.RETURNED, actor=actor, reason=reason)
            batch = stop.batch
            outstanding = batch.stops.filter(status=Stop.Status.FAILED).exists()
            if batch.status == Batch.Status.RETURNING and not outstanding:
                batch_set_status(batch=batch, to=Batch.Status.RETURNED, actor=actor, reason="returns checked in")
    return order


# --- Auto-batching ------------------------------------------------------------------


def batching_run_start(*, store, window_from, window_to, actor=None, time_limit_seconds: int = 5):
    """Queue an auto-batching job for the store's received orders in the window."""
    from .models import BatchingRun
    from .tasks import run_auto_batching

    if window_to <= window_from:
        raise DomainError("The window must end after it starts.", code="bad_window")
    run = BatchingRun.objects.create(
        store=store,
        window_from=window_from,
        window_to=window_to,
        created_by=actor,
        time_limit_seconds=time_limit_seconds,
    )
    queue_on_commit(run_auto_batching, run.pk)
    return run


def batching_run_execute(*, run_id: int) -> bool:
    """Solve and turn the proposal into draft batches the associate can edit, discard or
    publish. Runs once: only the caller that moves the run from queued to running works."""
    from .batching import propose_batches
    from .models import BatchingRun

    if not BatchingRun.objects.filter(pk=run_id, status=BatchingRun.Status.QUEUED).update(
        status=BatchingRun.Status.RUNNING, started_at=timezone.now()
    ):
        return False
    run = BatchingRun.objects.select_related("store").get(pk=run_id)
    store = run.store
    try:
        orders = list(
            Order.objects.filter(
                store=store,
                status=Order.Status.RECEIVED,
                window_start__lt=run.window_to,
                window_end__gt=run.window_from,
            ).order_by("window_start", "pk")
        )
        proposal = propose_batches(
            store=store,
            orders=orders,
            max_totes=store.batch_max_totes,
            max_stops=store.batch_max_stops,
            time_limit_s=run.time_limit_seconds,
        )
        by_id = {o.pk: o for o in orders}
        made, skipped = 0, list(proposal.unassigned)
        for proposed in proposal.batches:
            try:
                batch_create(
                    store=store, orders=[by_id[i] for i in proposed.order_ids], actor=run.created_by, batching_run=run
                )
                made += 1
            except DomainError:
                # An order was batched by hand meanwhile: leave that trip for the associate.
                skipped.extend(proposed.order_ids)
        BatchingRun.objects.filter(pk=run.pk).update(
            status=BatchingRun.Status.DONE,
            finished_at=timezone.now(),
            orders_considered=len(orders),
            batches_proposed=made,
            unassigned_order_ids=skipped,
            total_meters=proposal.distance_m,
        )
    except Exception as exc:  # the associate must see a failed run, not a spinner forever
        BatchingRun.objects.filter(pk=run.pk).update(
            status=BatchingRun.Status.FAILED, finished_at=timezone.now(), error=str(exc)[:2000]
        )
        raise
    return True


def batching_runs_execute_stalled(*, older_than_seconds: int = 60, limit: int = 3) -> int:
    """Beat safety net behind run_auto_batching (DESIGN rule 3): a run still queued this long
    after it was started lost its task (the broker was down when it was queued), so the sweeper
    runs it here. A run runs once whoever gets there first (batching_run_execute)."""
    from .models import BatchingRun

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stalled = (
        BatchingRun.objects.filter(status=BatchingRun.Status.QUEUED, created_at__lte=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    done = 0
    for run_id in list(stalled):
        try:
            done += batching_run_execute(run_id=run_id)
        except Exception:  # recorded on the run as failed; the next run still gets its turn
            logger.exception("auto-batching run %s failed", run_id)
    return done


# --- Delivery (driver) --------------------------------------------------------------
#
# The driver's half of the trip after the handoff: arrive at each stop in sequence, deliver
# with a photo (and the ID check for alcohol) or mark it undeliverable with a reason, then
# complete the batch. Every write here first locks the batch row, so a driver's retries (or
# two phones) take turns: "the previous stops are finished" and "every stop is finished" are
# then checked against rows nobody else is changing. The status changes themselves stay
# guarded updates through the *_set_status helpers, and a repeat is a no-op.

# Stops that need no more work from the driver.
STOP_DONE_STATUSES = (Stop.Status.DELIVERED, Stop.Status.FAILED, Stop.Status.RETURNED)
ALCOHOL_MIN_AGE = 21


def _driver_owns(batch: Batch, driver) -> None:
    # The API scopes its querysets to the driver first (404); this is the services' own guard.
    if driver is None or batch.driver_id != driver.pk:
        raise NotFound("This batch is not yours.")


def _lock_batch(batch: Batch, driver) -> Batch:
    """Lock the batch row until the transaction ends; check it is still the driver's."""
    locked = Batch.objects.select_for_update().get(pk=batch.pk)
    _driver_owns(locked, driver)
    return locked


def _coord(value, axis):
    """A latitude/longitude as the Decimal(9, 6) the columns hold (spark.geo's rule: rounded
    half-up, out of range refused), or None when the phone sent none."""
    from spark import geo

    if value is None or value == "":
        return None
    return geo.coordinate(value, axis=axis)


def _check_stop_open(stop: Stop) -> None:
    if stop.status == Stop.Status.DELIVERED:
        raise InvalidTransition(f"Stop {stop.sequence} was delivered already.", code="stop_done")
    if stop.status in (Stop.Status.FAILED, Stop.Status.RETURNED):
        raise InvalidTransition(f"Stop {stop.sequence} was marked undeliverable already.", code="stop_done")
    if stop.status == Stop.Status.REMOVED:
        raise InvalidTransition(f"Stop {stop.sequence} was taken out of this batch.", code="stop_removed")


def _check_stop_is_next(*, batch: Batch, stop: Stop, action: str) -> None:
    """The batch is on the road and every stop before this one is finished."""
    if batch.status in (Batch.Status.ASSIGNED, Batch.Status.AT_STORE):
        raise InvalidTransition(
            f"You cannot {action} before pickup: collect the groceries at the store first "
            "(the associate confirms the handoff).",
            code="not_picked_up",
        )
    if batch.status != Batch.Status.PICKED_UP:
        raise InvalidTransition(
            f"This batch is {batch.get_status_display().lower()}; its stops can no longer change.",
            code="batch_closed",
        )
    earlier = (
        Stop.objects.filter(batch_id=batch.pk, sequence__lt=stop.sequence)
        .exclude(status__in=(*STOP_DONE_STATUSES, Stop.Status.REMOVED))
        .order_by("sequence")
        .first()
    )
    if earlier is not None:
        raise InvalidTransition(
            f"Stop {earlier.sequence} comes first: deliver it or mark it undeliverable before stop {stop.sequence}.",
            code="out_of_order",
        )


def batch_check_in(*, batch: Batch, driver, lat=None, lng=None) -> Batch:
    """The driver's "I'm at the store" (assigned -> at_store), with the phone's position on
    the event. A repeat is a no-op; after pickup it says so instead of a bare transition error."""
    _driver_owns(batch, driver)
    batch.refresh_from_db()
    if batch.status in (Batch.Status.PICKED_UP, Batch.Status.RETURNING, Batch.Status.COMPLETED, Batch.Status.RETURNED):
        raise InvalidTransition("You picked up this batch already; head to the stops.", code="already_picked_up")
    if batch.status == Batch.Status.CANCELLED:
        raise InvalidTransition("This batch was cancelled.", code="batch_closed")
    return batch_driver_arrived(
        batch=batch, driver=driver, lat=_coord(lat, "lat"), lng=_coord(lng, "lng"), actor=driver.user
    )


def stop_arrive(*, stop: Stop, driver, lat=None, lng=None) -> Stop:
    """The driver is at the door of the next stop (pending -> arrived)."""
    _driver_owns(stop.batch, driver)
    with transaction.atomic():
        batch = _lock_batch(stop.batch, driver)
        stop.refresh_from_db()
        if stop.status == Stop.Status.ARRIVED:
            return stop  # a retry
        _check_stop_open(stop)
        _check_stop_is_next(batch=batch, stop=stop, action="arrive at a stop")
        stop_set_status(
            stop=stop,
            to=Stop.Status.ARRIVED,
            actor=driver.user,
            reason="driver arrived",
            lat=_coord(lat, "lat"),
            lng=_coord(lng, "lng"),
            updates={"arrived_at": timezone.now()},
        )
    return stop


def _check_alcohol_id(*, order: Order, id_birth_date, id_photo) -> None:
    """21 or older today in the store's timezone, with a photo of the ID; else nothing happens
    and the driver takes the refusal path (stop_fail with refused_alcohol)."""
    from zoneinfo import ZoneInfo

    refusal = "Without a valid ID of someone 21 or older, mark the stop undeliverable as 'Alcohol refused'."
    missing = {}
    if id_birth_date is None:
        missing["id_birth_date"] = ["Enter the date of birth shown on the customer's ID."]
    if not id_photo:
        missing["id_photo"] = ["Take a photo of the customer's ID."]
    if missing:
        raise DomainError(
            f"This order contains alcohol: check the customer's ID first. {refusal}", code="id_required", fields=missing
        )
    today = timezone.localdate(timezone=ZoneInfo(order.store.zone.timezone))
    age = today.year - id_birth_date.year - ((today.month, today.day) < (id_birth_date.month, id_birth_date.day))
    if id_birth_date > today or age > 120:
        raise DomainError(
            "That date of birth is not possible; check the ID again.",
            code="bad_birth_date",
            fields={"id_birth_date": ["Not a possible date of birth."]},
        )
    if age < ALCOHOL_MIN_AGE:
        message = f"The customer is under {ALCOHOL_MIN_AGE}: do not hand over this order. {refusal}"
        raise DomainError(message, code="under_21", fields={"id_birth_date": [f"Under {ALCOHOL_MIN_AGE}."]})


def _store_image(stop: Stop, field_name: str, content) -> str:
    """Save through the field's storage (filesystem or S3 by settings); returns the name."""
    from typing import cast

    from django.db.models import FileField

    field = cast(FileField, Stop._meta.get_field(field_name))
    name = field.generate_filename(stop, content.name)
    return field.storage.save(name, content, max_length=field.max_length)


def _delete_images(names: list[str]) -> None:
    storage = Stop.proof_photo.field.storage
    for name in names:
        try:
            storage.delete(name)
        except Exception:  # an orphan file must not hide the real error
            pass


def stop_deliver(*, stop: Stop, driver, photo, lat=None, lng=None, id_birth_date=None, id_photo=None) -> Stop:
    """Deliver the stop with a photo (arrived -> delivered; a pending next stop arrives
    implicitly). The order becomes delivered and the customer's email is queued.

    Alcohol needs the ID check. A delivery farther from the address than
    SPARK_DELIVERY_MAX_DISTANCE_M still counts, with the distance recorded as the reason on
    the stop's event. Anything refused changes nothing; a repeat returns the stop unchanged.
    """
    from django.conf import settings

    from spark import geo
    from spark.photos import clean_photo

    _driver_owns(stop.batch, driver)
    stop.refresh_from_db()
    if stop.status == Stop.Status.DELIVERED:
        return stop  # a retry (the phone re-sends when it missed our answer)
    # The cheap checks first, so an out-of-order tap hears so before any photo work; they are
    # checked again under the lock below.
    _check_stop_open(stop)
    _check_stop_is_next(batch=Batch.objects.get(pk=stop.batch_id), stop=stop, action="deliver")
    order = Order.objects.select_related("store__zone").get(pk=stop.order_id)
    if not photo:
        raise DomainError(
            "Take a photo of the groceries at the door; it is your proof of delivery.",
            code="photo_required",
            fields={"photo": ["A photo is required."]},
        )
    if order.contains_alcohol:
        _check_alcohol_id(order=order, id_birth_date=id_birth_date, id_photo=id_photo)
    proof = clean_photo(photo, field="photo")
    # Not an alcohol order: an ID photo sent anyway is not ours to keep.
    id_image = clean_photo(id_photo, field="id_photo") if order.contains_alcohol else None

    lat, lng = _coord(lat, "lat"), _coord(lng, "lng")
    distance = None
    reason = "delivered (the phone sent no location)"
    if lat is not None and lng is not None:
        # Straight line, not the road estimate: how far the phone was from the door.
        distance = round(geo.haversine_m(geo.Point.of(lat, lng), geo.Point.of(order.lat, order.lng)))
        limit = settings.SPARK_DELIVERY_MAX_DISTANCE_M
        reason = f"delivered {distance} m from the address (more than {limit} m)" if distance > limit else "delivered"

    # Files go to storage before the transaction (an S3 upload must not hold the batch lock)
    # and are deleted again if the delivery does not happen.
    stored = [_store_image(stop, "proof_photo", proof)]
    updates = {
        "proof_photo": stored[0],
        "delivered_lat": lat,
        "delivered_lng": lng,
        "distance_from_address_m": distance,
    }
    if id_image is not None:
        stored.append(_store_image(stop, "id_photo", id_image))
        updates.update(id_checked=True, id_birth_date=id_birth_date, id_photo=stored[1])
    try:
        with transaction.atomic():
            batch = _lock_batch(stop.batch, driver)
            stop.refresh_from_db()
            if stop.status == Stop.Status.DELIVERED:
                _delete_images(stored)  # a concurrent retry won; keep its photo
                return stop
            _check_stop_open(stop)
            _check_stop_is_next(batch=batch, stop=stop, action="deliver")
            now = timezone.now()
            if stop.status == Stop.Status.PENDING:
                stop_set_status(
                    stop=stop,
                    to=Stop.Status.ARRIVED,
                    actor=driver.user,
                    lat=lat,
                    lng=lng,
                    reason="arrived (with the delivery)",
                    updates={"arrived_at": now},
                )
            stop_set_status(
                stop=stop,
                to=Stop.Status.DELIVERED,
                actor=driver.user,
                reason=reason,
                lat=lat,
                lng=lng,
                updates={**updates, "delivered_at": now},
            )
            order_set_status(
                order=order,
                to=Order.Status.DELIVERED,
                actor=driver.user,
                reason=f"delivered (stop {stop.sequence} of batch {batch.pk})",
            )
            notifications.queue_delivered_email(order.pk)  # in this transaction: sent once it commits
    except BaseException:
        _delete_images(stored)
        raise
    return stop


def stop_fail(*, stop: Stop, driver, reason: str, lat=None, lng=None) -> Stop:
    """The stop cannot be delivered (pending or arrived -> failed); the order becomes
    undeliverable and goes back to the store: batch_complete then sends the batch returning."""
    _driver_owns(stop.batch, driver)
    if reason not in RETURN_REASONS:
        raise DomainError(
            "Pick a reason from the list.",
            code="bad_reason",
            fields={"reason": [f"One of: {', '.join(RETURN_REASONS)}"]},
        )
    with transaction.atomic():
        batch = _lock_batch(stop.batch, driver)
        stop.refresh_from_db()
        if stop.status in (Stop.Status.FAILED, Stop.Status.RETURNED):
            return stop  # a retry
        _check_stop_open(stop)
        _check_stop_is_next(batch=batch, stop=stop, action="mark a stop undeliverable")
        stop_set_status(
            stop=stop,
            to=Stop.Status.FAILED,
            actor=driver.user,
            reason=RETURN_REASONS[reason],
            lat=_coord(lat, "lat"),
            lng=_coord(lng, "lng"),
            updates={"failure_reason": reason},
        )
        order_set_status(
            order=stop.order,
            to=Order.Status.UNDELIVERABLE,
            actor=driver.user,
            reason=f"{RETURN_REASONS[reason]} (stop {stop.sequence} of batch {batch.pk})",
        )
    return stop


def batch_complete(*, batch: Batch, driver) -> Batch:
    """Every stop is delivered or undeliverable: the batch completes, or, with orders to take
    back, goes returning until the associate checks them in (order_return_check_in)."""
    _driver_owns(batch, driver)
    with transaction.atomic():
        locked = _lock_batch(batch, driver)
        if locked.status in (Batch.Status.COMPLETED, Batch.Status.RETURNING, Batch.Status.RETURNED):
            batch.refresh_from_db()
            return batch  # a retry
        if locked.status in (Batch.Status.ASSIGNED, Batch.Status.AT_STORE):
            raise InvalidTransition("You have not picked up this batch yet.", code="not_picked_up")
        if locked.status != Batch.Status.PICKED_UP:
            raise InvalidTransition(
                f"This batch is {locked.get_status_display().lower()}; it cannot be completed.", code="batch_closed"
            )
        stops = list(_live_stops(locked))
        batch_require_live_stops(batch=locked, action="completed", stops=stops)
        left = [s for s in stops if s.status not in STOP_DONE_STATUSES]
        if left:
            listed = [f"Stop {s.sequence}: {s.order.address_line1}" for s in left]
            raise InvalidTransition(
                f"Finish every stop first; still open: {', '.join(f'stop {s.sequence}' for s in left)}.",
                code="stops_left",
                fields={"stops": listed},
            )
        returns = [s for s in stops if s.status in (Stop.Status.FAILED, Stop.Status.RETURNED)]
        if not returns:
            batch_set_status(batch=locked, to=Batch.Status.COMPLETED, actor=driver.user, reason="all stops delivered")
        else:
            batch_set_status(
                batch=locked,
                to=Batch.Status.RETURNING,
                actor=driver.user,
                reason=f"{len(returns)} undeliverable order(s) going back to the store",
            )
            if not any(s.status == Stop.Status.FAILED for s in returns):
                # The associate checked every return in before the driver tapped complete.
                batch_set_status(
                    batch=locked, to=Batch.Status.RETURNED, actor=driver.user, reason="returns already checked in"
                )
    batch.refresh_from_db()
    return batch


def batch_notify_on_the_way(*, batch: Batch) -> None:
    """Owe the customers their "on the way" emails, in the transaction of the handoff
    (orders.notifications, through the outbox: sent once it commits, once per order)."""
    for stop in _live_stops(batch):
        notifications.queue_on_the_way_email(stop.order_id)
