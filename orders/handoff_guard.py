"""Wrong pickup codes at the handoff: after HANDOFF_MAX_WRONG_CODES wrong codes for a batch the
handoff is locked for HANDOFF_LOCK_MINUTES and ops are told (someone may be guessing the code of
a batch that is not theirs).

The counts live in the cache (Redis), like the other throttles: one atomic counter per batch and
one lock per batch holding the time it ends. The lock's end is compared with timezone.now(), so
the lock ends on time whatever the cache does with the key's own expiry (kept a little longer).

The ops notice goes through the outbox to every active staff user, once per lock.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.db import transaction
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.translation import gettext as _

from outbox import senders
from outbox import services as outbox
from outbox.models import Message
from spark.errors import RateLimited

from .models import Batch

HANDOFF_MAX_WRONG_CODES = 6
HANDOFF_LOCK_MINUTES = 5
# Wrong codes older than this are forgotten (a typo now and then never adds up to a lock).
WRONG_CODE_WINDOW = timedelta(minutes=30)
HANDOFF_LOCKED = "orders.handoff_locked"


def _wrong_key(batch_id: int) -> str:
    return f"handoff:wrong:{batch_id}"


def _lock_key(batch_id: int) -> str:
    return f"handoff:lock:{batch_id}"


def handoff_locked_until(*, batch_id: int) -> datetime | None:
    """When the handoff of the batch unlocks, or None when it is not locked."""
    until = cache.get(_lock_key(batch_id))
    return until if until and until > timezone.now() else None


def _locked_error(until: datetime) -> RateLimited:
    at = dateformat.time_format(timezone.localtime(until), "g:i A")  # as the dashboard shows times
    return RateLimited(
        _(
            "Too many wrong pickup codes: the handoff of this batch is locked until %(time)s. "
            "Ops have been told. Ask the driver to check the code in their app."
        )
        % {"time": at},
        retry_after=int((until - timezone.now()).total_seconds()),
        code="handoff_locked",
    )


def handoff_refuse_if_locked(*, batch: Batch) -> None:
    until = handoff_locked_until(batch_id=batch.pk)
    if until is not None:
        raise _locked_error(until)


def handoff_wrong_code(*, batch: Batch) -> RateLimited | None:
    """Count a wrong code for the batch. Returns the error to raise when this one locks the
    handoff (ops are told), else None."""
    key = _wrong_key(batch.pk)
    cache.add(key, 0, timeout=int(WRONG_CODE_WINDOW.total_seconds()))
    try:
        wrong = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=int(WRONG_CODE_WINDOW.total_seconds()))
        wrong = 1
    if wrong < HANDOFF_MAX_WRONG_CODES:
        return None
    until = timezone.now() + timedelta(minutes=HANDOFF_LOCK_MINUTES)
    # Of two wrong codes at once, only one sets the lock and tells ops.
    if cache.add(_lock_key(batch.pk), until, timeout=HANDOFF_LOCK_MINUTES * 60 + 60):
        cache.delete(key)
        with transaction.atomic():
            _tell_ops(batch=batch, until=until)
    else:
        until = cache.get(_lock_key(batch.pk)) or until
    return _locked_error(until)


def _tell_ops(*, batch: Batch, until: datetime) -> int:
    staff = get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="").order_by("pk")
    for user in staff:
        outbox.message_enqueue(
            kind=HANDOFF_LOCKED,
            key=f"handoff-locked:{batch.pk}:{until.timestamp():.0f}:{user.pk}",
            payload={"batch_id": batch.pk, "user_id": user.pk, "until": until.isoformat()},
        )
    return len(staff)


def _build_handoff_locked(message: Message, now: datetime) -> EmailMessage:
    user = get_user_model().objects.filter(pk=message.payload["user_id"], is_active=True, is_staff=True).first()
    if user is None or not user.email:
        raise senders.Skip("not staff any more")
    batch = Batch.objects.select_related("store", "driver__user").get(pk=message.payload["batch_id"])
    until = datetime.fromisoformat(message.payload["until"])
    driver = batch.driver.user.email if batch.driver else _("no driver")
    subject = _("Spark: handoff of batch %(id)s locked after wrong pickup codes") % {"id": batch.pk}
    body = _(
        "%(n)d wrong pickup codes were entered for batch %(id)s at store #%(number)s %(store)s "
        "(driver: %(driver)s). Its handoff is locked until %(until)s UTC.\n\n%(url)s"
    ) % {
        "n": HANDOFF_MAX_WRONG_CODES,
        "id": batch.pk,
        "number": batch.store.number,
        "store": batch.store.name,
        "driver": driver,
        "until": f"{until:%Y-%m-%d %H:%M}",
        "url": settings.SPARK_PUBLIC_URL.rstrip("/") + reverse("admin:orders_batch_change", args=[batch.pk]),
    }
    return EmailMessage(" ".join(subject.split()), body, settings.DEFAULT_FROM_EMAIL, [user.email])


def register_senders() -> None:
    senders.register(HANDOFF_LOCKED, build=_build_handoff_locked)
