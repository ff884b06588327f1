"""What Spark does with a Stripe event (the webhook, webhooks/stripe.py, checks the signature
and that each event id is handled once).

Events may arrive late, twice or in any order, and an event's copy of its object may be old.
So the object is fetched from Stripe by id (`event_fetch`, outside any transaction) and only
what Stripe says now is acted on (`event_apply`, in the transaction that records the event);
statuses never go back from a final state (payments.payouts).

- transfer.created / transfer.updated: our payout's transfer exists -> a pending payout is paid;
- transfer.reversed: reversed in full -> the payout fails and its money is back in the balance
  (a partial reversal is left to ops: logged, shown on the event);
- payout.paid / payout.failed (a cash-out's instant payout from the driver's account): failed ->
  the transfer is taken back and the payout fails (task payout_tasks.return_payout);
- account.updated: the driver's payout set-up (payouts enabled, requirements due) is kept;
- payment_intent.*: a tip's authorisation, decline, release or capture
  (payments.tips.tip_payment_intent_event, on the PaymentIntent fetched from Stripe);
- charge.* and refund.* (charge.refunded, refund.created, ...): the tip's PaymentIntent they
  belong to is fetched with its charge, and a refund Stripe reports (made from Stripe's
  dashboard, say) is booked once (payments.tips: the driver keeps a delivered order's tip);
- anything else: recorded and ignored.
"""

import logging
from typing import Any

import stripe

from drivers.models import Driver
from spark.celery import queue_on_commit

from . import payout_tasks, payouts, tips
from .contractor.backends import TransferInfo, get_backend
from .contractor.payout_setup import payout_account_store
from .models import Payout

logger = logging.getLogger(__name__)

TRANSFER_EVENTS = ("transfer.created", "transfer.updated", "transfer.reversed")
PAYOUT_EVENTS = ("payout.paid", "payout.failed")
ACCOUNT_EVENTS = ("account.updated",)
# Tips: events about a PaymentIntent, or about its charge or refunds (which name it).
PAYMENT_INTENT_PREFIX = "payment_intent."
TIPS_EVENT_PREFIXES = (PAYMENT_INTENT_PREFIX, "charge.", "refund.")


class ObjectUnavailable(Exception):
    """Stripe could not be asked now (network, 5xx): answer so that Stripe sends it again."""


def _object(event: dict) -> dict:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    return obj if isinstance(obj, dict) else {}


def event_fetch(event: dict) -> Any:
    """The event's object as Stripe holds it now (network; call outside any transaction).
    None when there is nothing to fetch or Stripe does not know the object."""
    kind, obj = event.get("type", ""), _object(event)
    object_id = obj.get("id")
    if kind.startswith(TIPS_EVENT_PREFIXES) and not kind.startswith(PAYMENT_INTENT_PREFIX):
        object_id = obj.get("payment_intent")  # a charge's or a refund's PaymentIntent
    if not isinstance(object_id, str) or not object_id:
        return None
    backend = get_backend()
    try:
        if kind.startswith(TIPS_EVENT_PREFIXES):
            return tips.payment_intent_fetch(object_id)
        if kind in TRANSFER_EVENTS:
            return backend.retrieve_transfer(object_id)
        if kind in PAYOUT_EVENTS:
            account = event.get("account")
            return backend.retrieve_payout(object_id, account) if isinstance(account, str) else None
        if kind in ACCOUNT_EVENTS:
            driver = Driver.objects.filter(contractor_id=object_id).first()
            return backend.account_status(driver) if driver is not None else None
    except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError, stripe.AuthenticationError) as exc:
        raise ObjectUnavailable(str(exc)) from exc
    except (stripe.InvalidRequestError, stripe.PermissionError, LookupError):
        return None
    return None


def _payout(payout_id: int | None) -> Payout | None:
    return Payout.objects.filter(pk=payout_id).first() if payout_id is not None else None


def _metadata_payout_id(obj: Any) -> int | None:
    metadata = obj.get("metadata") or {}
    raw = str(metadata.get("spark_payout_id") or "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _apply_transfer(transfer: TransferInfo) -> tuple[str, str]:
    payout = _payout(transfer.payout_id)
    if payout is None:
        return "ignored", f"transfer {transfer.id} is not one of our payouts"
    if transfer.amount_reversed_cents >= transfer.amount_cents:
        changed = payouts.payout_fail(payout_id=payout.pk, reason=f"The transfer {transfer.id} was reversed at Stripe")
        return "processed", f"payout {payout.pk} {'failed: money back in the balance' if changed else 'had failed'}"
    if transfer.amount_reversed_cents:
        logger.error(
            "Transfer %s of payout %s partly reversed (%s of %s cents): ops must look",
            transfer.id,
            payout.pk,
            transfer.amount_reversed_cents,
            transfer.amount_cents,
        )
        return "ignored", f"partial reversal of payout {payout.pk}'s transfer: for ops"
    if payouts.payout_mark_paid(payout_id=payout.pk, transfer_id=transfer.id):
        if payout.kind == Payout.Kind.INSTANT:
            queue_on_commit(payout_tasks.pay_payout, payout.pk)  # its instant payout to the bank
        return "processed", f"payout {payout.pk} paid"
    return "processed", f"payout {payout.pk} is {payout.status}"


def _apply_payout(stripe_payout: Any) -> tuple[str, str]:
    payout = _payout(_metadata_payout_id(stripe_payout))
    if payout is None:
        return "ignored", "not the instant payout of a cash-out (Stripe's own schedule)"
    status = stripe_payout.get("status")
    if status == "failed":
        reason = f"The instant payout to the bank failed ({stripe_payout.get('failure_code') or 'failed'})"
        queue_on_commit(payout_tasks.return_payout, payout.pk, reason)
        return "processed", f"payout {payout.pk}: transfer to be taken back"
    return "processed", f"payout {payout.pk}: bank payout {status}"


def event_apply(event: dict, fetched: Any) -> tuple[str, str]:
    """Act on an event (in the caller's transaction, which records it). Returns (status,
    detail): "processed" or "ignored"."""
    kind = event.get("type", "")
    if kind.startswith(TIPS_EVENT_PREFIXES):
        if fetched is None:
            return "ignored", "Stripe does not know the PaymentIntent, or it is not a tip's"
        if tips.tip_payment_intent_event(fetched):
            return "processed", f"tip PaymentIntent {fetched.get('id')}: {fetched.get('status')}"
        return "ignored", "not one of our tips"
    if fetched is None:
        if kind in (*TRANSFER_EVENTS, *PAYOUT_EVENTS, *ACCOUNT_EVENTS):
            return "ignored", "Stripe does not know the object, or it is not ours"
        return "ignored", f"event type {kind} is not handled"
    if kind in TRANSFER_EVENTS:
        return _apply_transfer(fetched)
    if kind in PAYOUT_EVENTS:
        return _apply_payout(fetched)
    if kind in ACCOUNT_EVENTS:
        driver = Driver.objects.filter(contractor_id=fetched.account_id).first()
        if driver is None:
            return "ignored", "no driver with this account"
        account = payout_account_store(driver=driver, status=fetched)
        return "processed", f"driver {driver.pk}: payouts {'enabled' if account.payouts_enabled else 'not enabled'}"
    return "ignored", f"event type {kind} is not handled"
