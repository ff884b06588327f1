"""Status changes of orders, stops and batches: the one path for each (offers: dispatch.services).

Each status change is one call of spark.statemachine.transition: allowed-transition map,
guarded UPDATE, event row, and a no-op when repeated.
"""

from django.utils import timezone

from spark import hooks
from spark.statemachine import TransitionResult, transition

from .models import Batch, BatchEvent, Order, OrderEvent, Stop, StopEvent


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
    if result.changed and to in (Batch.Status.COMPLETED, Batch.Status.RETURNED):
        hooks.batch_closed(batch_id=batch.pk)  # its pay settles once committed (payments)
    return result
