"""Celery entry points: load by id, call a service, safe to run twice."""

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def expire_offer(offer_id: int) -> bool:
    return services.offer_expire(offer_id=offer_id)


@shared_task(ignore_result=True)
def sweep_expired_offers() -> int:
    """Beat safety net (every 15 s): expires whatever the countdown tasks missed
    (a killed worker, a restarted Redis). Capped per run; the next sweep takes the rest."""
    return services.offers_expire_due(limit=500)
