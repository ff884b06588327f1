"""`POST /webhooks/stripe/`: Stripe posts events about transfers, payouts, connected accounts
and (for the tips slice) PaymentIntents and charges.

- The signature (`Stripe-Signature`) is checked on the raw body with
  stripe.Webhook.construct_event and settings.STRIPE_WEBHOOK_SECRET (5 minutes' tolerance):
  a missing, wrong or stale signature, or a body that is not an event, answers 400 and stores
  nothing.
- Each event id is handled once: payments.WebhookEvent (source "stripe", unique event id) is
  written in the transaction that acts on the event; a second delivery answers 200
  {"status": "duplicate"} and changes nothing; two racing deliveries meet at the unique index.
- Any order of arrival: the event's object is fetched from Stripe by id before acting
  (payments.stripe_events), outside any transaction. When Stripe cannot be asked, the answer
  is 503 and nothing is stored, so Stripe sends the event again later.
- 503 as well when STRIPE_WEBHOOK_SECRET is not set (production refuses to start without it).

Answers: 200 {"status": "processed" | "ignored" | "duplicate", "detail": ...}.
"""

import json
import logging

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments import stripe_events
from payments.models import WebhookEvent

logger = logging.getLogger(__name__)

SOURCE = "stripe"


def _answer(status: str, http_status: int = 200, **extra) -> JsonResponse:
    return JsonResponse({"status": status, **extra}, status=http_status)


def _verified_event(body: bytes, header: str, secret: str) -> dict | None:
    """The event as a plain dict, or None when the signature or the body is not right."""
    try:
        event = json.loads(body)
        if not isinstance(event, dict):  # the SDK expects an object
            return None
        stripe.Webhook.construct_event(body, header, secret)
    except (stripe.SignatureVerificationError, ValueError, RecursionError, IndexError):
        return None
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 128:
        return None
    if not isinstance(event_type, str) or not 0 < len(event_type) <= 64:
        return None
    return event


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        logger.error("Stripe webhook called but STRIPE_WEBHOOK_SECRET is not set")
        return _answer("error", 503, detail="The Stripe webhook is not configured.")
    event = _verified_event(request.body, request.headers.get("Stripe-Signature", ""), secret)
    if event is None:
        return _answer("error", 400, detail="Bad signature or body.")
    if WebhookEvent.objects.filter(source=SOURCE, event_id=event["id"]).exists():
        return _answer("duplicate", detail=f"event {event['id']} was received before")
    try:
        fetched = stripe_events.event_fetch(event)
    except stripe_events.ObjectUnavailable as exc:
        logger.warning("Stripe event %s: could not fetch its object (%s); Stripe will send it again", event["id"], exc)
        return _answer("retry", 503, detail="Stripe could not be asked about the object; send it again.")
    with transaction.atomic():
        try:
            with transaction.atomic():
                row = WebhookEvent.objects.create(
                    source=SOURCE, event_id=event["id"], event_type=event["type"], payload=event
                )
        except IntegrityError:
            return _answer("duplicate", detail=f"event {event['id']} was received before")
        status, detail = stripe_events.event_apply(event, fetched)
        WebhookEvent.objects.filter(pk=row.pk).update(processed_at=timezone.now())
    if status == "ignored":
        logger.info("Stripe event %s ignored: %s", event["id"], detail)
    return _answer(status, detail=detail)
