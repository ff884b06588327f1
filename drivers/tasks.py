"""Celery entry points: load by id, call a service, safe to run twice."""

from celery import shared_task

from . import slot_services


@shared_task(ignore_result=True)
def release_no_show(claim_id: int) -> bool:
    """Countdown task queued at sign-up when the no-show deadline is near enough."""
    return slot_services.slot_release_no_show(claim_id=claim_id)


@shared_task(ignore_result=True)
def sweep_no_shows() -> int:
    """Beat safety net (every 15 s): releases every no-show past its deadline, whether its
    countdown task was lost (killed worker, restarted Redis) or never queued (sign-ups more
    than SPARK_MAX_TASK_COUNTDOWN_SECONDS ahead). Capped per run; the next sweep takes the rest."""
    return slot_services.slot_release_due(limit=500)
