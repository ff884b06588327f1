"""A driver's help requests: a problem with an order, a store, the app or their pay, with one of
their batches attached if they want, written into the ops queue (the admin lists open ones
first; resolving goes through support_request_resolve).

The text is plain text: stored as typed (control characters dropped), shown escaped
everywhere, and capped so the queue stays readable.
"""

import re
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from drivers.models import Driver
from spark.errors import DomainError, NotFound, RateLimited

from .models import Batch, SupportRequest

TEXT_MIN = 10
TEXT_MAX = 1000
# A driver can report at most this many problems an hour: enough for a bad day, not a flood.
MAX_PER_HOUR = 5

# Control characters except tab and newline: nothing a person types on purpose.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_support_text(text: str) -> str:
    """The report as plain text (control characters dropped, trimmed), within the limits."""
    cleaned = _CONTROL.sub("", (text or "").replace("\r\n", "\n")).strip()
    if len(cleaned) < TEXT_MIN:
        message = _("Tell us what happened in a few words (at least %(n)d characters).") % {"n": TEXT_MIN}
        raise DomainError(message, code="text_too_short", fields={"text": [message]})
    if len(cleaned) > TEXT_MAX:
        message = _("Keep it to %(n)d characters; ops can ask you for more.") % {"n": TEXT_MAX}
        raise DomainError(message, code="text_too_long", fields={"text": [message]})
    return cleaned


def support_request_create(*, driver: Driver, topic: str, text: str, batch: Batch | None = None) -> SupportRequest:
    """File the driver's report in the ops queue. Bad input raises DomainError and files
    nothing; another driver's batch is a NotFound; past MAX_PER_HOUR, RateLimited."""
    if topic not in SupportRequest.Topic.values:
        message = _("Choose what the problem is about.")
        raise DomainError(message, code="bad_topic", fields={"topic": [message]})
    cleaned = clean_support_text(text)
    if batch is not None and batch.driver_id != driver.pk:
        raise NotFound(_("That batch is not one of yours."))
    with transaction.atomic():
        # The driver's row lock makes the hourly count and the insert one step per driver.
        Driver.objects.select_for_update().filter(pk=driver.pk).values_list("pk", flat=True).first()
        hour_ago = timezone.now() - timedelta(hours=1)
        recent = list(
            SupportRequest.objects.filter(driver=driver, created_at__gt=hour_ago)
            .order_by("created_at")
            .values_list("created_at", flat=True)
        )
        if len(recent) >= MAX_PER_HOUR:
            retry = int((recent[0] + timedelta(hours=1) - timezone.now()).total_seconds()) + 1
            raise RateLimited(
                _("You sent several reports in the last hour; ops will get to them. Try again later."),
                retry_after=retry,
                code="too_many_reports",
            )
        return SupportRequest.objects.create(driver=driver, batch=batch, topic=topic, text=cleaned)


def support_request_resolve(*, support_request: SupportRequest, by: User) -> bool:
    """Mark an open request resolved (a guarded update). Returns False when it already was:
    resolving twice changes nothing."""
    rows = SupportRequest.objects.filter(pk=support_request.pk, status=SupportRequest.Status.OPEN).update(
        status=SupportRequest.Status.RESOLVED, resolved_at=timezone.now(), resolved_by=by
    )
    support_request.refresh_from_db()
    return rows == 1


def support_requests_of(*, driver: Driver, limit: int = 10) -> list[SupportRequest]:
    """The driver's latest reports, newest first, for their Help screen."""
    return list(SupportRequest.objects.filter(driver=driver).select_related("batch__store")[:limit])
