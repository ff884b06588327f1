"""Tips, one source of truth: every write to payments.Tip (and to orders.Order.tip_cents, the
tip as shown to drivers) goes through here.

The life of a tip (issue 10, item 3):

- Intake (`tip_intake`): the store API sends the tip with the order. With a Stripe customer and
  saved payment method it is a card tip: a TipCharge is made and authorised after the commit
  (`tip_charge_authorize`, a task: a manual-capture PaymentIntent, off_session, confirmed, its
  idempotency key from the charge row). Without them the store collected it: it is only
  booked (TIPS_HELD +tip / TIPS_RECEIVABLE -tip, posted when it is credited).
- Changes: before a driver has the batch the store may change it either way
  (`tip_change_by_store`); after, the customer may only raise it from the tracking page
  (`tip_raise_by_customer`: a new manual-capture PaymentIntent for the difference on the saved
  card, its own idempotency key), and only ops may lower it (`tip_lower_by_ops`, with a reason;
  the driver is told by a DriverNotice). Every change updates Order.tip_cents and the batch's
  stops_tip_cents through orders.services.batch_refresh_route.
- Settlement (`tips_settle_due`, beat): a card tip is captured when its adjust window closes
  (SPARK_TIP_ADJUST_WINDOW_HOURS after delivery), or earlier when Stripe's capture_before is
  near (SPARK_TIP_CAPTURE_MARGIN_MINUTES); then, once the window closed, it is credited in
  full to the driver (TIPS_PAYABLE(driver) +tip / TIPS_HELD -tip). A tip shown to the driver
  that ended at zero (declined, authorisation cancelled, order returned) is covered by Spark
  up to the zone's PayPolicy.tip_cover_cap_cents (TIPS_PAYABLE +x / PLATFORM_EXPENSE -x).

Stripe is called only outside database transactions; each step re-reads its rows under a lock
afterwards and moves them forward only (a retry, a second worker or a webhook arriving in any
order finds the work done). `tip_payment_intent_event` is what the Stripe webhook calls with a
PaymentIntent object.
"""

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from orders.batch_editing import batch_refresh_route
from orders.models import Batch, Order, Stop
from spark.celery import queue_on_commit
from spark.errors import Conflict, DomainError, InvalidTransition, NotFound
from spark.money import format_cents

from .contractor.notices import notice_create
from .models import Account, DriverNotice, Tip, TipAdjustment, TipCharge
from .payouts import driver_account
from .services import ledger_post, system_account, zone_pay_policy
from .tips_selectors import tip_can_raise

logger = logging.getLogger(__name__)

CURRENCY = "usd"
# Batch statuses in which a driver has (or had) the batch: the tip was shown to them.
DRIVER_HOLDS = (
    Batch.Status.ASSIGNED,
    Batch.Status.AT_STORE,
    Batch.Status.PICKED_UP,
    Batch.Status.COMPLETED,
    Batch.Status.RETURNING,
    Batch.Status.RETURNED,
)
# Order statuses after which nothing more happens to the delivery: the adjust window runs.
FINAL_ORDER = (Order.Status.DELIVERED, Order.Status.UNDELIVERABLE, Order.Status.RETURNED, Order.Status.CANCELLED)
# A pending authorisation older than this lost its task; the sweeper tries it again.
STALE_PENDING = timedelta(minutes=2)

TIP_INTAKE = "tip_intake"
TIP_CAPTURED = "tip_captured"
TIP_BOOKED = "tip_booked"
TIP_CREDITED = "tip_credited"
TIP_COVER = "tip_cover"
TIP_REFUNDED = "tip_refunded"


# --- Backends -----------------------------------------------------------------------


class TipBackend(Protocol):
    name: str

    def authorize(self, charge: TipCharge) -> dict: ...

    def capture(self, charge: TipCharge, amount_cents: int) -> dict: ...

    def cancel(self, charge: TipCharge) -> dict: ...

    def refund(self, charge: TipCharge, amount_cents: int) -> dict: ...


def _stamp(value) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def payment_intent_capture_before(pi: dict) -> datetime | None:
    """Stripe's capture deadline of an authorised PaymentIntent (on its latest charge's card
    details), if Stripe gave one."""
    charge = pi.get("latest_charge")
    if not isinstance(charge, dict):
        return None
    card = ((charge.get("payment_method_details") or {}).get("card")) or {}
    return _stamp(card.get("capture_before"))


def payment_intent_refunded(pi: dict) -> int | None:
    """What has been refunded of a PaymentIntent's charge (its latest_charge expanded), or None
    when the PaymentIntent does not say."""
    charge = pi.get("latest_charge")
    if not isinstance(charge, dict):
        return None
    refunded = charge.get("amount_refunded")
    return int(refunded) if isinstance(refunded, int) and refunded >= 0 else None


