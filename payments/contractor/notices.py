"""Emails the contractor module owes drivers, sent through the DriverNotice outbox.

A service that changes something a driver must hear about calls `notice_create` in the same
transaction: the row commits with the change or not at all, and its unique `key` makes a
repeat (a second run of a task, a replayed webhook) create nothing. After the commit the
notice is sent right away; `notices_send_due` (beat, payments.tasks.sweep_screening) sends
whatever is still unsent, e.g. because the mail server was down.

Sending leases the row first (a guarded UPDATE of `claimed_until`), so the after-commit
send and the sweeper never both send it, and the mail server is never called inside a
transaction (STYLE trap 4). A sender that dies between sending and stamping `sent_at`
leaves a lease that runs out, and the notice goes again: at least once, which is the right
side to err on for a legally required notice.

The pre-adverse notice starts the driver's dispute period, so its waiting period is counted
from the moment it is actually sent: the sender stamps the case's `pre_adverse_sent_at`
and `dispute_deadline_at` (consider -> pre_adverse_notice) together with `sent_at`.
"""

import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone

from payments.models import DriverNotice, ScreeningCase, ScreeningEvent
from spark.statemachine import transition

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
# The sweeper gives up after this many failed sends (4 h at one sweep per 5 min); the admin's
# "send now" action still tries. Unsent notices are listed in the admin.
MAX_ATTEMPTS = 48

Kind = DriverNotice.Kind

SUBJECTS = {
    Kind.SCREENING_UNDER_REVIEW: "Spark: your application is under review",
    Kind.SCREENING_DOCUMENTS_NEEDED: "Spark: we need a document from you",
    Kind.SCREENING_CLEARED: "Spark: you're cleared to drive",
    Kind.SCREENING_PRE_ADVERSE: "Spark: pre-adverse action notice about your background check",
    Kind.SCREENING_FINAL_ADVERSE: "Spark: final adverse action notice",
    Kind.DOCUMENTS_EXPIRING: "Spark: your {documents} expires soon",
    Kind.DOCUMENTS_EXPIRED: "Spark: your {documents} expired; you are off duty until renewed",
}


def notice_create(*, driver, kind: str, key: str, case: ScreeningCase | None = None,
                  context: dict | None = None) -> bool:
    """Owe `driver` the email `kind` once per `key`; send it after the current transaction
    commits. Returns whether the notice is new (False: it existed, nothing queued)."""
    notice, created = DriverNotice.objects.get_or_create(
        key=key, defaults={"driver": driver, "case": case, "kind": kind, "context": context or {}}
    )
    if created:
        transaction.on_commit(lambda: notice_send(notice_id=notice.pk), robust=True)
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


def notice_send(*, notice_id: int, force: bool = False) -> bool:
    """Send one notice unless it was sent or another sender holds it. Returns whether this
    call sent it. `force` ignores MAX_ATTEMPTS (ops pressing "send now"); never a lease."""
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    unsent = DriverNotice.objects.filter(free, pk=notice_id, sent_at__isnull=True)
    if not force:
        unsent = unsent.filter(attempts__lt=MAX_ATTEMPTS)
    if not unsent.update(claimed_until=now + LEASE, attempts=F("attempts") + 1):
        return False
    notice = DriverNotice.objects.select_related("driver__user", "driver__home_zone", "case").get(pk=notice_id)
    extra: dict = {}
    if notice.kind == Kind.SCREENING_PRE_ADVERSE:
        # The dispute period runs from the notice actually going out.
        extra["dispute_deadline_at"] = now + timedelta(days=settings.SPARK_ADVERSE_WAIT_DAYS)
    try:
        _render(notice, extra).send()
    except Exception as exc:  # the mail server, a template: keep the notice for the next try
        logger.exception("Sending driver notice %s failed", notice_id)
        DriverNotice.objects.filter(pk=notice_id).update(
            claimed_until=None, last_error=f"{type(exc).__name__}: {exc}"[:255]
        )
        return False
    with transaction.atomic():
        DriverNotice.objects.filter(pk=notice_id).update(sent_at=now, claimed_until=None, last_error="")
        case = notice.case
        if (
            notice.kind == Kind.SCREENING_PRE_ADVERSE
            and case is not None
            and case.status == ScreeningCase.Status.CONSIDER
        ):
            transition(
                case,
                to=ScreeningCase.Status.PRE_ADVERSE_NOTICE,
                allowed=ScreeningCase.TRANSITIONS,
                event_model=ScreeningEvent,
                event_fk="case",
                reason="pre-adverse notice sent to the driver",
                updates={"pre_adverse_sent_at": now, "dispute_deadline_at": extra["dispute_deadline_at"]},
                event_fields={"source": "system"},
            )
    return True


def notices_send_due(*, limit: int = 100) -> int:
    """Send unsent notices whose lease is free (oldest first, at most `limit`). Returns how
    many went out. Safe to run beside the after-commit sends and beside itself."""
    now = timezone.now()
    due = (
        DriverNotice.objects.filter(sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(notice_send(notice_id=pk) for pk in list(due))
