"""Celery entry points of payments: take ids, call a service, safe to run twice."""

from celery import shared_task

from .contractor import services as contractor


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