class StripeTipBackend:
    """PaymentIntents on Stripe (or a local stand-in at STRIPE_API_BASE). Network failures and
    5xx are raised (the caller's task retries with the same idempotency key); declines are
    answers."""

    name = "stripe"
    timeout_seconds: float = 30
    max_network_retries = 2

    def _client(self) -> stripe.StripeClient:
        return stripe.StripeClient(
            settings.STRIPE_SECRET_KEY,
            base_addresses={"api": settings.STRIPE_API_BASE},
            max_network_retries=self.max_network_retries,
            http_client=stripe.RequestsClient(timeout=self.timeout_seconds),
        )

    def _with_charge(self, client: stripe.StripeClient, pi: dict) -> dict:
        charge = pi.get("latest_charge")
        if isinstance(charge, str) and charge:  # Stripe sends the id unless expanded
            pi["latest_charge"] = client.v1.charges.retrieve(charge).to_dict()
        return pi

    def authorize(self, charge: TipCharge) -> dict:
        tip = charge.tip
        client = self._client()
        try:
            pi = client.v1.payment_intents.create(
                params={
                    "amount": charge.amount_cents,
                    "currency": CURRENCY,
                    "customer": tip.stripe_customer_id,
                    "payment_method": tip.stripe_payment_method_id,
                    "capture_method": "manual",
                    "confirm": True,
                    "off_session": True,
                    "metadata": {"tip_id": str(tip.pk), "order_id": str(tip.order_id), "charge_id": str(charge.pk)},
                },
                options={"idempotency_key": charge.idempotency_key},
            ).to_dict()
        except stripe.CardError as exc:
            error = exc.error.to_dict() if exc.error else {}
            intent = error.get("payment_intent") or {}
            return {
                "status": "failed",
                "payment_intent": intent.get("id", "") if isinstance(intent, dict) else str(intent),
                "reason": (exc.code or "card_declined")[:255],
            }
        pi = self._with_charge(client, pi)
        if pi.get("status") != "requires_capture":
            # requires_action (the bank wants the customer present) and the like: not authorised.
            return {"status": "failed", "payment_intent": pi.get("id", ""), "reason": str(pi.get("status"))[:255]}
        return {"status": "authorized", "payment_intent": pi["id"], "capture_before": payment_intent_capture_before(pi)}

    def capture(self, charge: TipCharge, amount_cents: int) -> dict:
        client = self._client()
        params: Any = {"amount_to_capture": amount_cents} if amount_cents < charge.amount_cents else {}
        try:
            pi = client.v1.payment_intents.capture(
                charge.stripe_payment_intent_id,
                params=params,
                options={"idempotency_key": f"{charge.idempotency_key}-capture"},
            ).to_dict()
        except stripe.InvalidRequestError as exc:
            # Captured already (a retry after a lost answer), or cancelled or expired at Stripe
            # (the customer's bank let the hold go): the PaymentIntent says which.
            pi = client.v1.payment_intents.retrieve(charge.stripe_payment_intent_id).to_dict()
            if pi.get("status") != "succeeded":
                return {"status": "failed", "reason": (exc.code or str(pi.get("status")) or "capture_refused")[:255]}
        if pi.get("status") != "succeeded":
            return {"status": "failed", "reason": str(pi.get("status"))[:255]}
        return {"status": "captured", "amount": int(pi.get("amount_received") or amount_cents)}

    def cancel(self, charge: TipCharge) -> dict:
        if not charge.stripe_payment_intent_id:
            return {"status": "canceled"}
        try:
            self._client().v1.payment_intents.cancel(
                charge.stripe_payment_intent_id, options={"idempotency_key": f"{charge.idempotency_key}-cancel"}
            )
        except stripe.InvalidRequestError:
            pass  # already cancelled or expired: released either way
        return {"status": "canceled"}

    def refund(self, charge: TipCharge, amount_cents: int) -> dict:
        """Give `amount_cents` of a captured charge back to the customer. Answers the charge's
        refunded total as Stripe holds it (a refund made at Stripe meanwhile counts)."""
        client = self._client()
        try:
            client.v1.refunds.create(
                params={"payment_intent": charge.stripe_payment_intent_id, "amount": amount_cents},
                options={"idempotency_key": f"{charge.idempotency_key}-refund"},
            )
        except stripe.InvalidRequestError:
            pass  # refunded already (a retry, or at Stripe): the charge says how much
        pi = self._with_charge(client, client.v1.payment_intents.retrieve(charge.stripe_payment_intent_id).to_dict())
        return {"status": "refunded", "amount_refunded": payment_intent_refunded(pi)}


