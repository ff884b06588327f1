"""Every write to orders, batches, stops and offers goes through here.

Each status change is one call of spark.statemachine.transition: allowed-transition map,
guarded UPDATE, event row, and a no-op when repeated.
"""

from django.db import IntegrityError, transaction
from django.db.models.functions import Now
from django.utils import timezone

from spark.celery import queue_on_commit
from spark.errors import Conflict, DomainError, Gone, InvalidTransition
from spark.statemachine import TransitionResult, transition

from .models import Batch, BatchEvent, Offer, OfferEvent, Order, OrderEvent, Stop, StopEvent


def order_set_status(*, order: Order, to: str, actor=None, reason: str = "", updates=None) -> TransitionResult:
    return transition(
        order, to=to, allowed=Order.TRANSITIONS, event_model=OrderEvent, event_fk="order",
        actor=actor, reason=reason, updates=updates,
    )


def stop_set_status(
    *, stop: Stop, to: str, actor=None, reason: str = "", lat=None, lng=None, updates=None
) -> TransitionResult:
    return transition(
        stop, to=to, allowed=Stop.TRANSITIONS, event_model=StopEvent, event_fk="stop",
        actor=actor, reason=reason, lat=lat, lng=lng, updates=updates,
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
    *, batch: Batch, to: str, actor=None, reason: str = "", lat=None, lng=None, updates=None, extra_filter=None
) -> TransitionResult:
    """The one path for batch status changes; writes a BatchEvent (who, when, where, why)."""
    values = dict(updates or {})
    stamp = _BATCH_STAMPS.get(to)
    if stamp and stamp not in values:
        values[stamp] = timezone.now()
    if to in (Batch.Status.PUBLISHED, Batch.Status.DRAFT) and "driver" not in values:
        values["driver"] = None  # back on offer: nobody holds it any more
    return transition(
        batch, to=to, allowed=Batch.TRANSITIONS, event_model=BatchEvent, event_fk="batch",
        actor=actor, reason=reason, lat=lat, lng=lng, updates=values, extra_filter=extra_filter,
    )


def offer_set_status(*, offer: Offer, to: str, actor=None, reason: str = "", updates=None, extra_filter=None):
    return transition(
        offer, to=to, allowed=Offer.TRANSITIONS, event_model=OfferEvent, event_fk="offer",
        actor=actor, reason=reason, updates=updates, extra_filter=extra_filter,
    )


def offer_accept(*, offer: Offer, driver, actor=None) -> Offer:
    """Accept a pending offer: the offer becomes accepted and the batch assigned to `driver`,
    in one transaction, or nothing changes.

    Expiry is judged by the database clock (`expires_at > now()` in the guard), so a worker
    running behind cannot let a late accept through. The partial unique indexes
    (one accepted offer per batch, one active batch per driver) are the last line.
    """
    if offer.driver_id != driver.pk:
        raise DomainError("This offer is not yours.", code="not_found")
    with transaction.atomic():
        try:
            result = offer_set_status(
                offer=offer, to=Offer.Status.ACCEPTED, actor=actor, extra_filter={"expires_at__gt": Now()}
            )
        except Conflict:
            offer.refresh_from_db()
            if offer.status == Offer.Status.PENDING:
                raise Gone("This offer has expired.", code="offer_expired") from None
            raise Conflict(f"This offer is no longer open (it was {offer.status}).", code="offer_closed") from None
        except InvalidTransition:
            raise Conflict(f"This offer is no longer open (it was {offer.status}).", code="offer_closed") from None
        if not result.changed:
            return offer  # accepted already by this driver: a retry
        try:
            with transaction.atomic():
                batch_set_status(
                    batch=offer.batch, to=Batch.Status.ASSIGNED, actor=actor,
                    reason=f"offer {offer.pk} accepted", updates={"driver": driver},
                )
        except (Conflict, InvalidTransition):
            raise Conflict("Another driver already has this batch.", code="batch_taken") from None
        except IntegrityError:
            raise Conflict("You already have an active batch; finish it first.", code="driver_busy") from None
    return offer


def offer_decline(*, offer: Offer, driver, reason: str, actor=None) -> Offer:
    if offer.driver_id != driver.pk:
        raise DomainError("This offer is not yours.", code="not_found")
    if not reason:
        raise DomainError("Tell us why you decline; it is never held against you.", code="reason_required")
    offer_set_status(offer=offer, to=Offer.Status.DECLINED, actor=actor, reason=reason,
                     updates={"decline_reason": reason[:64]})
    return offer


def offer_expire(*, offer_id: int) -> bool:
    """Expire one offer if it is still pending and past its deadline (database clock).

    Safe to run any number of times, from the countdown task or the sweeper: only the
    first run that finds it pending and past due changes anything. Returns whether it did.
    """
    offer = Offer.objects.filter(pk=offer_id).first()
    if offer is None:
        return False
    try:
        result = offer_set_status(
            offer=offer, to=Offer.Status.EXPIRED, reason="no answer before the deadline",
            extra_filter={"expires_at__lte": Now()},
        )
    except (Conflict, InvalidTransition):
        return False  # accepted/declined meanwhile, or not due yet
    return result.changed


def offers_expire_due(*, limit: int = 500) -> int:
    """Expire pending offers past their deadline, at most `limit` per call.

    The rows are locked with SKIP LOCKED for the whole run, so two sweepers (or a sweeper
    and countdown tasks) split the work instead of waiting on each other.
    """
    done = 0
    with transaction.atomic():
        due = list(
            Offer.objects.select_for_update(skip_locked=True)
            .filter(status=Offer.Status.PENDING, expires_at__lte=Now())
            .order_by("expires_at")
            .values_list("pk", flat=True)[:limit]
        )
        for offer_id in due:
            done += offer_expire(offer_id=offer_id)
    return done


def offer_schedule_expiry(*, offer: Offer) -> None:
    """Queue the countdown task once the offer is committed; the sweeper is the safety net."""
    from .tasks import expire_offer

    delay = max(0.0, (offer.expires_at - timezone.now()).total_seconds())
    queue_on_commit(expire_offer, offer.pk, countdown=delay)


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
            raise Conflict(
                f"An order with this {what} already exists with different details.", code="intake_conflict"
            )
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


def order_cancel(*, order: Order, reason: str, actor=None) -> Order:
    """Cancel an order until pickup. If it sits in a batch that is not yet picked up, its stop
    leaves the batch."""
    if order.status in (Order.Status.PICKED_UP, Order.Status.DELIVERED, Order.Status.UNDELIVERABLE,
                        Order.Status.RETURNED):
        raise InvalidTransition("The order has been picked up already; it can no longer be cancelled.",
                                code="too_late_to_cancel")
    with transaction.atomic():
        order_set_status(order=order, to=Order.Status.CANCELLED, actor=actor, reason=reason,
                         updates={"cancel_reason": reason[:255]})
        for stop in Stop.objects.filter(order=order, status=Stop.Status.PENDING):
            stop_set_status(stop=stop, to=Stop.Status.REMOVED, actor=actor, reason="order cancelled")
    return order
