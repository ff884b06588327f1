from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def generate_slots() -> int:
    """Daily: turn slot templates into slots for the next 14 days (idempotent)."""
    return services.slots_generate()
