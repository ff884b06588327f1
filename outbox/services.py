"""The one outbox for every message Spark sends (DESIGN rule 4: no network call inside a
transaction; each message sent once).

- `message_enqueue` is called by the service that makes the change, inside its transaction:
  the row commits with the change or not at all, and its unique key makes a repeat create
  nothing. After the commit a task sends it right away (outbox.tasks.send_message).
- `message_send` claims the row with a guarded UPDATE (free claim, unsent, due) before
  calling the mail server, outside any transaction; only one caller's UPDATE matches, so the
  after-commit task and any number of sweepers never send the same message. A failed send
  frees the claim, records the error and moves `due_at` on (exponential backoff); the
  sweeper (`messages_send_due`, beat) tries again when it is due.
- A sender that dies between the mail server accepting and stamping sent_at leaves a claim
  that runs out, and the message goes again: at least once, which is the right side to err on
  for a legally required notice and harmless for "your order is on the way".
"""

import logging
from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from spark.celery import queue_on_commit

from . import senders, tasks
from .models import Message

logger = logging.getLogger(__name__)

# Far above CELERY_TASK_TIME_LIMIT: a claim this old belongs to a dead sender.
CLAIM = timedelta(minutes=5)
# The sweeper gives up after this many failed sends (about two days with the backoff below);
# ops can still send one from the admin.
MAX_ATTEMPTS = 48
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)


def retry_delay(attempts: int) -> timedelta:
    """How long after its `attempts`-th failed send a message is tried again."""
    return min(LONGEST_RETRY, FIRST_RETRY * 2 ** max(0, attempts - 1))


def message_enqueue(*, kind: str, key: str, payload: dict) -> Message:
    """Owe the message `kind` once per `key`; send it after the current transaction commits.
    Returns the message (the existing one when the key was used before: nothing is queued)."""
    senders.sender_for(kind)  # a typo in `kind` fails here, with the change, not in a worker
    message, created = Message.objects.get_or_create(key=key, defaults={"kind": kind, "payload": payload})
    if created:
        queue_on_commit(tasks.send_message, message.pk)
    return message


def _due() -> Q:
    now = timezone.now()
    return Q(sent_at__isnull=True, skipped="", attempts__lt=MAX_ATTEMPTS, due_at__lte=now) & (
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )


def message_send(*, message_id: int, force: bool = False) -> bool:
    """Send one message unless it was sent, is not due, or another sender holds it. Returns
    whether this call sent it. `force` (ops pressing "send now") ignores due_at and
    MAX_ATTEMPTS, never a claim."""
    now = timezone.now()
    rows = Message.objects.filter(pk=message_id, sent_at__isnull=True, skipped="")
    rows = rows.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)) if force else rows.filter(_due())
    if not rows.update(claimed_until=now + CLAIM, attempts=F("attempts") + 1):
        return False
    message = Message.objects.get(pk=message_id)
    sender = senders.sender_for(message.kind)
    try:
        sender.build(message, now).send(fail_silently=False)
    except senders.Skip as skip:
        Message.objects.filter(pk=message_id).update(skipped=str(skip)[:64] or "skipped", claimed_until=None)
        return False
    except Exception as exc:  # the mail server, a template: keep it for the next try
        logger.exception("Sending outbox message %s (%s) failed", message_id, message.kind)
        Message.objects.filter(pk=message_id).update(
            claimed_until=None,
            last_error=f"{type(exc).__name__}: {exc}"[:255],
            due_at=now + retry_delay(message.attempts),
        )
        return False
    with transaction.atomic():
        Message.objects.filter(pk=message_id).update(sent_at=now, claimed_until=None, last_error="")
        if sender.on_sent is not None:
            sender.on_sent(message, now)
    logger.info("sent outbox message %s (%s)", message_id, message.kind)
    return True


def messages_send_due(*, limit: int = 100, kinds: Iterable[str] | None = None) -> int:
    """Send due messages (oldest first, at most `limit`); returns how many went out. Safe to
    run beside the after-commit sends and beside itself: each send claims its row first."""
    due = Message.objects.filter(_due())
    if kinds is not None:
        due = due.filter(kind__in=list(kinds))
    ids = list(due.order_by("due_at", "pk").values_list("pk", flat=True)[:limit])
    return sum(message_send(message_id=pk) for pk in ids)
