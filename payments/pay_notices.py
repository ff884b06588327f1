"""The email telling a driver that ops changed what a batch paid, with the reason (issue 10:
every adjustment is shown to the driver with its reason). Sent through the one outbox like every
message Spark sends: `adjustment_notice_enqueue` is called by payments.settlement.pay_adjust in
the transaction that writes the adjustment; once sent, the adjustment's driver_notified_at is
stamped. The sender is registered with the outbox by PaymentsConfig.ready()."""

from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from outbox import senders
from outbox import services as outbox
from outbox.models import Message
from spark.money import format_cents

from .models import PayAdjustment

MESSAGE_KIND = "payments.pay_adjustment"


def adjustment_notice_enqueue(*, adjustment: PayAdjustment) -> Message:
    """Owe the driver the email about `adjustment` (once); sent after the commit."""
    return outbox.message_enqueue(
        kind=MESSAGE_KIND, key=f"pay-adjustment:{adjustment.pk}", payload={"adjustment_id": adjustment.pk}
    )


def _adjustment(message: Message) -> PayAdjustment:
    return PayAdjustment.objects.select_related(
        "batch_pay__driver__user", "batch_pay__driver__home_zone", "batch_pay__batch__store"
    ).get(pk=message.payload["adjustment_id"])


def _build(message: Message, now: datetime) -> EmailMultiAlternatives:
    adjustment = _adjustment(message)
    pay = adjustment.batch_pay
    driver = pay.driver
    if not driver.user.email:
        raise senders.Skip("no email address")
    total = pay.final_cents + sum(a.amount_cents for a in pay.adjustments.all())
    context = {
        "first_name": driver.user.first_name,
        "batch_id": pay.batch_id,
        "store": pay.batch.store.name,
        "amount": format_cents(abs(adjustment.amount_cents)),
        "raised": adjustment.amount_cents > 0,
        "note": adjustment.note,
        "final": format_cents(pay.final_cents),
        "total": format_cents(total),
        "created_at": adjustment.created_at,
    }
    with timezone.override(ZoneInfo(driver.home_zone.timezone)), translation.override(driver.user.writing_language):
        # The reason's label as the driver's earnings screen words it (one catalog entry).
        context["reason"] = _(adjustment.get_reason_display())
        text = render_to_string("emails/pay_adjusted.txt", context)
        html = render_to_string("emails/pay_adjusted.html", context)
        subject = _("Spark: the pay of batch %(batch)s was changed") % {"batch": pay.batch_id}
    email = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [driver.user.email])
    email.attach_alternative(html, "text/html")
    return email


def _on_sent(message: Message, now: datetime) -> None:
    PayAdjustment.objects.filter(pk=message.payload["adjustment_id"]).update(driver_notified_at=now)


def register_senders() -> None:
    senders.register(MESSAGE_KIND, build=_build, on_sent=_on_sent)
