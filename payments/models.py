from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from spark.statemachine import StatusEvent


def _non_negative(*fields: str, prefix: str) -> list[models.BaseConstraint]:
    return [models.CheckConstraint(condition=Q(**{f"{f}__gte": 0}), name=f"{prefix}_{f}_non_negative") for f in fields]


PAY_POLICY_MONEY_FIELDS = (
    "base_cents",
    "per_stop_cents",
    "per_mile_cents",
    "heavy_order_cents",
    "wait_cents_per_minute",
    "incentive_step_cents",
    "incentive_cap_cents",
    "cashout_fee_cents",
    "cashout_daily_limit_cents",
    "cashout_min_cents",
    "tip_cover_cap_cents",
)


class PayPolicy(models.Model):
    """How a zone pays a batch. All amounts in cents."""

    zone = models.OneToOneField("stores.Zone", on_delete=models.PROTECT, related_name="pay_policy")
    base_cents = models.BigIntegerField(default=400)
    per_stop_cents = models.BigIntegerField(default=150)
    per_mile_cents = models.BigIntegerField(default=60, help_text="Per routed mile, including the drive back.")
    heavy_order_cents = models.BigIntegerField(default=200)
    wait_grace_minutes = models.PositiveSmallIntegerField(default=10)
    wait_cents_per_minute = models.BigIntegerField(default=20)
    incentive_step_cents = models.BigIntegerField(default=100)
    incentive_cap_cents = models.BigIntegerField(default=800)
    # Instant cash-out (payments.payouts): what it costs, the most a driver may cash out per
    # local day (fee aside) and the least one cash-out pays.
    cashout_fee_cents = models.BigIntegerField(default=50)
    cashout_daily_limit_cents = models.BigIntegerField(default=50_000)
    cashout_min_cents = models.BigIntegerField(default=500)
    tip_cover_cap_cents = models.BigIntegerField(
        default=500,
        help_text="Spark pays a driver up to this much of a tip they were shown that ended at zero "
        "(card declined, authorisation cancelled, order returned).",
    )
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name_plural = "pay policies"
        constraints = [
            *_non_negative(*PAY_POLICY_MONEY_FIELDS, prefix="paypolicy"),
            models.CheckConstraint(
                condition=Q(incentive_cap_cents__gte=F("incentive_step_cents")), name="paypolicy_cap_at_least_step"
            ),
        ]

    def __str__(self) -> str:
        return f"Pay policy of {self.zone}"


class OfferPaySnapshot(models.Model):
    """What an offer promised, frozen when the offer was made. Never updated: the pay the
    driver finally gets for the batch is at least `total_cents` (DESIGN rule 8)."""

    offer = models.OneToOneField("dispatch.Offer", on_delete=models.PROTECT, related_name="pay")
    base_cents = models.BigIntegerField()
    stops_cents = models.BigIntegerField()
    miles_cents = models.BigIntegerField()
    heavy_cents = models.BigIntegerField()
    incentive_cents = models.BigIntegerField()
    tip_cents = models.BigIntegerField()
    total_cents = models.BigIntegerField()
    routed_meters = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            *_non_negative(
                "base_cents",
                "stops_cents",
                "miles_cents",
                "heavy_cents",
                "incentive_cents",
                "tip_cents",
                prefix="snapshot",
            ),
            models.CheckConstraint(
                condition=Q(
                    total_cents=F("base_cents")
                    + F("stops_cents")
                    + F("miles_cents")
                    + F("heavy_cents")
                    + F("incentive_cents")
                    + F("tip_cents")
                ),
                name="snapshot_total_is_sum",
            ),
        ]

    def __str__(self) -> str:
        return f"Pay snapshot of offer {self.offer_id}: {self.total_cents}c"