class SandboxTipBackend:
    """No Stripe key (the embedded default): money moves in the ledger only; ids say so."""

    name = "sandbox"

    def authorize(self, charge: TipCharge) -> dict:
        return {"status": "authorized", "payment_intent": f"sandbox_pi_{charge.pk}", "capture_before": None}

    def capture(self, charge: TipCharge, amount_cents: int) -> dict:
        return {"status": "captured", "amount": amount_cents}

    def cancel(self, charge: TipCharge) -> dict:
        return {"status": "canceled"}

    def refund(self, charge: TipCharge, amount_cents: int) -> dict:
        return {"status": "refunded", "amount_refunded": charge.refunded_cents + amount_cents}


TIP_BACKENDS: dict[str, type] = {"stripe": StripeTipBackend, "sandbox": SandboxTipBackend}


def tip_backend() -> TipBackend:
    name = settings.SPARK_PAYMENT_BACKEND
    try:
        return TIP_BACKENDS[name]()
    except KeyError:
        raise ImproperlyConfigured(f"SPARK_PAYMENT_BACKEND must be one of {', '.join(sorted(TIP_BACKENDS))}.") from None


# --- Helpers ------------------------------------------------------------------------


def _live_stop(order: Order) -> Stop | None:
    return (
        Stop.objects.filter(order=order)
        .exclude(status=Stop.Status.REMOVED)
        .select_related("batch", "batch__driver")
        .first()
    )


def holding_driver(order: Order):
    """The driver who has (or had) the order's batch, or None while no driver claimed it."""
    stop = _live_stop(order)
    if stop is None or stop.batch.driver_id is None or stop.batch.status not in DRIVER_HOLDS:
        return None
    return stop.batch.driver


def _show(order: Order, cents: int) -> None:
    """Order.tip_cents (the tip drivers see) and its batch's stops_tip_cents, in the caller's
    transaction; the batch row is locked first, as every batch write does."""
    stop = _live_stop(order)
    batch = Batch.objects.select_for_update().get(pk=stop.batch_id) if stop else None
    Order.objects.filter(pk=order.pk).update(tip_cents=cents)
    order.tip_cents = cents
    if batch is not None:
        batch_refresh_route(batch=batch)


def _outside_transaction(what: str) -> None:
    """Stripe is never called inside a database transaction (DESIGN rule 4). The atomic block
    a Django test case wraps each test in does not count: it stands for "no transaction"."""
    blocks = transaction.get_connection().atomic_blocks
    if any(not getattr(block, "_from_testcase", False) for block in blocks):
        raise RuntimeError(f"{what} calls Stripe: run it outside a transaction")


def _lock(tip_id: int) -> Tip:
    return Tip.objects.select_for_update().select_related("order").get(pk=tip_id)


def _check_amount(cents) -> int:
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise DomainError("A tip is a whole number of cents.", code="invalid_amount")
    if cents < 0:
        raise DomainError("A tip cannot be negative.", code="invalid_amount")
    if cents > settings.SPARK_TIP_MAX_CENTS:
        raise DomainError(f"A tip is at most {format_cents(settings.SPARK_TIP_MAX_CENTS)}.", code="invalid_amount")
    return cents


# --- Intake and changes -------------------------------------------------------------


def tip_intake(*, order: Order, amount_cents: int, stripe_customer: str = "", stripe_payment_method: str = "") -> Tip:
    """The tip sent with the order. Call in the intake's transaction (the authorisation is
    queued for after the commit). A repeat with the same tip returns the existing row; with a
    different one it is a Conflict and nothing changes."""
    from . import tasks

    amount_cents = _check_amount(amount_cents)
    if bool(stripe_customer) != bool(stripe_payment_method):
        raise DomainError("Send both stripe_customer and stripe_payment_method, or neither.", code="invalid_card")
    existing = Tip.objects.filter(order=order).first()
    if existing is not None:
        first_change = existing.adjustments.order_by("created_at", "pk").first()
        intake_cents = first_change.old_cents if first_change else existing.amount_cents
        same = (
            intake_cents == amount_cents
            and existing.stripe_customer_id == stripe_customer
            and existing.stripe_payment_method_id == stripe_payment_method
        )
        if not same:
            raise Conflict("This order was sent before with another tip.", code="intake_conflict")
        return existing
    card = bool(stripe_customer) and amount_cents > 0
    with transaction.atomic():
        tip = Tip.objects.create(
            order=order,
            status=Tip.Status.PENDING if card else Tip.Status.BOOKED,
            amount_cents=amount_cents,
            authorized_cents=0,
            stripe_customer_id=stripe_customer,
            stripe_payment_method_id=stripe_payment_method,
        )
        _show(order, amount_cents)
        if card:
            charge = TipCharge.objects.create(tip=tip, kind=TipCharge.Kind.INTAKE, amount_cents=amount_cents)
            queue_on_commit(tasks.authorize_tip_charge, charge.pk)
    return tip


