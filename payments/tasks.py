"""Celery entry points of payments: take ids, call a service, safe to run twice."""

import stripe
from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from . import settlement, tips
from .contractor import services as contractor

# Settlement (issue 10): a database that is down or a deadlock is worth another try, with
# exponential backoff (1 s, 2 s, 4 s ... up to 10 min, with jitter); anything else is a bug and
# fails loudly. The beat sweep settles whatever a task gave up on.
_SETTLE_RETRY = {
    "acks_late": True,
    "autoretry_for": (DatabaseError,),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}


@shared_task(ignore_result=True)
def enrol_contractor(driver_id: int) -> str:
    """Queued on commit by screening_submit. A failure (Stripe down) is retried by the
    sweeper below, which runs the same idempotent service."""
    return contractor.contractor_enrol(driver_id=driver_id)


@shared_task(ignore_result=True)
def check_document_expiry() -> dict:
    """Beat, every 6 h (daily would do; it is idempotent, and a missed run heals sooner):
    warn 14 days before a license or insurance expires, suspend drivers whose expired."""
    return contractor.documents_check_expiry()


@shared_task(ignore_result=True)
def sweep_screening() -> dict:
    """Beat safety net, every 5 min: unsent driver notices, drivers missing a contractor id."""
    return contractor.screening_sweep()


@shared_task(ignore_result=True, **_SETTLE_RETRY)
def settle_batch(batch_id: int) -> str:
    """Queued on commit when a batch completes or returns (spark.hooks.batch_closed): post its
    pay once. Safe to run twice, by two workers at once, or after a worker died mid-way."""
    pay = settlement.settle_batch(batch_id=batch_id)
    settlement.pause_for_tests("posted")
    return "unsettled" if pay is None else f"settled {pay.final_cents}c"


@shared_task(ignore_result=True, **_SETTLE_RETRY)
def sweep_unsettled_batches() -> int:
    """Beat safety net (SPARK_SETTLEMENT_SWEEP_SECONDS): settle completed and returned batches
    whose task was lost. Returns how many settled."""
    return settlement.settle_unsettled(limit=settings.SPARK_SETTLEMENT_SWEEP_LIMIT)


# --- Tips (payments.tips) --------------------------------------------------------------
# Stripe is called outside any transaction; a network failure or a 5xx is retried with
# backoff (the idempotency key of the charge row makes the retry the same request).
_STRIPE_RETRY = {
    "acks_late": True,
    "autoretry_for": (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "max_retries": 8,
    "ignore_result": True,
}


@shared_task(**_STRIPE_RETRY)
def authorize_tip_charge(charge_id: int) -> str:
    """Queued on commit by payments.tips (intake, a store's raise): authorise one TipCharge.
    The settle_tips sweep retries a charge whose task was lost."""
    return tips.tip_charge_authorize(charge_id=charge_id)


@shared_task(**_STRIPE_RETRY)
def settle_tips() -> dict:
    """Beat, every 5 min: lost authorisations, adjust windows, captures due (window closed or
    Stripe's capture_before near), then credits to drivers and covers of tips that ended at 0."""
    return tips.tips_settle_due()