class BatchPay(models.Model):
    """What a batch paid its driver, worked out once when it settled (payments.settlement).

    final = the greater of the snapshot (what the accepted offer promised, tips aside) and the
    pay recomputed from what happened (routed miles with the drive back, stops driven to,
    heavy orders), plus wait pay past the zone's grace, plus the incentive. Tips are paid on
    their own (Tip), when their adjust window closes. Later changes are PayAdjustments, each
    with a reason; none takes the total below the snapshot."""

    batch = models.OneToOneField("orders.Batch", on_delete=models.PROTECT, related_name="settled_pay")
    driver = models.ForeignKey("drivers.Driver", on_delete=models.PROTECT, related_name="batch_pays")
    snapshot = models.ForeignKey(
        OfferPaySnapshot,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The accepted offer's.",
    )
    snapshot_cents = models.BigIntegerField(help_text="The snapshot's total without its tips (incentive included).")
    base_cents = models.BigIntegerField()
    stops_cents = models.BigIntegerField()
    miles_cents = models.BigIntegerField()
    heavy_cents = models.BigIntegerField()
    routed_meters = models.PositiveIntegerField(help_text="As driven: store, every stop driven to, back.")
    stops_paid = models.PositiveSmallIntegerField(help_text="Stops driven to: delivered, failed and returned.")
    heavy_paid = models.PositiveSmallIntegerField()
    incentive_cents = models.BigIntegerField()
    wait_minutes = models.PositiveIntegerField(help_text="Whole minutes at the store past the grace period.")
    wait_cents = models.BigIntegerField()
    final_cents = models.BigIntegerField(help_text="What the batch paid, adjustments aside.")
    ledger_transaction = models.OneToOneField(
        "LedgerTransaction", null=True, blank=True, on_delete=models.PROTECT, related_name="batch_pay"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "batch pay"
        constraints = [
            *_non_negative(
                "snapshot_cents",
                "base_cents",
                "stops_cents",
                "miles_cents",
                "heavy_cents",
                "incentive_cents",
                "wait_cents",
                prefix="batchpay",
            ),
            models.CheckConstraint(
                condition=Q(final_cents__gte=F("snapshot_cents")), name="batchpay_not_below_snapshot"
            ),
        ]

    def __str__(self) -> str:
        return f"Pay of batch {self.batch_id}: {self.final_cents}c"


class PayAdjustment(models.Model):
    """A change ops made to what a batch paid, with the reason the driver sees."""

    class Reason(models.TextChoices):
        ROUTE = "route", "Route was longer than measured"
        WAIT = "wait", "Wait at the store not counted"
        STOPS = "stops", "Stop or heavy order not counted"
        CORRECTION = "correction", "Correction of an earlier adjustment"
        GOODWILL = "goodwill", "Goodwill"

    batch_pay = models.ForeignKey(BatchPay, on_delete=models.PROTECT, related_name="adjustments")
    amount_cents = models.BigIntegerField()
    reason = models.CharField(max_length=16, choices=Reason.choices)
    note = models.CharField(max_length=255, blank=True, help_text="Shown to the driver with the reason.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    ledger_transaction = models.OneToOneField(
        "LedgerTransaction", null=True, blank=True, on_delete=models.PROTECT, related_name="pay_adjustment"
    )
    driver_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.CheckConstraint(condition=~Q(amount_cents=0), name="payadjustment_non_zero")]

    def __str__(self) -> str:
        return f"{self.amount_cents:+d}c on batch pay {self.batch_pay_id} ({self.reason})"


# --- Ledger -------------------------------------------------------------------------


