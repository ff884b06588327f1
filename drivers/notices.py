"""What a driver is told about their slot seats: the email that a seat was released because
they had not checked in, with the reason (issue 12). Sent through the one outbox:
`slot_released_notice_enqueue` is called by slot_services.slot_release_no_show in the
transaction that releases the seat. The sender is registered by DriversConfig.ready(); the
driver's home screen shows the same reason (selectors.slot_release_reason)."""

from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from outbox import senders
from outbox import services as outbox
from outbox.models import Message

from .models import SlotClaim
from .selectors import slot_release_reason

SLOT_RELEASED = "drivers.slot_released"


def slot_released_notice_enqueue(*, claim_id: int) -> Message:
    """Owe the driver the email about their released seat (once per claim)."""
    return outbox.message_enqueue(kind=SLOT_RELEASED, key=f"slot-released:{claim_id}", payload={"claim_id": claim_id})


def _build(message: Message, now: datetime) -> EmailMessage:
    claim = SlotClaim.objects.select_related("driver__user", "slot__store__zone").get(pk=message.payload["claim_id"])
    user = claim.driver.user
    if not user.email:
        raise senders.Skip("no email address")
    with translation.override(user.writing_language):
        return _email(claim, user)


def _email(claim: SlotClaim, user) -> EmailMessage:
    slot = claim.slot
    with timezone.override(ZoneInfo(slot.store.zone.timezone)):
        when = {
            "store": slot.store.name,
            "day": timezone.localtime(slot.starts_at).strftime("%a %b %-d"),
            "start": timezone.localtime(slot.starts_at).strftime("%-I:%M %p"),
            "end": timezone.localtime(slot.ends_at).strftime("%-I:%M %p"),
        }
    subject = _("Spark: your slot at %(store)s was released") % when
    text = "\n\n".join(
        [
            _("Hi %(name)s,") % {"name": user.first_name} if user.first_name else _("Hi,"),
            _("Your seat in the slot at %(store)s on %(day)s, %(start)s to %(end)s, was given back to other drivers.")
            % when,
            slot_release_reason(claim),
            _("Sign up for another slot in the Spark driver app; check in at the store when it starts."),
            _("The Spark team"),
        ]
    )
    return EmailMessage(subject, text + "\n", settings.DEFAULT_FROM_EMAIL, [user.email])


def register_senders() -> None:
    senders.register(SLOT_RELEASED, build=_build)