def tip_change_by_store(*, order: Order, amount_cents: int, actor=None) -> Tip:
    """The store changes the tip, either way, until a driver has the batch. A raise of a card
    tip is a new authorisation for the difference (it takes effect once authorised)."""
    from . import tasks

    amount_cents = _check_amount(amount_cents)
    with transaction.atomic():
        tip = Tip.objects.select_for_update().filter(order=order).first()
        if tip is None:
            raise NotFound("This order has no tip.", code="no_tip")
        if holding_driver(order) is not None:
            raise InvalidTransition(
                "A driver has this order's batch; only the customer can raise the tip now.", code="tip_claimed"
            )
        if tip.settled_at is not None or tip.status == Tip.Status.CANCELED:
            raise InvalidTransition("This tip is closed.", code="tip_closed")
        if amount_cents == tip.amount_cents:
            return tip
        if amount_cents > tip.amount_cents and tip.is_card:
            charge = TipCharge.objects.create(
                tip=tip, kind=TipCharge.Kind.RAISE, amount_cents=amount_cents - tip.amount_cents
            )
            queue_on_commit(tasks.authorize_tip_charge, charge.pk)
            return tip
        TipAdjustment.objects.create(
            tip=tip, old_cents=tip.amount_cents, new_cents=amount_cents, reason="changed by the store", decided_by=actor
        )
        tip.amount_cents = amount_cents
        tip.save(update_fields=["amount_cents"])
        _show(order, amount_cents)
    return tip


def tip_raise_by_customer(*, order: Order, new_amount_cents, request_key: str) -> TipCharge:
    """The customer raises the tip to `new_amount_cents` (tracking page). Makes the charge for
    the difference; the caller authorises it right after the commit (tip_charge_authorize),
    the beat sweeper does if that is lost. One raise per `request_key`: a repeat returns the
    same charge."""
    new_amount_cents = _check_amount(new_amount_cents)
    if not request_key or len(request_key) > 128:
        raise DomainError("Missing or bad request key.", code="invalid_key")
    with transaction.atomic():
        tip = Tip.objects.select_for_update().select_related("order").filter(order=order).first()
        if tip is None:
            raise NotFound("This order has no tip.", code="no_tip")
        again = TipCharge.objects.filter(tip=tip, request_key=request_key).first()
        if again is not None:
            return again
        if not tip_can_raise(tip):
            raise InvalidTransition("This tip can no longer be raised here.", code="tip_closed")
        if new_amount_cents <= tip.amount_cents:
            raise DomainError("A new tip must be higher than the current one.", code="not_a_raise")
        try:
            with transaction.atomic():
                return TipCharge.objects.create(
                    tip=tip,
                    kind=TipCharge.Kind.RAISE,
                    amount_cents=new_amount_cents - tip.amount_cents,
                    request_key=request_key,
                )
        except IntegrityError:
            return TipCharge.objects.get(tip=tip, request_key=request_key)


def tip_lower_by_ops(*, tip: Tip, new_amount_cents, reason: str, actor) -> TipAdjustment:
    """Ops lower a tip (the customer asked, a mistake): with a reason, and the driver who has
    the batch is told. Before the window closes only."""
    new_amount_cents = _check_amount(new_amount_cents)
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say why the tip is lowered; the driver is told.", code="reason_required")
    with transaction.atomic():
        tip = _lock(tip.pk)
        now = timezone.now()
        closed = tip.adjust_window_closes_at is not None and tip.adjust_window_closes_at <= now
        if tip.settled_at is not None or closed or tip.status in (Tip.Status.CAPTURED, Tip.Status.CANCELED):
            raise InvalidTransition("This tip's window closed; it is being settled as it stands.", code="tip_closed")
        if new_amount_cents >= tip.amount_cents:
            raise DomainError("Ops can only lower a tip; the customer raises it.", code="not_lower")
        driver = holding_driver(tip.order)
        adjustment = TipAdjustment.objects.create(
            tip=tip,
            old_cents=tip.amount_cents,
            new_cents=new_amount_cents,
            reason=reason[:255],
            decided_by=actor,
            driver_notified_at=now if driver is not None else None,
        )
        tip.amount_cents = new_amount_cents
        tip.save(update_fields=["amount_cents"])
        _show(tip.order, new_amount_cents)
        if driver is not None:
            notice_create(
                driver=driver,
                kind=DriverNotice.Kind.TIP_LOWERED,
                key=f"tip-lowered:{adjustment.pk}",
                context={
                    "order": tip.order.external_id,
                    "old": format_cents(adjustment.old_cents),
                    "new": format_cents(adjustment.new_cents),
                    "reason": adjustment.reason,
                },
            )
    return adjustment


# --- Authorisation ------------------------------------------------------------------


