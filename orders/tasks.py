"""Celery entry points: load by id, call a service, safe to run twice."""

from celery import shared_task

from . import held_batches
from .batch_editing import batch_publish_if_due, batches_publish_due
from .batching_runs import batching_run_execute, batching_runs_execute_stalled


@shared_task(ignore_result=True)
def publish_batch_if_due(batch_id: int) -> bool:
    return batch_publish_if_due(batch_id=batch_id)


@shared_task(ignore_result=True)
def sweep_due_publications() -> int:
    """Beat safety net for scheduled publishing ("ready at")."""
    return batches_publish_due()


@shared_task(ignore_result=True, time_limit=120, soft_time_limit=100)
def run_auto_batching(run_id: int) -> bool:
    return batching_run_execute(run_id=run_id)


@shared_task(ignore_result=True, time_limit=120, soft_time_limit=100)
def sweep_batching_runs() -> int:
    """Beat safety net for auto-batching: runs whose task never reached a worker."""
    return batching_runs_execute_stalled()


@shared_task(ignore_result=True)
def sweep_stranded_batches() -> int:
    """Beat (every minute): a batch held by a driver who can no longer act on it, with no
    "finish first" decided, goes back to dispatch (or stays to finish once picked up); ops
    get an email for each. Idempotent."""
    return held_batches.stranded_batches_release(limit=200)
