"""Every cent of one batch, for ops (the Batch admin page's "Money" section): what its accepted
offer promised (OfferPaySnapshot), what it paid (BatchPay, its parts and PayAdjustments), the
tips of its orders (Tip, TipCharge), and every ledger transaction behind them with its entries.

The ledger transactions are the ones linked to the batch (LedgerTransaction.batch: its pay,
adjustments, trip pay when it was taken back) and the tips' postings, found by their keys
(payments.tips): "tip-captured:<charge id>", "tip-booked:<tip id>", "tip-credited:<tip id>",
"tip-cover:<tip id>". Payouts are left out: a payout pays a driver's whole balance, not a batch.

Read-only, typed rows; a handful of queries whatever the batch.
"""

from dataclasses import asdict, dataclass
from datetime import datetime

from django.db.models import Q

from orders.models import Batch, Stop

from .driver_earnings import OfferedPay, offered_pay
from .models import Account, BatchPay, LedgerTransaction, OfferPaySnapshot, PayAdjustment, Tip, TipCharge

TIP_TXN_KEYS_BY_TIP = ("tip-booked:", "tip-credited:", "tip-cover:")
TIP_TXN_KEY_BY_CHARGE = "tip-captured:"
TIP_TXN_REFUND_PREFIX = "tip-refunded:"


@dataclass(frozen=True)
class TraceSnapshot(OfferedPay):
    """The accepted offer's pay as the driver saw it (OfferedPay), with the rows it came from."""

    id: int
    offer_id: int
    driver_id: int


@dataclass(frozen=True)
class TraceAdjustment:
    id: int
    amount_cents: int
    reason: str
    note: str
    created_at: datetime
    transaction_id: int | None


@dataclass(frozen=True)
class TracePay:
    id: int
    driver_id: int
    snapshot_cents: int
    base_cents: int
    stops_cents: int
    miles_cents: int
    heavy_cents: int
    incentive_cents: int
    wait_minutes: int
    wait_cents: int
    routed_meters: int
    stops_paid: int
    final_cents: int
    transaction_id: int | None
    created_at: datetime
    adjustments: tuple[TraceAdjustment, ...]

    @property
    def total_cents(self) -> int:
        return self.final_cents + sum(a.amount_cents for a in self.adjustments)


@dataclass(frozen=True)
class TraceCharge:
    id: int
    kind: str
    status: str
    amount_cents: int
    captured_cents: int
    refunded_cents: int
    payment_intent: str


@dataclass(frozen=True)
class TraceTip:
    id: int
    order_id: int
    order_external_id: str
    status: str
    amount_cents: int
    authorized_cents: int
    covered_cents: int
    window_closes_at: datetime | None
    settled_at: datetime | None
    charges: tuple[TraceCharge, ...]


@dataclass(frozen=True)
class TraceEntry:
    id: int
    account_id: int
    account_name: str
    account_kind: str
    amount_cents: int


@dataclass(frozen=True)
class TraceTransaction:
    id: int
    idempotency_key: str
    kind: str
    memo: str
    created_at: datetime
    tip_id: int | None  # a tip's posting; None: linked to the batch
    entries: tuple[TraceEntry, ...]

    @property
    def moved_cents(self) -> int:
        """The size of the transaction: the sum of its positive side."""
        return sum(e.amount_cents for e in self.entries if e.amount_cents > 0)

    @property
    def net_cents(self) -> int:
        return sum(e.amount_cents for e in self.entries)


@dataclass(frozen=True)
class TraceAccountTotal:
    account_id: int
    account_name: str
    account_kind: str
    amount_cents: int


@dataclass(frozen=True)
class BatchMoneyTrace:
    batch_id: int
    snapshot: TraceSnapshot | None
    pay: TracePay | None
    tips: tuple[TraceTip, ...]
    transactions: tuple[TraceTransaction, ...]
    totals: tuple[TraceAccountTotal, ...]  # per account, over every transaction above

    @property
    def net_cents(self) -> int:
        """Every entry above added up: zero when every transaction balanced."""
        return sum(t.net_cents for t in self.transactions)

    @property
    def to_driver_cents(self) -> int:
        """What these transactions credited the driver (earnings and tips payable)."""
        kinds = (Account.Kind.DRIVER_PAYABLE, Account.Kind.TIPS_PAYABLE)
        return sum(t.amount_cents for t in self.totals if t.account_kind in kinds)


def _snapshot(batch: Batch) -> TraceSnapshot | None:
    row = (
        OfferPaySnapshot.objects.filter(offer__batch=batch, offer__status="accepted")
        .select_related("offer")
        .order_by("-pk")
        .first()
    )
    offered = offered_pay(row)
    if row is None or offered is None:
        return None
    return TraceSnapshot(id=row.pk, offer_id=row.offer_id, driver_id=row.offer.driver_id, **asdict(offered))