# Sign convention: an entry is positive when it credits the account (what we owe: a driver's
# earnings and tips payable, tips held, fee income) and negative when it debits it (what we
# spent or hold: delivery expense, money at Stripe, money on its way to a driver, tips the
# stores owe us). Every transaction sums to zero, so the whole ledger does too.
#
# The flows (each posted once, under a key derived from our own row):
#   batch pay     DRIVER_PAYABLE(driver) +pay        PLATFORM_EXPENSE -pay      "batch-pay:<batch>"
#   adjustment    DRIVER_PAYABLE(driver) +/-x        PLATFORM_EXPENSE -/+x      "pay-adjustment:<id>"
#   tip captured  TIPS_HELD +tip                     STRIPE_CLEARING -tip       (a card tip, captured)
#   tip booked    TIPS_HELD +tip                     TIPS_RECEIVABLE -tip       (the store collected it)
#   tip credited  TIPS_PAYABLE(driver) +tip          TIPS_HELD -tip             (when its window closes)
#   tip cover     TIPS_PAYABLE(driver) +x            PLATFORM_EXPENSE -x        (a shown tip that ended at 0)
#   tip refunded  TIPS_HELD -x (order not delivered)  STRIPE_CLEARING +x         "tip-refunded:<charge>:<total>"
#                 or PLATFORM_EXPENSE -x (delivered: the driver keeps the tip; Spark bears it)
#   payout        DRIVER_PAYABLE/TIPS_PAYABLE -amt   PAYOUT_CLEARING +amt       (transfer asked for)
#   payout fee    DRIVER_PAYABLE -fee                FEES +fee                  (instant cash-out)
#   payout paid   PAYOUT_CLEARING -amt               STRIPE_CLEARING +amt       (transfer made)
#   payout failed the payout's entries reversed: the money is back in the driver's balance
# A driver's balance is the sum of their DRIVER_PAYABLE and TIPS_PAYABLE entries, nothing else.
DRIVER_ACCOUNT_KINDS = ("driver_payable", "tips_payable")
ACCOUNT_KINDS = (
    *DRIVER_ACCOUNT_KINDS,
    "platform_expense",
    "tips_held",
    "tips_receivable",
    "stripe_clearing",
    "payout_clearing",
    "fees",
    "cash",
)


