"""Celery entry points of payouts (payments.payouts): take ids, call a service, safe to run
twice. Listed in CELERY_IMPORTS (spark/settings/base.py), as they live outside tasks.py."""

from celery import shared_task
from django.conf import settings

from . import payouts, reconcile


@shared_task(
    bind=True,
    ignore_result=True,
    acks_late=True,
    autoretry_for=payouts.TRANSIENT_ERRORS,
    retry_backoff=30,
    retry_backoff_max=1800,
    retry_jitter=True,
    max_retries=settings.SPARK_PAYOUT_MAX_RETRIES,
)
def pay_payout(self, payout_id: int) -> str:
    """Queued on commit by every new payout (and by the sweeper): make its transfer. Stripe's
    transient errors are retried with backoff under the same idempotency key; on the last try a
    payout Stripe has no transfer for fails and its money is back in the balance."""
    return payouts.payout_send(payout_id=payout_id, final_try=self.request.retries >= self.max_retries)


@shared_task(
    bind=True,
    ignore_result=True,
    acks_late=True,
    autoretry_for=payouts.TRANSIENT_ERRORS,
    retry_backoff=30,
    retry_backoff_max=1800,
    max_retries=settings.SPARK_PAYOUT_MAX_RETRIES,
)
def return_payout(self, payout_id: int, reason: str) -> str:
    """Queued by the Stripe webhook when an instant payout to the bank failed: take the
    transfer back and put the money back in the driver's balance."""
    return payouts.payout_return(payout_id=payout_id, reason=reason)


@shared_task(ignore_result=True, acks_late=True)
def run_weekly_payouts() -> dict:
    """Beat, hourly: pays each zone once its weekly payout time has come (its own timezone)."""
    return payouts.weekly_payouts_run()


@shared_task(ignore_result=True, acks_late=True)
def sweep_pending_payouts() -> int:
    """Beat safety net: payouts whose task was lost, or that outlived their retries."""
    return payouts.pending_payouts_sweep()


@shared_task(ignore_result=True, acks_late=True)
def reconcile_daily() -> dict:
    """Beat, daily: the ledger, our payouts and Stripe agree, or ops hear of it."""
    report = reconcile.reconcile()
    return {"ok": report.ok, "differences": len(report.differences)}
