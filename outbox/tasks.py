"""Celery entry points of the outbox: take ids, call a service, safe to run twice."""

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def send_message(message_id: int) -> bool:
    """Queued on commit by message_enqueue. A failure is retried by the sweeper below."""
    return services.message_send(message_id=message_id)


@shared_task(ignore_result=True)
def send_due_messages() -> int:
    """Beat safety net, every minute: messages still unsent (mail server down, broker down
    when they were queued, a sender that died) whose retry is due."""
    return services.messages_send_due()
