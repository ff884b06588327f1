"""Emails to the customer: "your order is on the way" and "your order was delivered".

Queue them by name once the status change has committed, e.g.
    queue_on_commit(send_on_the_way_email, order.pk)            # spark.celery.queue_on_commit
    app.send_task("orders.notifications.send_delivered_email", args=[order.pk])
or with the helpers `queue_on_the_way_email(order_id)` / `queue_delivered_email(order_id)` below.

Each task takes an order id and is idempotent: the fact that an email went out is an OrderEvent
marker row (from_status == to_status == the order's status, reason "email:<kind>"), so it lives in
the database, not in a cache, and needs no extra model field. A task whose order has moved on
(the "on the way" email for an order already delivered) or has no email address does nothing.

Delivery guarantee (the choice documented):
1. Claim: in a short transaction that locks the order row, give up if the "sent" marker exists;
   otherwise write an "email:<kind>:sending" claim row (or take over a claim older than
   CLAIM_STALE_AFTER, whose worker must have died: the hard task time limit is far shorter).
   A fresh claim means another worker is sending right now: this run retries after the claim
   would be stale, and then finds the "sent" marker and stops.
2. Send through the email backend (a network call, outside any transaction).
3. Turn the claim into the "sent" marker.
If sending raises, the claim is removed and the task retries with backoff. So two runs never send
concurrently, a failed send is retried, and the only duplicate possible is a worker dying (or the
database failing) between the SMTP server accepting the message and step 3: then the message is
sent again once the claim is stale - at most twice, never lost silently. For a notification
"your groceries are on the way", one rare duplicate beats a silently missing email.
"""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import Order, OrderEvent

logger = logging.getLogger(__name__)

ON_THE_WAY = "on_the_way"
DELIVERED = "delivered"
# Which order status each email belongs to: sent only while the order is in it.
KIND_STATUS = {ON_THE_WAY: Order.Status.PICKED_UP, DELIVERED: Order.Status.DELIVERED}
# Far above CELERY_TASK_TIME_LIMIT (120 s): a claim this old belongs to a dead worker.
CLAIM_STALE_AFTER = timedelta(seconds=300)
MAX_RETRIES = 6


def sent_marker(kind: str) -> str:
    return f"email:{kind}"


def claim_marker(kind: str) -> str:
    return f"email:{kind}:sending"


def public_url(path: str) -> str:
    return settings.SPARK_PUBLIC_URL.rstrip("/") + path


def tracking_url(order: Order) -> str:
    return public_url(reverse("tracking", args=[order.tracking_token]))


def photo_url(order: Order) -> str:
    return public_url(reverse("tracking-photo", args=[order.tracking_token]))


class ClaimBusy(Exception):
    """Another worker is sending this email right now."""

    def __init__(self, retry_in: float):
        super().__init__(f"email being sent by another worker; retry in {retry_in:.0f} s")
        self.retry_in = retry_in


def _claim(order_id: int, kind: str) -> tuple[Order | None, int | None, str]:
    """(order, claim row id, outcome). The order is None when there is nothing to send."""
    status = KIND_STATUS[kind]
    now = timezone.now()
    with transaction.atomic():
        # Locks only the order row, for the few milliseconds of this check-and-insert.
        order = Order.objects.select_for_update().filter(pk=order_id).first()
        if order is None:
            return None, None, "missing"
        if not order.customer_email:
            return None, None, "no_email"
        if order.status != status:
            return None, None, "stale"
        markers = OrderEvent.objects.filter(order=order, reason__in=[sent_marker(kind), claim_marker(kind)])
        if any(m.reason == sent_marker(kind) for m in markers):
            return None, None, "already_sent"
        claim = max(markers, key=lambda m: m.created_at, default=None)
        if claim is not None and claim.created_at > now - CLAIM_STALE_AFTER:
            raise ClaimBusy((claim.created_at + CLAIM_STALE_AFTER - now).total_seconds() + 5)
        if claim is not None:  # its worker died: take it over
            OrderEvent.objects.filter(pk=claim.pk).update(created_at=now)
            claim_id = claim.pk
        else:
            claim_id = OrderEvent.objects.create(
                order=order, from_status=status, to_status=status, reason=claim_marker(kind), created_at=now
            ).pk
    return order, claim_id, "claimed"


def _context(order: Order, kind: str) -> dict:
    from .views import tracking_state  # the same facts (and privacy rules) as the tracking page

    state = tracking_state(order)
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
        subject=subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL, to=[order.customer_email],
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(html, "text/html")
    return message


def send_once(order_id: int, kind: str) -> str:
    """Send the `kind` email for the order unless it was sent already. Returns the outcome:
    "sent", "already_sent", "no_email", "stale" (the order moved on) or "missing".
    Raises ClaimBusy when another worker is sending it right now."""
    order, claim_id, outcome = _claim(order_id, kind)
    if order is None or claim_id is None:
        return outcome
    try:
        order = Order.objects.select_related("store", "store__zone").get(pk=order.pk)
        build_email(order, kind).send(fail_silently=False)
    except Exception:
        OrderEvent.objects.filter(pk=claim_id, reason=claim_marker(kind)).delete()  # let a retry claim again
        raise
    OrderEvent.objects.filter(pk=claim_id).update(reason=sent_marker(kind), created_at=timezone.now())
    logger.info("sent %s email for order %s", kind, order_id)
    return "sent"


def _run(task, order_id: int, kind: str) -> str:
    try:
        return send_once(order_id, kind)
    except ClaimBusy as busy:
        raise task.retry(countdown=busy.retry_in, max_retries=MAX_RETRIES) from None
    except Exception as exc:
        logger.warning("sending the %s email for order %s failed: %s", kind, order_id, exc)
        countdown = min(600, 30 * 2 ** task.request.retries)
        raise task.retry(exc=exc, countdown=countdown, max_retries=MAX_RETRIES) from exc


@shared_task(bind=True, name="orders.notifications.send_on_the_way_email", ignore_result=True)
def send_on_the_way_email(self, order_id: int) -> str:
    """Email the customer that the order was picked up: driver's first name, vehicle, tracking link."""
    return _run(self, order_id, ON_THE_WAY)


@shared_task(bind=True, name="orders.notifications.send_delivered_email", ignore_result=True)
def send_delivered_email(self, order_id: int) -> str:
    """Email the customer that the order was delivered: the time and a link to the photo."""
    return _run(self, order_id, DELIVERED)


def queue_on_the_way_email(order_id: int) -> None:
    """Queue the "on the way" email once the current transaction commits."""
    from spark.celery import queue_on_commit

    queue_on_commit(send_on_the_way_email, order_id)


def queue_delivered_email(order_id: int) -> None:
    """Queue the "delivered" email once the current transaction commits."""
    from spark.celery import queue_on_commit

    queue_on_commit(send_delivered_email, order_id)