class Account(models.Model):
    class Kind(models.TextChoices):
        DRIVER_PAYABLE = "driver_payable", "Earnings owed to driver"
        TIPS_PAYABLE = "tips_payable", "Tips owed to driver"
        PLATFORM_EXPENSE = "platform_expense", "Platform delivery expense"
        TIPS_HELD = "tips_held", "Customer tips held"
        TIPS_RECEIVABLE = "tips_receivable", "Tips collected by stores, owed to us"
        STRIPE_CLEARING = "stripe_clearing", "Stripe balance"
        PAYOUT_CLEARING = "payout_clearing", "Payouts in transit"
        FEES = "fees", "Cash-out fees earned"
        CASH = "cash", "Cash (Stripe balance)"

    kind = models.CharField(max_length=24, choices=Kind.choices)
    driver = models.ForeignKey("drivers.Driver", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "driver"], name="account_kind_driver_unique", nulls_distinct=False),
            models.CheckConstraint(condition=Q(kind__in=ACCOUNT_KINDS), name="account_kind_valid"),
            models.CheckConstraint(
                condition=Q(kind__in=DRIVER_ACCOUNT_KINDS, driver__isnull=False)
                | (~Q(kind__in=DRIVER_ACCOUNT_KINDS) & Q(driver__isnull=True)),
                name="account_driver_iff_payable",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class LedgerTransaction(models.Model):
    """A balanced set of entries. `idempotency_key` is derived from our own rows
    (e.g. "batch-pay:123"), so posting the same thing twice posts it once."""

    idempotency_key = models.CharField(max_length=128, unique=True)
    kind = models.CharField(max_length=32)
    memo = models.CharField(max_length=255, blank=True)
    batch = models.ForeignKey("orders.Batch", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.idempotency_key}"


class Entry(models.Model):
    """Signed integer cents. Entries of one transaction sum to zero (payments.services.ledger_post)."""

    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    amount_cents = models.BigIntegerField()

    class Meta:
        verbose_name_plural = "entries"
        constraints = [models.CheckConstraint(condition=~Q(amount_cents=0), name="entry_non_zero")]

    def __str__(self) -> str:
        return f"{self.amount_cents:+d}c {self.account}"


# --- Tips and payouts ---------------------------------------------------------------


TIP_STATUSES = ["pending", "authorized", "booked", "captured", "canceled"]


class Tip(models.Model):
    """The customer's tip on an order: the one source of truth (payments.tips writes it).

    orders.Order.tip_cents is the tip as SHOWN to drivers (offers, the feed's ranking through
    Batch.stops_tip_cents); only payments.tips writes it, from this row.

    A card tip (the store sent a Stripe customer and saved payment method) is authorised with
    manual-capture PaymentIntents, one per TipCharge (the intake amount, then each raise), and
    captured when its adjust window closes (never after Stripe's capture_before). A tip the
    store collected itself is only booked. Either way it is credited in full to the driver
    when the window closes (settled_at)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Authorisation pending"
        AUTHORIZED = "authorized", "Authorised"
        BOOKED = "booked", "Collected by the store"
        CAPTURED = "captured", "Captured"
        CANCELED = "canceled", "Canceled"

    order = models.OneToOneField("orders.Order", on_delete=models.PROTECT, related_name="tip")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.AUTHORIZED)
    amount_cents = models.BigIntegerField(help_text="The tip as it stands.")
    authorized_cents = models.BigIntegerField(help_text="Authorised on the customer's card (card tips).")
    stripe_customer_id = models.CharField(max_length=64, blank=True)
    stripe_payment_method_id = models.CharField(max_length=64, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=64, blank=True, help_text="The intake authorisation's.")
    capture_before = models.DateTimeField(
        null=True, blank=True, help_text="Stripe's deadline for the earliest authorisation."
    )
    adjust_window_closes_at = models.DateTimeField(null=True, blank=True)
    captured_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(
        null=True, blank=True, help_text="Window closed: credited to the driver, covered or released."
    )
    covered_cents = models.BigIntegerField(default=0, help_text="What Spark paid the driver for a tip that ended at 0.")
    failure_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            *_non_negative("amount_cents", "authorized_cents", "covered_cents", prefix="tip"),
            models.CheckConstraint(condition=Q(status__in=TIP_STATUSES), name="tip_status_valid_v2"),
        ]

    def __str__(self) -> str:
        return f"Tip {self.amount_cents}c on order {self.order_id}"

    @property
    def is_card(self) -> bool:
        return bool(self.stripe_customer_id and self.stripe_payment_method_id)


class TipCharge(models.Model):
    """One manual-capture PaymentIntent of a card tip: the intake amount, or one raise (the
    difference). Its idempotency key comes from this row."""

    class Kind(models.TextChoices):
        INTAKE = "intake", "Tip at intake"
        RAISE = "raise", "Raised by the customer"

    class Status(models.TextChoices):
        PENDING = "pending", "Authorisation pending"
        AUTHORIZED = "authorized", "Authorised"
        FAILED = "failed", "Declined"
        CAPTURED = "captured", "Captured"
        CANCELED = "canceled", "Released"

    tip = models.ForeignKey(Tip, on_delete=models.PROTECT, related_name="charges")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    amount_cents = models.BigIntegerField()
    captured_cents = models.BigIntegerField(default=0)
    refunded_cents = models.BigIntegerField(
        default=0, help_text="Given back to the customer (our refund of an undelivered order's tip, or at Stripe)."
    )
    request_key = models.CharField(
        max_length=128, blank=True, help_text="The customer's idempotency key for a raise (one raise per key)."
    )
    stripe_payment_intent_id = models.CharField(max_length=64, blank=True)
    capture_before = models.DateTimeField(null=True, blank=True)
    failure_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    authorized_at = models.DateTimeField(null=True, blank=True)
    captured_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="tipcharge_amount_positive"),
            models.CheckConstraint(
                condition=Q(captured_cents__gte=0, captured_cents__lte=F("amount_cents")),
                name="tipcharge_captured_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(refunded_cents__gte=0, refunded_cents__lte=F("captured_cents")),
                name="tipcharge_refunded_within_captured",
            ),
            models.UniqueConstraint(
                fields=["tip", "request_key"], condition=~Q(request_key=""), name="tipcharge_request_key_per_tip"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} charge {self.amount_cents}c on tip {self.tip_id} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        """Stripe's Idempotency-Key for this charge's PaymentIntent."""
        return f"tip-charge-{self.pk}"


class TipAdjustment(models.Model):
    """Every change of a tip. A decrease after assignment needs an ops decision and a reason."""

    tip = models.ForeignKey(Tip, on_delete=models.PROTECT, related_name="adjustments")
    old_cents = models.BigIntegerField()
    new_cents = models.BigIntegerField()
    reason = models.CharField(max_length=255, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    driver_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = _non_negative("old_cents", "new_cents", prefix="tipadj")

    def __str__(self) -> str:
        return f"Tip {self.tip_id}: {self.old_cents}c -> {self.new_cents}c"


class Payout(models.Model):
    class Kind(models.TextChoices):
        WEEKLY = "weekly", "Weekly"
        INSTANT = "instant", "Instant cash-out"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"

    driver = models.ForeignKey("drivers.Driver", on_delete=models.PROTECT, related_name="payouts")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    amount_cents = models.BigIntegerField()
    fee_cents = models.BigIntegerField(default=0)
    idempotency_key = models.CharField(max_length=128, unique=True)
    external_id = models.CharField(max_length=64, blank=True, help_text="The Stripe transfer.")
    stripe_payout_id = models.CharField(
        max_length=64, blank=True, help_text="Instant cash-out: Stripe's payout to the driver's bank."
    )
    failure_reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_cents__gt=0), name="payout_amount_positive"),
            models.CheckConstraint(condition=Q(fee_cents__gte=0), name="payout_fee_non_negative"),
            models.CheckConstraint(condition=Q(status__in=["pending", "paid", "failed"]), name="payout_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} payout {self.amount_cents}c to {self.driver_id}"


class WebhookEvent(models.Model):
    """Every webhook we accepted (Stripe, screening provider), deduplicated on its id."""

    source = models.CharField(max_length=16)
    event_id = models.CharField(max_length=128)
    event_type = models.CharField(max_length=64)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "event_id"], name="webhook_event_unique")]

    def __str__(self) -> str:
        return f"{self.source} {self.event_type} {self.event_id}"


# --- Payouts: the driver's Connect account, weekly runs, reconciliation (payments/payouts.py) ---


class PayoutAccount(models.Model):
    """The driver's Stripe Connect Express account as Stripe last described it: written when
    the driver opens their Payouts page (fetched) and on every account.updated event (fetched
    again by id, so an old event cannot bring back an old state). Weekly payouts and cash-outs
    go only to accounts with payouts enabled."""

    driver = models.OneToOneField("drivers.Driver", on_delete=models.PROTECT, related_name="payout_account")
    account_id = models.CharField(max_length=64)
    payouts_enabled = models.BooleanField(default=False)
    details_submitted = models.BooleanField(default=False)
    requirements_due = models.JSONField(default=list, blank=True, help_text="Stripe's requirements.currently_due.")
    disabled_reason = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Payout account {self.account_id} of driver {self.driver_id}"


class PayoutRun(models.Model):
    """One zone's weekly payout run, for the week starting `week_of` (the zone's local Monday).
    Created when the run starts and stamped when it finished: the hourly beat entry pays a
    zone whose run time has come and that has no finished run for the week (an unfinished one
    is carried on; each driver's payout has its own key, so nothing is paid twice)."""

    zone = models.ForeignKey("stores.Zone", on_delete=models.PROTECT, related_name="payout_runs")
    week_of = models.DateField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    payouts = models.PositiveIntegerField(default=0)
    total_cents = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["zone", "week_of"], name="payout_run_zone_week_unique")]

    def __str__(self) -> str:
        return f"Weekly payouts of {self.zone} for the week of {self.week_of}"