def _apply_authorisation(charge_id: int, result: dict) -> TipCharge:
    """Record what Stripe answered for a charge's authorisation; forward only."""
    with transaction.atomic():
        charge = TipCharge.objects.select_for_update().get(pk=charge_id)
        tip = _lock(charge.tip_id)
        if charge.status != TipCharge.Status.PENDING:
            if result.get("capture_before") and charge.status == TipCharge.Status.AUTHORIZED:
                charge.capture_before = result["capture_before"]
                charge.save(update_fields=["capture_before"])
                _refresh_capture_before(tip)
            return charge
        now = timezone.now()
        charge.stripe_payment_intent_id = result.get("payment_intent") or charge.stripe_payment_intent_id
        if result["status"] == "authorized":
            charge.status = TipCharge.Status.AUTHORIZED
            charge.authorized_at = now
            charge.capture_before = result.get("capture_before")
            charge.save()
            tip.authorized_cents += charge.amount_cents
            fields = ["authorized_cents"]
            if charge.kind == TipCharge.Kind.INTAKE:
                tip.status = Tip.Status.AUTHORIZED
                tip.stripe_payment_intent_id = charge.stripe_payment_intent_id
                fields += ["status", "stripe_payment_intent_id"]
            else:
                TipAdjustment.objects.create(
                    tip=tip,
                    old_cents=tip.amount_cents,
                    new_cents=tip.amount_cents + charge.amount_cents,
                    reason="raised by the customer" if charge.request_key else "raised by the store",
                )
                tip.amount_cents += charge.amount_cents
                fields.append("amount_cents")
                _show(tip.order, tip.amount_cents)
            tip.save(update_fields=fields)
            _refresh_capture_before(tip)
            return charge
        charge.status = TipCharge.Status.FAILED
        charge.failure_reason = str(result.get("reason", ""))[:255]
        charge.save()
        if charge.kind == TipCharge.Kind.INTAKE:
            # The tip ends at zero. Nobody was promised it unless a driver has the batch: then
            # it stays shown and Spark covers it when the window closes.
            TipAdjustment.objects.create(
                tip=tip, old_cents=tip.amount_cents, new_cents=0, reason=f"card declined ({charge.failure_reason})"
            )
            tip.status = Tip.Status.CANCELED
            tip.amount_cents = 0
            tip.failure_reason = charge.failure_reason
            tip.save(update_fields=["status", "amount_cents", "failure_reason"])
            if holding_driver(tip.order) is None:
                _show(tip.order, 0)
        return charge


def _refresh_capture_before(tip: Tip) -> None:
    earliest = (
        tip.charges.filter(status=TipCharge.Status.AUTHORIZED, capture_before__isnull=False)
        .order_by("capture_before")
        .values_list("capture_before", flat=True)
        .first()
    )
    Tip.objects.filter(pk=tip.pk).update(capture_before=earliest)
    tip.capture_before = earliest


def tip_charge_authorize(*, charge_id: int) -> str:
    """Authorise one charge with Stripe (outside any transaction) and record the answer.
    Returns the charge's status. Safe to run twice: a charge no longer pending is left alone,
    and Stripe replays the same PaymentIntent for the same idempotency key."""
    _outside_transaction("tip_charge_authorize")
    charge = TipCharge.objects.select_related("tip").filter(pk=charge_id).first()
    if charge is None or charge.status != TipCharge.Status.PENDING:
        return charge.status if charge else "missing"
    result = tip_backend().authorize(charge)
    return _apply_authorisation(charge.pk, result).status


# --- Capture and settlement ---------------------------------------------------------


def tip_capture(*, tip_id: int) -> str:
    """Capture an authorised card tip: its current amount, spread over its authorised charges
    in order (a charge not needed is released). Outside any transaction; each charge's answer
    is recorded and posted (TIPS_HELD +x / STRIPE_CLEARING -x) on its own. Returns the tip's
    status."""
    _outside_transaction("tip_capture")
    backend = tip_backend()
    tip = Tip.objects.get(pk=tip_id)
    if tip.status != Tip.Status.AUTHORIZED:
        return tip.status
    remaining = tip.amount_cents
    for charge in tip.charges.filter(status=TipCharge.Status.AUTHORIZED).order_by("created_at", "pk"):
        take = min(charge.amount_cents, remaining)
        if take > 0:
            result = backend.capture(charge, take)
            _apply_capture(charge.pk, result)
            if result["status"] == "captured":
                remaining -= int(result["amount"])
        else:
            backend.cancel(charge)
            TipCharge.objects.filter(pk=charge.pk, status=TipCharge.Status.AUTHORIZED).update(
                status=TipCharge.Status.CANCELED
            )
    with transaction.atomic():
        tip = _lock(tip_id)
        if tip.status == Tip.Status.AUTHORIZED and not tip.charges.filter(status=TipCharge.Status.AUTHORIZED).exists():
            captured = tip.charges.aggregate(s=Sum("captured_cents"))["s"] or 0
            tip.status = Tip.Status.CAPTURED if captured else Tip.Status.CANCELED
            tip.captured_at = timezone.now() if captured else None
            if not captured:
                tip.failure_reason = "authorisation no longer valid"
            tip.save(update_fields=["status", "captured_at", "failure_reason"])
    return tip.status