def _pay(batch: Batch) -> TracePay | None:
    row = BatchPay.objects.filter(batch=batch).first()
    if row is None:
        return None
    adjustments = tuple(
        TraceAdjustment(
            id=a.pk,
            amount_cents=a.amount_cents,
            reason=PayAdjustment.Reason(a.reason).label if a.reason in PayAdjustment.Reason.values else a.reason,
            note=a.note,
            created_at=a.created_at,
            transaction_id=a.ledger_transaction_id,
        )
        for a in PayAdjustment.objects.filter(batch_pay=row).order_by("created_at", "pk")
    )
    return TracePay(
        id=row.pk,
        driver_id=row.driver_id,
        snapshot_cents=row.snapshot_cents,
        base_cents=row.base_cents,
        stops_cents=row.stops_cents,
        miles_cents=row.miles_cents,
        heavy_cents=row.heavy_cents,
        incentive_cents=row.incentive_cents,
        wait_minutes=row.wait_minutes,
        wait_cents=row.wait_cents,
        routed_meters=row.routed_meters,
        stops_paid=row.stops_paid,
        final_cents=row.final_cents,
        transaction_id=row.ledger_transaction_id,
        created_at=row.created_at,
        adjustments=adjustments,
    )


def _tips(batch: Batch) -> tuple[list[TraceTip], dict[str, int]]:
    """The tips of the batch's orders (removed stops aside: those orders left the batch), and
    the ledger keys of their postings -> tip id."""
    order_ids = Stop.objects.filter(batch=batch).exclude(status=Stop.Status.REMOVED).values_list("order_id", flat=True)
    rows = list(Tip.objects.filter(order_id__in=list(order_ids)).select_related("order").order_by("order_id"))
    charges: dict[int, list[TraceCharge]] = {}
    keys: dict[str, int] = {}
    for c in TipCharge.objects.filter(tip__in=rows).order_by("created_at", "pk"):
        charges.setdefault(c.tip_id, []).append(
            TraceCharge(
                id=c.pk,
                kind=c.kind,
                status=c.status,
                amount_cents=c.amount_cents,
                captured_cents=c.captured_cents,
                refunded_cents=c.refunded_cents,
                payment_intent=c.stripe_payment_intent_id,
            )
        )
        keys[f"{TIP_TXN_KEY_BY_CHARGE}{c.pk}"] = c.tip_id
        if c.refunded_cents:  # one posting per refund seen, keyed by the running total
            refunds = LedgerTransaction.objects.filter(idempotency_key__startswith=f"{TIP_TXN_REFUND_PREFIX}{c.pk}:")
            keys.update(dict.fromkeys(refunds.values_list("idempotency_key", flat=True), c.tip_id))
    tips = []
    for tip in rows:
        for prefix in TIP_TXN_KEYS_BY_TIP:
            keys[f"{prefix}{tip.pk}"] = tip.pk
        tips.append(
            TraceTip(
                id=tip.pk,
                order_id=tip.order_id,
                order_external_id=tip.order.external_id,
                status=tip.status,
                amount_cents=tip.amount_cents,
                authorized_cents=tip.authorized_cents,
                covered_cents=tip.covered_cents,
                window_closes_at=tip.adjust_window_closes_at,
                settled_at=tip.settled_at,
                charges=tuple(charges.get(tip.pk, ())),
            )
        )
    return tips, keys


def batch_money_trace(batch: Batch) -> BatchMoneyTrace:
    """Every cent of `batch`: promised, paid, adjusted, tipped, and the ledger's entries for it."""
    tips, tip_keys = _tips(batch)
    txns = (
        LedgerTransaction.objects.filter(Q(batch=batch) | Q(idempotency_key__in=list(tip_keys)))
        .prefetch_related("entries__account")
        .order_by("created_at", "pk")
    )
    transactions = []
    totals: dict[int, TraceAccountTotal] = {}
    for txn in txns:
        entries = []
        for e in sorted(txn.entries.all(), key=lambda e: (-e.amount_cents, e.pk)):
            entries.append(
                TraceEntry(
                    id=e.pk,
                    account_id=e.account_id,
                    account_name=e.account.name,
                    account_kind=e.account.kind,
                    amount_cents=e.amount_cents,
                )
            )
            before = totals.get(e.account_id)
            totals[e.account_id] = TraceAccountTotal(
                account_id=e.account_id,
                account_name=e.account.name,
                account_kind=e.account.kind,
                amount_cents=(before.amount_cents if before else 0) + e.amount_cents,
            )
        transactions.append(
            TraceTransaction(
                id=txn.pk,
                idempotency_key=txn.idempotency_key,
                kind=txn.kind,
                memo=txn.memo,
                created_at=txn.created_at,
                tip_id=None if txn.batch_id == batch.pk else tip_keys.get(txn.idempotency_key),
                entries=tuple(entries),
            )
        )
    return BatchMoneyTrace(
        batch_id=batch.pk,
        snapshot=_snapshot(batch),
        pay=_pay(batch),
        tips=tuple(tips),
        transactions=tuple(transactions),
        totals=tuple(sorted(totals.values(), key=lambda t: (-t.amount_cents, t.account_name))),
    )
