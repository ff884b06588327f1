"""Order intake from the store's e-commerce system (the store API): idempotent by external id
or Idempotency-Key, a repeat with another body refused."""

import hashlib
import json
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from spark.errors import Conflict

from .models import Order, OrderEvent


@dataclass(frozen=True)
class IntakeResult:
    """What order_intake did: the order, and whether this call created it (False: a safe retry)."""

    order: Order
    created: bool


def _intake_fingerprint(data: dict) -> str:
    """Stable hash of a validated intake body, to tell a safe retry from a conflicting one."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def order_intake(*, store, data: dict, idempotency_key: str | None = None) -> IntakeResult:
    """Create an order from the store's e-commerce system. Returns the order and whether it was created.

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

    def replay(found: Order) -> IntakeResult:
        if found.intake_fingerprint != fingerprint:
            what = "external_id" if found.external_id == data["external_id"] else "Idempotency-Key"
            raise Conflict(f"An order with this {what} already exists with different details.", code="intake_conflict")
        if idempotency_key and found.idempotency_key not in (None, idempotency_key):
            raise Conflict("This external_id was sent before with another Idempotency-Key.", code="intake_conflict")
        return IntakeResult(order=found, created=False)

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
    return IntakeResult(order=order, created=True)