def _apply_capture(charge_id: int, result: dict) -> None:
    with transaction.atomic():
        charge = TipCharge.objects.select_for_update().select_related("tip").get(pk=charge_id)
        if charge.status != TipCharge.Status.AUTHORIZED:
            return
        if result["status"] != "captured":
            charge.status = TipCharge.Status.CANCELED
            charge.failure_reason = str(result.get("reason", ""))[:255]
            charge.save(update_fields=["status", "failure_reason"])
            return
        amount = int(result["amount"])
        charge.status = TipCharge.Status.CAPTURED
        charge.captured_cents = amount
        charge.captured_at = timezone.now()
        charge.save(update_fields=["status", "captured_cents", "captured_at"])
        ledger_post(
            idempotency_key=f"tip-captured:{charge.pk}",
            kind=TIP_CAPTURED,
            entries=[
                (system_account(kind=Account.Kind.TIPS_HELD), amount),
                (system_account(kind=Account.Kind.STRIPE_CLEARING), -amount),
            ],
            memo=f"Tip on order {charge.tip.order_id} captured ({charge.stripe_payment_intent_id})"[:255],
        )


def tip_release(*, tip_id: int) -> str:
    """Let every authorisation of a tip go (the order was not delivered). Outside any
    transaction. Returns the tip's status."""
    _outside_transaction("tip_release")
    backend = tip_backend()
    tip = Tip.objects.get(pk=tip_id)
    for charge in tip.charges.filter(status__in=[TipCharge.Status.AUTHORIZED, TipCharge.Status.PENDING]):
        backend.cancel(charge)
        TipCharge.objects.filter(
            pk=charge.pk, status__in=[TipCharge.Status.AUTHORIZED, TipCharge.Status.PENDING]
        ).update(status=TipCharge.Status.CANCELED)
    Tip.objects.filter(pk=tip_id, status__in=[Tip.Status.AUTHORIZED, Tip.Status.PENDING]).update(
        status=Tip.Status.CANCELED
    )
    return Tip.objects.get(pk=tip_id).status


def _apply_refund(charge_id: int, refunded_total: int) -> None:
    """Record that `refunded_total` of a captured charge went back to the customer (our refund
    or one made at Stripe; the total only grows, so a repeat or a stale copy posts nothing).
    Who bears it: for an order not delivered, the money held for the tip goes back
    (TIPS_HELD -x / STRIPE_CLEARING +x) and the driver is covered at settlement as for a
    released hold; for a delivered order the driver keeps the whole tip, as promised, and
    Spark bears the refund (PLATFORM_EXPENSE -x / STRIPE_CLEARING +x)."""
    with transaction.atomic():
        charge = TipCharge.objects.select_for_update().select_related("tip__order").get(pk=charge_id)
        total = min(int(refunded_total), charge.captured_cents)
        delta = total - charge.refunded_cents
        if charge.status != TipCharge.Status.CAPTURED or delta <= 0:
            return
        charge.refunded_cents = total
        charge.save(update_fields=["refunded_cents"])
        order = charge.tip.order
        delivered = order.status == Order.Status.DELIVERED
        bearer = Account.Kind.PLATFORM_EXPENSE if delivered else Account.Kind.TIPS_HELD
        ledger_post(
            idempotency_key=f"tip-refunded:{charge.pk}:{total}",
            kind=TIP_REFUNDED,
            entries=[(system_account(kind=bearer), -delta), (system_account(kind=Account.Kind.STRIPE_CLEARING), delta)],
            memo=f"Tip on order {order.external_id}: {format_cents(delta)} refunded to the customer"
            + (" (borne by Spark; the driver keeps the tip)" if delivered else ""),
        )


def tip_refund(*, tip_id: int) -> int:
    """Give a captured tip back to the customer: its order was not delivered (the capture came
    early, before Stripe's capture_before). Outside any transaction. Returns what was refunded
    in all."""
    _outside_transaction("tip_refund")
    backend = tip_backend()
    for charge in TipCharge.objects.filter(tip_id=tip_id, status=TipCharge.Status.CAPTURED):
        left = charge.captured_cents - charge.refunded_cents
        if left > 0:
            _apply_refund(charge.pk, int(backend.refund(charge, left)["amount_refunded"] or 0))
    refunded = TipCharge.objects.filter(tip_id=tip_id).aggregate(s=Sum("refunded_cents"))["s"] or 0
    if refunded:
        Tip.objects.filter(pk=tip_id, failure_reason="").update(failure_reason="refunded: the order was not delivered")
    return int(refunded)