class Reconciliation(models.Model):
    """One daily check that the ledger, our payouts and Stripe agree (payments.reconcile).
    `differences` lists what did not agree, in words ops can act on; empty when all did."""

    ran_at = models.DateTimeField(default=timezone.now, db_index=True)
    ok = models.BooleanField()
    differences = models.JSONField(default=list, blank=True)
    checked = models.JSONField(default=dict, blank=True, help_text="What was compared (counts, totals).")

    class Meta:
        ordering = ["-ran_at"]

    def __str__(self) -> str:
        return f"Reconciliation {self.ran_at:%Y-%m-%d %H:%M}: {'ok' if self.ok else 'differences'}"


class TaxProfile(models.Model):
    """A driver's W-9 (payments.contractor.tax): who the 1099-NEC is for. The TIN is kept
    encrypted at rest (Fernet, key SPARK_TIN_ENCRYPTION_KEY); screens show it masked from
    `tin_last4`, and only the ops' 1099-NEC export decrypts it."""

    class TinType(models.TextChoices):
        SSN = "ssn", "SSN"
        EIN = "ein", "EIN"

    driver = models.OneToOneField("drivers.Driver", on_delete=models.PROTECT, related_name="tax_profile")
    legal_name = models.CharField(max_length=200)
    business_name = models.CharField(max_length=200, blank=True)
    tin_type = models.CharField(max_length=3, choices=TinType.choices)
    tin_encrypted = models.TextField(help_text="Encrypted; never shown.")
    tin_last4 = models.CharField(max_length=4)
    address_line1 = models.CharField(max_length=200)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100)
    state = models.CharField(max_length=2)
    postal_code = models.CharField(max_length=10)
    certified_at = models.DateTimeField(help_text="When the driver certified the W-9 statement.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"W-9 of driver {self.driver_id}"


# --- Contractor module: screening (payments/contractor/) ------------------------------


class ScreeningStatus(models.TextChoices):
    PENDING_DOCUMENTS = "pending_documents", "Waiting for documents"
    IN_REVIEW = "in_review", "In review"
    CLEAR = "clear", "Clear"
    # An adverse result is recorded; the pre-adverse notice has not gone out yet (its
    # DriverNotice is being sent). The waiting period starts when it has.
    CONSIDER = "consider", "Consider (adverse result)"
    PRE_ADVERSE_NOTICE = "pre_adverse_notice", "Pre-adverse notice sent"
    DISPUTED = "disputed", "Disputed by the driver"
    FINAL_ADVERSE = "final_adverse", "Final adverse action"
    CLEARED_AFTER_DISPUTE = "cleared_after_dispute", "Cleared after review"


# Until a case reaches one of clear, final_adverse or cleared_after_dispute.
OPEN_SCREENING_STATUSES = ["pending_documents", "in_review", "consider", "pre_adverse_notice", "disputed"]


class ScreeningCase(models.Model):
    """One background check of a driver and, when it comes back adverse, the US (FCRA)
    adverse-action process that follows, with a timestamp for every step.

    At most one open case per driver (partial unique index). Status changes only through
    payments.contractor.services, each a guarded update plus a ScreeningEvent.
    """

    Status = ScreeningStatus

    TRANSITIONS = {
        Status.PENDING_DOCUMENTS: {Status.IN_REVIEW},
        # in_review -> pending_documents: ops ask for a readable or current document.
        Status.IN_REVIEW: {Status.CLEAR, Status.CONSIDER, Status.PENDING_DOCUMENTS},
        Status.CONSIDER: {Status.PRE_ADVERSE_NOTICE},
        # cleared straight from the notice: ops reinstate after their own review, with or
        # without a dispute (favourable to the driver, so allowed before the deadline).
        Status.PRE_ADVERSE_NOTICE: {Status.DISPUTED, Status.FINAL_ADVERSE, Status.CLEARED_AFTER_DISPUTE},
        Status.DISPUTED: {Status.FINAL_ADVERSE, Status.CLEARED_AFTER_DISPUTE},
        Status.CLEAR: set(),
        Status.FINAL_ADVERSE: set(),
        Status.CLEARED_AFTER_DISPUTE: set(),
    }
    OPEN_STATUSES = (
        Status.PENDING_DOCUMENTS,
        Status.IN_REVIEW,
        Status.CONSIDER,
        Status.PRE_ADVERSE_NOTICE,
        Status.DISPUTED,
    )

    class Source(models.TextChoices):
        OPS = "ops", "Ops review"
        PROVIDER = "provider", "Screening provider (webhook)"

    driver = models.ForeignKey("drivers.Driver", on_delete=models.PROTECT, related_name="screening_cases")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PENDING_DOCUMENTS)
    status_changed_at = models.DateTimeField(default=timezone.now)
    provider = models.CharField(max_length=32, default="in_house", help_text="Who ran the check.")
    provider_ref = models.CharField(max_length=64, blank=True, help_text="The provider's id for the report.")
    result_source = models.CharField(max_length=8, choices=Source.choices, blank=True)
    result_summary = models.TextField(blank=True, help_text="What the report found; copied into the notices.")
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True, help_text="When the check result was recorded.")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    pre_adverse_sent_at = models.DateTimeField(null=True, blank=True)
    dispute_deadline_at = models.DateTimeField(null=True, blank=True, db_index=True)
    dispute_text = models.TextField(blank=True)
    disputed_at = models.DateTimeField(null=True, blank=True)
    final_decision_at = models.DateTimeField(null=True, blank=True)
    final_decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=ScreeningStatus.values), name="screening_status_valid"),
            models.UniqueConstraint(
                fields=["driver"],
                condition=Q(status__in=OPEN_SCREENING_STATUSES),
                name="one_open_screening_case_per_driver",
            ),
            # The waiting period exists only once the notice went out, and a dispute has a text.
            models.CheckConstraint(
                condition=~Q(status="pre_adverse_notice")
                | Q(pre_adverse_sent_at__isnull=False, dispute_deadline_at__isnull=False),
                name="screening_notice_has_deadline",
            ),
            models.CheckConstraint(
                condition=~Q(status="disputed") | (Q(disputed_at__isnull=False) & ~Q(dispute_text="")),
                name="screening_dispute_has_text",
            ),
        ]

    def __str__(self) -> str:
        return f"Screening {self.pk} of driver {self.driver_id} ({self.status})"

    @property
    def ref(self) -> str:
        """The reference Spark gives a screening provider; it comes back as `case_ref`."""
        return f"scase_{self.pk}"


