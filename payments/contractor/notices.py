"""Emails the contractor module owes drivers: each is a DriverNotice (what was owed, to whom,
for which case; the record of the adverse-action notices) sent through the one outbox
(outbox.services), like every message Spark sends.

A service that changes something a driver must hear about calls `notice_create` in the same
transaction: the notice and its outbox message commit with the change or not at all, and the
notice's unique `key` makes a repeat (a second run of a task, a replayed webhook) create
nothing. The outbox sends it after the commit, retries with backoff, and never sends it twice
at once (it claims the row first); see outbox.services for the guarantee.

The pre-adverse notice starts the driver's dispute period, so its waiting period is counted
from the moment it is actually sent: `_on_sent` stamps the case's `pre_adverse_sent_at` and
`dispute_deadline_at` (consider -> pre_adverse_notice) in the transaction that stamps the
message sent. The senders are registered with the outbox by PaymentsConfig.ready().
"""

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone

from outbox import senders
from outbox import services as outbox
from outbox.models import Message
from payments.models import DriverNotice, ScreeningCase, ScreeningEvent
from spark.statemachine import transition

logger = logging.getLogger(__name__)

# The outbox kind of every driver notice (the notice's own kind picks the template).
MESSAGE_KIND = "payments.driver_notice"

Kind = DriverNotice.Kind

SUBJECTS = {
    Kind.SCREENING_UNDER_REVIEW: "Spark: your application is under review",
    Kind.SCREENING_DOCUMENTS_NEEDED: "Spark: we need a document from you",
    Kind.SCREENING_CLEARED: "Spark: you're cleared to drive",
    Kind.SCREENING_PRE_ADVERSE: "Spark: pre-adverse action notice about your background check",
    Kind.SCREENING_FINAL_ADVERSE: "Spark: final adverse action notice",
    Kind.DOCUMENTS_EXPIRING: "Spark: your {documents} expires soon",
    Kind.DOCUMENTS_EXPIRED: "Spark: your {documents} expired; you are off duty until renewed",
    Kind.TIP_LOWERED: "Spark: a tip on one of your deliveries was lowered",
}


def notice_create(
    *, driver, kind: str, key: str, case: ScreeningCase | None = None, context: dict | None = None
) -> bool:
    """Owe `driver` the email `kind` once per `key`; it is sent after the current transaction
    commits. Returns whether the notice is new (False: it existed, nothing queued)."""
    notice, created = DriverNotice.objects.get_or_create(
        key=key, defaults={"driver": driver, "case": case, "kind": kind, "context": context or {}}
    )
    if created:
        message = outbox.message_enqueue(
            kind=MESSAGE_KIND, key=f"driver-notice:{key}", payload={"notice_id": notice.pk}
        )
        DriverNotice.objects.filter(pk=notice.pk).update(message=message)
    return created


def _documents_phrase(context: dict) -> str:
    labels = [doc["label"] for doc in context.get("documents", [])]
    return " and ".join(labels) or "document"


def _render(notice: DriverNotice, extra: dict) -> EmailMultiAlternatives:
    driver = notice.driver
    context = {
        **notice.context,
        **extra,
        "driver": driver,
        "first_name": driver.user.first_name or "there",
        "case": notice.case,
        "wait_days": settings.SPARK_ADVERSE_WAIT_DAYS,
        "provider_contact": settings.SPARK_SCREENING_PROVIDER_CONTACT,
    }
    # Dates and times in the driver's own zone, as on the driver app.
    with timezone.override(ZoneInfo(driver.home_zone.timezone)):
        text = render_to_string(f"emails/{notice.kind}.txt", context)
        html = render_to_string(f"emails/{notice.kind}.html", context)
    subject = SUBJECTS[Kind(notice.kind)].format(documents=_documents_phrase(notice.context))
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [driver.user.email])
    message.attach_alternative(html, "text/html")
    return message


def _notice(message: Message) -> DriverNotice:
    return DriverNotice.objects.select_related("driver__user", "driver__home_zone", "case").get(
        pk=message.payload["notice_id"]
    )


def _dispute_deadline(now: datetime) -> datetime:
    # The dispute period runs from the notice actually going out.
    return now + timedelta(days=settings.SPARK_ADVERSE_WAIT_DAYS)


def _build(message: Message, now: datetime) -> EmailMultiAlternatives:
    notice = _notice(message)
    extra: dict = {}
    if notice.kind == Kind.SCREENING_PRE_ADVERSE:
        extra["dispute_deadline_at"] = _dispute_deadline(now)
    return _render(notice, extra)


def _on_sent(message: Message, now: datetime) -> None:
    """In the outbox's transaction that stamps the message sent."""
    notice = _notice(message)
    DriverNotice.objects.filter(pk=notice.pk).update(sent_at=now)
    case = notice.case
    if notice.kind == Kind.SCREENING_PRE_ADVERSE and case is not None and case.status == ScreeningCase.Status.CONSIDER:
        transition(
            case,
            to=ScreeningCase.Status.PRE_ADVERSE_NOTICE,
            allowed=ScreeningCase.TRANSITIONS,
            event_model=ScreeningEvent,
            event_fk="case",
            reason="pre-adverse notice sent to the driver",
            updates={"pre_adverse_sent_at": now, "dispute_deadline_at": _dispute_deadline(now)},
            event_fields={"source": "system"},
        )


def register_senders() -> None:
    """Called by PaymentsConfig.ready(): the outbox learns how to build and close a notice."""
    senders.register(MESSAGE_KIND, build=_build, on_sent=_on_sent)


def notice_send(*, notice_id: int, force: bool = False) -> bool:
    """Send one notice now unless it was sent or another sender holds it (the admin's "send
    now", with `force`). Returns whether this call sent it."""
    message_id = DriverNotice.objects.filter(pk=notice_id).values_list("message_id", flat=True).first()
    if message_id is None:
        return False
    return outbox.message_send(message_id=message_id, force=force)


def notices_send_due(*, limit: int = 100) -> int:
    """Send driver notices still unsent and due (the screening sweep's part; the outbox's own
    sweeper sends them too). Returns how many went out."""
    return outbox.messages_send_due(limit=limit, kinds=[MESSAGE_KIND])