def _final_at(order: Order) -> datetime:
    if order.status == Order.Status.DELIVERED:
        stop = Stop.objects.filter(order=order, status=Stop.Status.DELIVERED).first()
        if stop is not None and stop.delivered_at is not None:
            return stop.delivered_at
    return order.status_changed_at


def tip_window_closes_at(tip: Tip) -> datetime | None:
    """When the customer can no longer raise the tip: SPARK_TIP_ADJUST_WINDOW_HOURS after the
    order ended (delivered, returned); right away for a cancelled order; None before."""
    order = tip.order
    if order.status not in FINAL_ORDER:
        return None
    if order.status == Order.Status.CANCELLED:
        return order.status_changed_at
    return _final_at(order) + timedelta(hours=settings.SPARK_TIP_ADJUST_WINDOW_HOURS)


def tip_settle(*, tip_id: int, now: datetime | None = None) -> bool:
    """Close a tip whose window closed: capture (or release) it, then credit the driver in full,
    or cover a shown tip that ended at zero. Returns whether it is settled now."""
    now = now or timezone.now()
    tip = Tip.objects.select_related("order").get(pk=tip_id)
    if tip.settled_at is not None:
        return True
    if tip.adjust_window_closes_at is None or tip.adjust_window_closes_at > now:
        return False
    for charge_id in tip.charges.filter(status=TipCharge.Status.PENDING).values_list("pk", flat=True):
        tip_charge_authorize(charge_id=charge_id)
    tip.refresh_from_db()
    if tip.status == Tip.Status.PENDING:
        return False  # still nothing from Stripe; the next run tries again
    delivered = tip.order.status == Order.Status.DELIVERED
    if tip.status == Tip.Status.AUTHORIZED:
        if delivered:
            tip_capture(tip_id=tip.pk)
        else:
            tip_release(tip_id=tip.pk)
    elif tip.status == Tip.Status.CAPTURED and not delivered:
        tip_refund(tip_id=tip.pk)  # captured early, then not delivered: the customer gets it back
    with transaction.atomic():
        tip = _lock(tip_id)
        if tip.settled_at is not None:
            return True
        order = tip.order
        driver = holding_driver(order)
        if tip.status == Tip.Status.BOOKED:
            collected = tip.amount_cents if order.status == Order.Status.DELIVERED else 0
            if collected and driver is not None:
                ledger_post(
                    idempotency_key=f"tip-booked:{tip.pk}",
                    kind=TIP_BOOKED,
                    entries=[
                        (system_account(kind=Account.Kind.TIPS_HELD), collected),
                        (system_account(kind=Account.Kind.TIPS_RECEIVABLE), -collected),
                    ],
                    memo=f"Tip on order {order.external_id}, collected by the store",
                )
        else:
            sums = tip.charges.aggregate(captured=Sum("captured_cents"), refunded=Sum("refunded_cents"))
            collected = int(sums["captured"] or 0)
            if order.status != Order.Status.DELIVERED:
                collected -= int(sums["refunded"] or 0)  # given back; for a delivered order Spark bore it
        if driver is not None and order.status != Order.Status.CANCELLED:
            tips_payable = driver_account(driver=driver, kind=Account.Kind.TIPS_PAYABLE)
            if collected > 0:
                ledger_post(
                    idempotency_key=f"tip-credited:{tip.pk}",
                    kind=TIP_CREDITED,
                    entries=[(tips_payable, collected), (system_account(kind=Account.Kind.TIPS_HELD), -collected)],
                    memo=f"Tip on order {order.external_id}",
                )
            elif order.tip_cents > 0:
                cap = zone_pay_policy(zone=order.store.zone).tip_cover_cap_cents
                cover = min(int(order.tip_cents), int(cap))
                if cover > 0:
                    ledger_post(
                        idempotency_key=f"tip-cover:{tip.pk}",
                        kind=TIP_COVER,
                        entries=[(tips_payable, cover), (system_account(kind=Account.Kind.PLATFORM_EXPENSE), -cover)],
                        memo=f"Tip on order {order.external_id} ended at 0 ({tip.failure_reason or order.status}); "
                        f"covered by Spark"[:255],
                    )
                    tip.covered_cents = cover
        tip.settled_at = now
        tip.save(update_fields=["settled_at", "covered_cents"])
    return True


