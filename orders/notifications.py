"""Emails to the customer: "your order is on the way" and "your order was delivered".

They go through the one outbox (outbox.services): the delivery services call
`queue_on_the_way_email` / `queue_delivered_email` inside the transaction of the status
change, so the message exists exactly when the change committed, once per order and kind
(the key). The outbox sends it after the commit, retries with backoff and never sends it
twice at once. What the email says is built when it is sent (`_build`): an order that moved
on (the "on the way" email for an order already delivered) or has no email address gets
nothing, and the message is closed as skipped.

The senders are registered with the outbox by OrdersConfig.ready().
"""

import logging
from datetime import datetime

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _

from outbox import senders
from outbox import services as outbox
from outbox.models import Message

from .models import Order, OrderEvent
from .tracking import tracking_state

logger = logging.getLogger(__name__)

ON_THE_WAY = "on_the_way"
DELIVERED = "delivered"
# Which order status each email belongs to: sent only while the order is in it.
KIND_STATUS = {ON_THE_WAY: Order.Status.PICKED_UP, DELIVERED: Order.Status.DELIVERED}


def message_kind(kind: str) -> str:
    """The outbox kind of an order email."""
    return f"orders.{kind}"


def message_key(order_id: int, kind: str) -> str:
    return f"order:{order_id}:{kind}"


def public_url(path: str) -> str:
    return settings.SPARK_PUBLIC_URL.rstrip("/") + path


def tracking_url(order: Order) -> str:
    return public_url(reverse("tracking", args=[order.tracking_token]))


def photo_url(order: Order) -> str:
    return public_url(reverse("tracking-photo", args=[order.tracking_token]))


def _context(order: Order, kind: str) -> dict:
    state = tracking_state(order)  # the same facts (and privacy rules) as the tracking page
    first = (order.customer_name or "").strip().split(" ")[0]
    return {
        "kind": kind,
        "customer_first_name": first,
        "store_name": order.store.name,
        "tracking_url": tracking_url(order),
        "photo_url": photo_url(order) if (state["delivered"] or {}).get("photo_url") else "",
        "driver": state["driver"],
        "eta": state["eta"],
        "delivered": state["delivered"],
        "tip": state["tip"],
    }


def build_email(order: Order, kind: str) -> EmailMultiAlternatives:
    context = _context(order, kind)
    if kind == ON_THE_WAY:
        subject = _("Your order from %(store)s is on the way") % {"store": order.store.name}
    else:
        subject = _("Your order from %(store)s was delivered") % {"store": order.store.name}
    subject = " ".join(subject.split())  # no line breaks in a header, whatever the store is called
    text = render_to_string(f"emails/order_{kind}.txt", context)
    html = render_to_string(f"emails/order_{kind}.html", context)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[order.customer_email],
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(html, "text/html")
    return message


def _build(kind: str):
    def build(message: Message, now: datetime) -> EmailMultiAlternatives:
        order = Order.objects.select_related("store", "store__zone").filter(pk=message.payload["order_id"]).first()
        if order is None:
            raise senders.Skip("order missing")
        if not order.customer_email:
            raise senders.Skip("no email address")
        if order.status != KIND_STATUS[kind]:
            raise senders.Skip("order moved on")
        return build_email(order, kind)

    return build


def register_senders() -> None:
    """Called by OrdersConfig.ready(): the outbox learns how to build each order email."""
    for kind in KIND_STATUS:
        senders.register(message_kind(kind), build=_build(kind))


def queue_email(*, order_id: int, kind: str) -> Message:
    """Owe the customer the `kind` email, once per order; call it inside the transaction of
    the status change (it is sent after the commit)."""
    return outbox.message_enqueue(
        kind=message_kind(kind), key=message_key(order_id, kind), payload={"order_id": order_id}
    )


def queue_on_the_way_email(order_id: int) -> Message:
    return queue_email(order_id=order_id, kind=ON_THE_WAY)


def queue_delivered_email(order_id: int) -> Message:
    return queue_email(order_id=order_id, kind=DELIVERED)


# --- Bridge for the deploy (remove in the release after) ----------------------------------
# The previous release queued these two tasks by name; any still in the broker when the new
# workers start owe their email through the outbox instead, unless the previous release's
# "email:<kind>" marker row says it was sent already. So no email is lost or sent twice.


def _bridge(order_id: int, kind: str) -> str:
    if OrderEvent.objects.filter(order_id=order_id, reason=f"email:{kind}").exists():
        return "already_sent"
    queue_email(order_id=order_id, kind=kind)
    return "queued"


@shared_task(name="orders.notifications.send_on_the_way_email", ignore_result=True)
def send_on_the_way_email(order_id: int) -> str:
    return _bridge(order_id, ON_THE_WAY)


@shared_task(name="orders.notifications.send_delivered_email", ignore_result=True)
def send_delivered_email(order_id: int) -> str:
    return _bridge(order_id, DELIVERED)
