"""Returns: the reasons a stop can fail, and the associate checking an undeliverable order back
in at the store (the batch is returned with its last return)."""

from django.db import transaction

from spark.errors import DomainError, InvalidTransition

from .models import Batch, Order, Stop
from .transitions import batch_set_status, order_set_status, stop_set_status

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
