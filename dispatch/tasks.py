"""Celery entry points of dispatch: load by id, call a service, safe to run twice.

services and rounds queue these (offer expiry, the next round, the fair draw); the beat
schedule in spark/settings/base.py runs the sweepers.
"""

from celery import shared_task

from . import rounds, services


@shared_task(ignore_result=True)
def expire_offer(offer_id: int) -> bool:
    return services.offer_expire(offer_id=offer_id)


@shared_task(ignore_result=True)
def sweep_expired_offers() -> int:
    """Beat safety net (every 15 s): expires whatever the countdown tasks missed
    (a killed worker, a restarted Redis). Capped per run; the next sweep takes the rest."""
    return services.offers_expire_due(limit=500)


@shared_task(ignore_result=True)
def withdraw_stale_offers(batch_id: int) -> int:
    return services.offers_withdraw_stale(batch_id=batch_id)


@shared_task(ignore_result=True)
def advance_dispatch(batch_id: int) -> str:
    return rounds.dispatch_advance(batch_id=batch_id)


@shared_task(ignore_result=True)
def resolve_claim_pool(batch_id: int) -> int | None:
    return rounds.claim_pool_resolve(batch_id=batch_id)


@shared_task(ignore_result=True)
def sweep_dispatch() -> int:
    """Beat safety net: starts or advances dispatch of batches whose task was lost, resolves
    claim pools that are due, and flags batches at risk of missing their pickup."""
    return rounds.dispatch_sweep()
