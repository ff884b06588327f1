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


@shared_task(ignore_result=True)
def publish_batch_if_due(batch_id: int) -> bool:
    return services.batch_publish_if_due(batch_id=batch_id)


@shared_task(ignore_result=True)
def sweep_due_publications() -> int:
    """Beat safety net for scheduled publishing ("ready at")."""
    return services.batches_publish_due()


@shared_task(ignore_result=True, time_limit=120, soft_time_limit=100)
def run_auto_batching(run_id: int) -> bool:
    return services.batching_run_execute(run_id=run_id)


@shared_task(ignore_result=True, time_limit=120, soft_time_limit=100)
def sweep_batching_runs() -> int:
    """Beat safety net for auto-batching: runs whose task never reached a worker."""
    return services.batching_runs_execute_stalled()


@shared_task(ignore_result=True)
def withdraw_stale_offers(batch_id: int) -> int:
    return services.offers_withdraw_stale(batch_id=batch_id)


@shared_task(ignore_result=True)
def advance_dispatch(batch_id: int) -> str:
    from . import dispatch

    return dispatch.dispatch_advance(batch_id=batch_id)


@shared_task(ignore_result=True)
def resolve_claim_pool(batch_id: int):
    from . import dispatch

    return dispatch.claim_pool_resolve(batch_id=batch_id)


@shared_task(ignore_result=True)
def sweep_dispatch() -> int:
    """Beat safety net: starts or advances dispatch of batches whose task was lost, resolves
    claim pools that are due, and flags batches at risk of missing their pickup."""
    from . import dispatch

    return dispatch.dispatch_sweep()
