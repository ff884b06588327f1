"""Emails about payouts, sent through the one outbox like every message Spark sends
(outbox.services): the message is owed in the transaction of the change, keyed so a repeat
owes nothing more, and built when it is sent. The senders are registered by
PaymentsConfig.ready().

- "payments.payout_failed": a driver's payout failed and its money is back in their balance.
- "payments.reconciliation_report": the daily reconciliation found differences; one email to
  each active staff user (payments.reconcile).
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from outbox import senders
from outbox import services as outbox
from outbox.models import Message

from .models import Payout, Reconciliation

PAYOUT_FAILED = "payments.payout_failed"
RECONCILIATION_REPORT = "payments.reconciliation_report"


def payout_failed_notice(payout: Payout) -> None:
    """Owe the driver the email about their failed payout (once per payout)."""
    outbox.message_enqueue(kind=PAYOUT_FAILED, key=f"payout-failed:{payout.pk}", payload={"payout_id": payout.pk})


def reconciliation_report_notice(report: Reconciliation) -> int:
    """Owe every active staff user the report of `report`'s differences. Returns how many."""
    staff = get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="").order_by("pk")
    for user in staff:
        outbox.message_enqueue(
            kind=RECONCILIATION_REPORT,
            key=f"reconciliation:{report.pk}:{user.pk}",
            payload={"reconciliation_id": report.pk, "user_id": user.pk},
        )
    return len(staff)


def _build_payout_failed(message: Message, now: datetime) -> EmailMultiAlternatives:
    payout = Payout.objects.select_related("driver__user", "driver__home_zone").get(pk=message.payload["payout_id"])
    driver = payout.driver
    if not driver.user.email:
        raise senders.Skip("no email address")
    with timezone.override(ZoneInfo(driver.home_zone.timezone)), translation.override(driver.user.writing_language):
        kind = _("Instant cash-out") if payout.kind == Payout.Kind.INSTANT else _("Weekly payout")
        context = {"payout": payout, "first_name": driver.user.first_name, "kind": kind.lower()}
        text = render_to_string("emails/payout_failed.txt", context)
        html = render_to_string("emails/payout_failed.html", context)
        subject = _("Spark: your payout did not go through")
    email = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [driver.user.email])
    email.attach_alternative(html, "text/html")
    return email


def _build_reconciliation(message: Message, now: datetime) -> EmailMultiAlternatives:
    report = Reconciliation.objects.get(pk=message.payload["reconciliation_id"])
    user = get_user_model().objects.filter(pk=message.payload["user_id"], is_active=True, is_staff=True).first()
    if user is None or not user.email:
        raise senders.Skip("not staff any more")
    text = render_to_string("emails/reconciliation_report.txt", {"report": report})
    subject = f"Spark reconciliation: {len(report.differences)} difference(s) on {report.ran_at:%Y-%m-%d}"
    return EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [user.email])


def register_senders() -> None:
    senders.register(PAYOUT_FAILED, build=_build_payout_failed)
    senders.register(RECONCILIATION_REPORT, build=_build_reconciliation)
