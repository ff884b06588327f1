"""What a customer may see about their tip (the tracking page and its JSON): the tip as it
stands in payments.Tip, where the money is, and whether they can raise it from the page."""

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from orders.models import Order
from spark.money import format_cents

from .models import Tip

# The customer may raise a tip until the order was delivered and its window closed; never on an
# order that was cancelled or did not reach them.
RAISABLE_ORDER = (
    Order.Status.RECEIVED,
    Order.Status.BATCHED,
    Order.Status.READY,
    Order.Status.PICKED_UP,
    Order.Status.DELIVERED,
)


def order_tip(order: Order) -> Tip | None:
    return Tip.objects.filter(order=order).first()


def tip_can_raise(tip: Tip | None, *, now=None) -> bool:
    """Whether the customer can raise this tip from the tracking page: a card tip (a saved
    payment method we may charge off session), authorised, not settled, its window open. A
    tip without a saved card would need Stripe's Payment Element (Stripe.js), which the page
    does not load: it is not offered."""
    if tip is None or not tip.is_card or tip.status != Tip.Status.AUTHORIZED or tip.settled_at is not None:
        return False
    if tip.order.status not in RAISABLE_ORDER:
        return False
    closes = tip.adjust_window_closes_at
    return closes is None or closes > (now or timezone.now())


def customer_tip(order: Order, *, now=None) -> dict:
    """The tip block of the tracking page and status.json: amount, one true sentence about the
    money, and whether a raise is offered (with the most it may be raised to)."""
    tip = order_tip(order)
    if tip is None:  # orders from before tips were rows: the amount is all we know
        return {
            "cents": int(order.tip_cents),
            "text": format_cents(int(order.tip_cents)),
            "note": "",
            "can_raise": False,
        }
    not_delivered = order.status in (Order.Status.CANCELLED, Order.Status.UNDELIVERABLE, Order.Status.RETURNED)
    hours = settings.SPARK_TIP_ADJUST_WINDOW_HOURS
    if tip.status == Tip.Status.BOOKED:
        note = _("Paid to the store with your order; all of it goes to your driver.") if tip.amount_cents else ""
    elif tip.status == Tip.Status.CAPTURED:
        note = _("Charged to your card; all of it goes to your driver.")
    elif tip.status == Tip.Status.CANCELED:
        note = _("Not charged to your card.") if tip.amount_cents or tip.failure_reason else ""
        if tip.failure_reason and not not_delivered:
            note = _("Your card declined the tip; nothing was charged.")
    elif not_delivered:
        note = _("Your tip will not be charged; the hold on your card is released.")
    else:
        note = _("Held on your card and charged %(hours)s hours after delivery; all of it goes to your driver.") % {
            "hours": hours
        }
    can_raise = tip_can_raise(tip, now=now)
    return {
        "cents": int(tip.amount_cents),
        "text": format_cents(int(tip.amount_cents)),
        "note": note,
        "can_raise": can_raise,
        "max_text": format_cents(settings.SPARK_TIP_MAX_CENTS) if can_raise else "",
    }


def driver_pending_tips(driver) -> list[dict]:
    """Tips on the driver's deliveries not credited yet, for the earnings screens: the order, the
    tip as shown to the driver and when it settles (None until the order is delivered or
    returned; then SPARK_TIP_ADJUST_WINDOW_HOURS later). Credited tips are in the ledger
    (TIPS_PAYABLE), not here."""
    tips = (
        Tip.objects.filter(
            settled_at__isnull=True,
            order__stops__batch__driver=driver,
            order__tip_cents__gt=0,
        )
        .exclude(order__stops__status="removed")
        .exclude(order__status=Order.Status.CANCELLED)
        .select_related("order")
        .distinct()
        .order_by("order__window_start", "pk")
    )
    return [
        {
            "order_id": tip.order_id,
            "external_id": tip.order.external_id,
            "cents": int(tip.order.tip_cents),
            "settles_at": tip.adjust_window_closes_at,
        }
        for tip in tips
    ]
