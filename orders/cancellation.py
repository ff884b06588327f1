"""An order cancelled by the store until pickup (the store API or ops): its stop leaves the
batch, and a batch left empty is withdrawn."""

from django.db import transaction

from spark.errors import InvalidTransition

from .batch_editing import batch_withdraw_if_empty
from .models import Batch, Order, Stop
from .transitions import order_set_status, stop_set_status

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