class ScreeningEvent(StatusEvent):
    case = models.ForeignKey(ScreeningCase, on_delete=models.CASCADE, related_name="events")
    source = models.CharField(max_length=8, blank=True, help_text="ops, provider or system")

    class Meta(StatusEvent.Meta):
        pass


class DriverNotice(models.Model):
    """An email the contractor module owes a driver, written in the same transaction as the
    change it reports and sent through the outbox (payments.contractor.notices). `key` makes
    each notice exist once: it is also the memory of "already warned" for document expiry.
    For the adverse-action notices the rows are the record of what was sent and when."""

    class Kind(models.TextChoices):
        # The value is also the template name under templates/emails/.
        SCREENING_UNDER_REVIEW = "screening_under_review", "Application under review"
        SCREENING_DOCUMENTS_NEEDED = "screening_documents_needed", "Documents needed"
        SCREENING_CLEARED = "screening_cleared", "Screening cleared"
        SCREENING_PRE_ADVERSE = "screening_pre_adverse", "Pre-adverse action notice"
        SCREENING_FINAL_ADVERSE = "screening_final_adverse", "Final adverse action notice"
        DOCUMENTS_EXPIRING = "documents_expiring", "Documents expiring"
        DOCUMENTS_EXPIRED = "documents_expired", "Documents expired"
        TIP_LOWERED = "tip_lowered", "Tip lowered by ops"

    driver = models.ForeignKey("drivers.Driver", on_delete=models.PROTECT, related_name="notices")
    case = models.ForeignKey(ScreeningCase, null=True, blank=True, on_delete=models.PROTECT, related_name="notices")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    key = models.CharField(max_length=128, unique=True)
    context = models.JSONField(default=dict, blank=True, help_text="What the email says, fixed when it was due.")
    created_at = models.DateTimeField(default=timezone.now)
    # When it went out (stamped by the outbox in the transaction that marks its message sent).
    sent_at = models.DateTimeField(null=True, blank=True)
    # How it is sent: claims, attempts, errors and retries live in the one outbox.
    message = models.OneToOneField(
        "outbox.Message", null=True, blank=True, on_delete=models.PROTECT, related_name="driver_notice"
    )

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to driver {self.driver_id}"