def tips_settle_due(*, now: datetime | None = None, limit: int = 200) -> dict:
    """The beat's sweep: authorisations whose task was lost, adjust windows to stamp, captures
    due (window closed or capture_before near), settlements due. Each tip on its own: one
    failing (Stripe down) is logged and retried on the next run."""
    now = now or timezone.now()
    counts = {"authorized": 0, "windows": 0, "captured": 0, "settled": 0, "errors": 0}
    stale = TipCharge.objects.filter(status=TipCharge.Status.PENDING, created_at__lt=now - STALE_PENDING)
    for charge_id in stale.values_list("pk", flat=True)[:limit]:
        try:
            if tip_charge_authorize(charge_id=charge_id) == TipCharge.Status.AUTHORIZED:
                counts["authorized"] += 1
        except Exception:  # one tip must not stop the sweep
            logger.exception("tip charge %s: authorisation failed", charge_id)
            counts["errors"] += 1
    unstamped = Tip.objects.filter(
        settled_at__isnull=True, adjust_window_closes_at__isnull=True, order__status__in=FINAL_ORDER
    ).select_related("order")
    for tip in unstamped[:limit]:
        closes = tip_window_closes_at(tip)
        if closes is not None:
            Tip.objects.filter(pk=tip.pk, adjust_window_closes_at__isnull=True).update(adjust_window_closes_at=closes)
            counts["windows"] += 1
    margin = timedelta(minutes=settings.SPARK_TIP_CAPTURE_MARGIN_MINUTES)
    to_capture = Tip.objects.filter(status=Tip.Status.AUTHORIZED).filter(
        Q(capture_before__lte=now + margin) | Q(adjust_window_closes_at__lte=now, order__status=Order.Status.DELIVERED)
    )
    for tip_id in to_capture.values_list("pk", flat=True)[:limit]:
        try:
            if tip_capture(tip_id=tip_id) == Tip.Status.CAPTURED:
                counts["captured"] += 1
        except Exception:
            logger.exception("tip %s: capture failed", tip_id)
            counts["errors"] += 1
    due = Tip.objects.filter(settled_at__isnull=True, adjust_window_closes_at__lte=now)
    for tip_id in due.values_list("pk", flat=True)[:limit]:
        try:
            if tip_settle(tip_id=tip_id, now=now):
                counts["settled"] += 1
        except Exception:
            logger.exception("tip %s: settlement failed", tip_id)
            counts["errors"] += 1
    return counts


# --- Stripe webhook -----------------------------------------------------------------


def payment_intent_fetch(pi_id: str) -> dict | None:
    """A PaymentIntent as Stripe holds it now, with its latest charge (for capture_before), or
    None without Stripe (sandbox) or when it is not one of our tips'. Network: call outside any
    transaction; network errors and 5xx are raised (the webhook asks Stripe to send again)."""
    if not pi_id.startswith("pi_"):
        return None
    backend = tip_backend()
    if not isinstance(backend, StripeTipBackend):
        return None
    client = backend._client()
    try:
        pi = client.v1.payment_intents.retrieve(pi_id).to_dict()
    except stripe.InvalidRequestError:
        return None
    return backend._with_charge(client, pi)


def tip_payment_intent_event(pi: dict) -> bool:
    """A PaymentIntent object from a Stripe event (payment_intent.*), in any order and any
    number of times. Moves our charge forward only: an authorisation we had not recorded
    (requires_capture), a decline (requires_payment_method / payment_failed), a hold Stripe let
    go (canceled: the tip ends at zero and is covered at settlement), a capture (succeeded).
    Returns whether the PaymentIntent is one of our tips'. No Stripe call, no transaction
    needed around it."""
    pi_id = str(pi.get("id") or "")
    charge = TipCharge.objects.filter(stripe_payment_intent_id=pi_id).first() if pi_id else None
    if charge is None:
        charge_id = str((pi.get("metadata") or {}).get("charge_id") or "")
        charge = TipCharge.objects.filter(pk=int(charge_id)).first() if charge_id.isdigit() else None
        if charge is None:
            return False
    status = pi.get("status")
    if status == "requires_capture":
        _apply_authorisation(
            charge.pk,
            {"status": "authorized", "payment_intent": pi_id, "capture_before": payment_intent_capture_before(pi)},
        )
    elif status in ("requires_payment_method", "requires_action") and charge.status == TipCharge.Status.PENDING:
        error = pi.get("last_payment_error") or {}
        _apply_authorisation(
            charge.pk, {"status": "failed", "payment_intent": pi_id, "reason": error.get("code") or status}
        )
    elif status == "canceled":
        if charge.status == TipCharge.Status.PENDING:
            _apply_authorisation(charge.pk, {"status": "failed", "payment_intent": pi_id, "reason": "canceled"})
        else:
            TipCharge.objects.filter(pk=charge.pk, status=TipCharge.Status.AUTHORIZED).update(
                status=TipCharge.Status.CANCELED, failure_reason="canceled at Stripe"
            )
    elif status == "succeeded" and charge.status == TipCharge.Status.AUTHORIZED:
        amount = int(pi.get("amount_received") or pi.get("amount") or charge.amount_cents)
        _apply_capture(charge.pk, {"status": "captured", "amount": min(amount, charge.amount_cents)})
    refunded = payment_intent_refunded(pi) if status == "succeeded" else None
    if refunded:
        _apply_refund(charge.pk, refunded)
    return True
