"""What a driver earned, read for the driver's earnings screens and API (driver_app.earnings,
driver_app.api.earnings): typed, read-only answers over the rows settlement, tips and payouts
write (BatchPay, PayAdjustment, Tip, Payout) and over the ledger.

Money a driver has is the ledger's and nothing else's: the balance is
payments.selectors.driver_balance_cents, and a weekly statement is the entries on the
driver's two accounts (DRIVER_PAYABLE, TIPS_PAYABLE) in that week. The rows above explain
those entries (what a batch paid and why); they never add to them.

Weeks run Monday to Sunday in the driver's home zone's timezone.
"""

import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db.models import CharField, Exists, OuterRef, Q, QuerySet, Sum, Value
from django.db.models.functions import Cast, Coalesce, Concat

from orders.models import Batch, Stop

from .models import DRIVER_ACCOUNT_KINDS, Account, BatchPay, Entry, OfferPaySnapshot, PayAdjustment, Payout, Tip
from .selectors import driver_balance_cents

# Batches whose pay is worked out when they end: delivered, or back at the store with returns
# (returned and failed stops are paid as driven). A cancelled batch pays its trip (trip pay).
PAID_BATCH_STATUSES = (Batch.Status.COMPLETED, Batch.Status.RETURNED)
# ... and the ones on the driver's earnings: those, and a batch on its way back with returns
# (its pay is worked out once the store checks the returns in).
EARNING_BATCH_STATUSES = (*PAID_BATCH_STATUSES, Batch.Status.RETURNING)

# Stops whose order's tip belongs to the batch's driver: the ones they drove to.
_DRIVEN_STOP_STATUSES = (Stop.Status.DELIVERED, Stop.Status.FAILED, Stop.Status.RETURNED)


def test_payments() -> bool:
    """True without a Stripe key (the sandbox backend): money moves in the ledger only, and
    every money screen says so."""
    return settings.SPARK_PAYMENT_BACKEND == "sandbox"


test_payments.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


# --- A batch's pay ------------------------------------------------------------------------


@dataclass(frozen=True)
class OfferedPay:
    """What the accepted offer showed (OfferPaySnapshot), frozen when it was made."""

    base_cents: int
    stops_cents: int
    miles_cents: int
    heavy_cents: int
    incentive_cents: int
    tip_cents: int
    total_cents: int
    routed_meters: int

    @property
    def guaranteed_cents(self) -> int:
        """The least the batch pays: the offer's total without its tips (BatchPay.snapshot_cents)."""
        return self.total_cents - self.tip_cents


@dataclass(frozen=True)
class SettledPay:
    """What the batch paid (BatchPay), worked out once when it settled."""

    base_cents: int
    stops_cents: int
    stops_paid: int
    miles_cents: int
    routed_meters: int
    heavy_cents: int
    heavy_paid: int
    incentive_cents: int
    wait_minutes: int
    wait_cents: int
    snapshot_cents: int
    final_cents: int
    settled_at: datetime

    @property
    def parts_cents(self) -> int:
        return (
            self.base_cents
            + self.stops_cents
            + self.miles_cents
            + self.heavy_cents
            + self.incentive_cents
            + self.wait_cents
        )

    @property
    def guarantee_top_up_cents(self) -> int:
        """What the offer's guarantee added on top of the pay worked out from what happened
        (zero when what happened paid more): the parts and this add up to the final pay."""
        return max(0, self.final_cents - self.parts_cents)


@dataclass(frozen=True)
class AdjustmentLine:
    id: int
    amount_cents: int
    reason: str
    note: str
    created_at: datetime


# The ledger postings that credit a tip to its driver's tips payable (payments.tips, when the
# tip's adjust window closes), keyed "<prefix><tip id>": the tip in full, or Spark's cover of a
# tip the driver was shown that ended at zero.
TIP_CREDIT_KEY_PREFIXES = ("tip-credited:", "tip-cover:")


def tip_credit_keys(tip_id: int) -> list[str]:
    return [f"{prefix}{tip_id}" for prefix in TIP_CREDIT_KEY_PREFIXES]


def _tip_credit_posted(*, driver, tip_ref) -> Q:
    """A credit of the tip `tip_ref` (an OuterRef to its pk) on the driver's tips payable."""
    pk = Cast(tip_ref, output_field=CharField())
    entries = Entry.objects.filter(account__driver=driver, account__kind=Account.Kind.TIPS_PAYABLE)
    posted = Q()
    for prefix in TIP_CREDIT_KEY_PREFIXES:
        posted |= Q(Exists(entries.filter(transaction__idempotency_key=Concat(Value(prefix), pk))))
    return posted


def _tips_credited(*, driver, tip_ids: Iterable[int]) -> dict[int, int]:
    """Tip id -> what the ledger credited the driver for it (absent: not credited yet)."""
    tip_of = {key: tip_id for tip_id in tip_ids for key in tip_credit_keys(tip_id)}
    credited: dict[int, int] = {}
    rows = Entry.objects.filter(
        account__driver=driver,
        account__kind=Account.Kind.TIPS_PAYABLE,
        transaction__idempotency_key__in=list(tip_of),
    ).values_list("transaction__idempotency_key", "amount_cents")
    for key, cents in rows:
        credited[tip_of[key]] = credited.get(tip_of[key], 0) + int(cents)
    return credited


class TipState:
    CREDITED = "credited"  # in the driver's balance (the ledger says so)
    WAITING = "waiting"  # credited when its adjust window closes
    CANCELED = "canceled"  # ended at zero and nothing was credited

    ALL = (CREDITED, WAITING, CANCELED)


@dataclass(frozen=True)
class TipLine:
    order_id: int
    status: str  # Tip.Status as payments.tips keeps it
    amount_cents: int  # the tip as it stands
    credited_cents: int  # what the ledger credited the driver for it: 0 until then
    window_closes_at: datetime | None

    @property
    def state(self) -> str:
        if self.credited_cents:
            return TipState.CREDITED
        if self.status == Tip.Status.CANCELED:
            return TipState.CANCELED
        return TipState.WAITING


@dataclass(frozen=True)
class BatchEarnings:
    batch_id: int
    store_name: str
    store_number: str
    status: str
    closed_at: datetime | None
    offered: OfferedPay | None
    paid: SettledPay | None  # None until the batch settled: "pay being worked out"
    adjustments: tuple[AdjustmentLine, ...] = ()
    tips: tuple[TipLine, ...] = ()

    @property
    def settled(self) -> bool:
        return self.paid is not None

    @property
    def adjustments_cents(self) -> int:
        return sum(a.amount_cents for a in self.adjustments)

    @property
    def pay_cents(self) -> int | None:
        """What the batch paid with its adjustments, tips aside; None before it settled."""
        return None if self.paid is None else self.paid.final_cents + self.adjustments_cents

    @property
    def tips_credited_cents(self) -> int:
        return sum(t.credited_cents for t in self.tips)

    @property
    def tips_pending_cents(self) -> int:
        return sum(t.amount_cents for t in self.tips if t.state == TipState.WAITING)


def driver_batches(*, driver) -> QuerySet[Batch]:
    """The driver's batches that pay (completed, returned, or bringing returns back), the
    latest to end first: for paging."""
    return (
        Batch.objects.filter(driver=driver, status__in=EARNING_BATCH_STATUSES)
        .select_related("store")
        .annotate(ended_at=Coalesce("closed_at", "picked_up_at", "status_changed_at"))
        .order_by("-ended_at", "-pk")
    )


def offered_pay(snapshot: OfferPaySnapshot | None) -> OfferedPay | None:
    """What an offer's pay snapshot showed, or None without one."""
    if snapshot is None:
        return None
    return OfferedPay(
        base_cents=snapshot.base_cents,
        stops_cents=snapshot.stops_cents,
        miles_cents=snapshot.miles_cents,
        heavy_cents=snapshot.heavy_cents,
        incentive_cents=snapshot.incentive_cents,
        tip_cents=snapshot.tip_cents,
        total_cents=snapshot.total_cents,
        routed_meters=snapshot.routed_meters,
    )


def _settled(pay: BatchPay) -> SettledPay:
    return SettledPay(
        base_cents=pay.base_cents,
        stops_cents=pay.stops_cents,
        stops_paid=pay.stops_paid,
        miles_cents=pay.miles_cents,
        routed_meters=pay.routed_meters,
        heavy_cents=pay.heavy_cents,
        heavy_paid=pay.heavy_paid,
        incentive_cents=pay.incentive_cents,
        wait_minutes=pay.wait_minutes,
        wait_cents=pay.wait_cents,
        snapshot_cents=pay.snapshot_cents,
        final_cents=pay.final_cents,
        settled_at=pay.created_at,
    )


def _driven_stops(*, driver, batch_ids: Iterable[int] | None = None) -> QuerySet[Stop]:
    stops = Stop.objects.filter(batch__driver=driver, status__in=_DRIVEN_STOP_STATUSES)
    if batch_ids is not None:
        stops = stops.filter(batch_id__in=list(batch_ids))
    return stops


def batch_earnings_for(*, driver, batches: Sequence[Batch]) -> list[BatchEarnings]:
    """Each of `batches` (the driver's, e.g. a page of driver_batches) with what it offered,
    what it paid, its adjustments and its orders' tips. A handful of queries for the page."""
    ids = [b.pk for b in batches if b.driver_id == driver.pk]
    pays = {p.batch_id: p for p in BatchPay.objects.filter(batch_id__in=ids, driver=driver).select_related("snapshot")}
    # Before settlement (or for a pay row without one) the accepted offer says what was promised.
    snapshots = {
        s.offer.batch_id: s
        for s in OfferPaySnapshot.objects.filter(
            offer__batch_id__in=ids, offer__driver=driver, offer__status="accepted"
        ).select_related("offer")
    }
    adjustments: dict[int, list[AdjustmentLine]] = {}
    adjustment_rows = (
        PayAdjustment.objects.filter(batch_pay__batch_id__in=ids, batch_pay__driver=driver)
        .select_related("batch_pay")
        .order_by("created_at", "pk")
    )
    for adj in adjustment_rows:
        adjustments.setdefault(adj.batch_pay.batch_id, []).append(
            AdjustmentLine(
                id=adj.pk,
                amount_cents=adj.amount_cents,
                reason=adj.reason,
                note=adj.note,
                created_at=adj.created_at,
            )
        )
    tips: dict[int, list[TipLine]] = {}
    stop_batch = dict(_driven_stops(driver=driver, batch_ids=ids).values_list("order_id", "batch_id"))
    tip_rows = list(Tip.objects.filter(order_id__in=list(stop_batch)).order_by("order_id"))
    credited = _tips_credited(driver=driver, tip_ids=[t.pk for t in tip_rows])
    for tip in tip_rows:
        tips.setdefault(stop_batch[tip.order_id], []).append(
            TipLine(
                order_id=tip.order_id,
                status=tip.status,
                amount_cents=tip.amount_cents,
                credited_cents=credited.get(tip.pk, 0),
                window_closes_at=tip.adjust_window_closes_at,
            )
        )
    answers = []
    for batch in batches:
        if batch.pk not in ids:
            continue
        pay = pays.get(batch.pk)
        snapshot = (pay.snapshot if pay is not None else None) or snapshots.get(batch.pk)
        answers.append(
            BatchEarnings(
                batch_id=batch.pk,
                store_name=batch.store.name,
                store_number=batch.store.number,
                status=batch.status,
                closed_at=batch.closed_at,
                offered=offered_pay(snapshot),
                paid=_settled(pay) if pay is not None else None,
                adjustments=tuple(adjustments.get(batch.pk, ())),
                tips=tuple(tips.get(batch.pk, ())),
            )
        )
    return answers


def batch_earnings(*, driver, batch_id: int) -> BatchEarnings | None:
    """One of the driver's batches that pay; None for another driver's, or one that does not pay."""
    batch = driver_batches(driver=driver).filter(pk=batch_id).first()
    if batch is None:
        return None
    return batch_earnings_for(driver=driver, batches=[batch])[0]


# --- Balance and what is pending ----------------------------------------------------------


@dataclass(frozen=True)
class PendingBatch:
    """A batch that ended (or is bringing returns back) whose pay is not worked out yet."""

    batch_id: int
    store_name: str
    status: str  # completed, returned, or returning (worked out once the returns are checked in)
    closed_at: datetime | None
    guaranteed_cents: int | None  # the accepted offer's pay without tips, when there was an offer


@dataclass(frozen=True)
class PendingTip:
    """A customer's tip not credited yet: credited when its adjust window closes."""

    order_id: int
    batch_id: int
    amount_cents: int
    window_closes_at: datetime | None


@dataclass(frozen=True)
class EarningsSummary:
    balance_cents: int
    earnings_cents: int  # of the balance: on the earnings account
    tips_cents: int  # of the balance: on the tips account
    pending_batches: tuple[PendingBatch, ...] = ()
    pending_tips: tuple[PendingTip, ...] = ()

    @property
    def pending_tips_cents(self) -> int:
        return sum(t.amount_cents for t in self.pending_tips)

    @property
    def pending_guaranteed_cents(self) -> int:
        return sum(b.guaranteed_cents or 0 for b in self.pending_batches)


PENDING_SHOWN = 50


def earnings_summary(*, driver) -> EarningsSummary:
    """The balance (the ledger), and what is on its way into it: ended batches not settled yet
    and tips waiting for their adjust window to close."""
    by_kind = dict(
        Entry.objects.filter(account__driver=driver, account__kind__in=DRIVER_ACCOUNT_KINDS)
        .values_list("account__kind")
        .annotate(s=Sum("amount_cents"))
        .values_list("account__kind", "s")
    )
    unsettled = list(
        driver_batches(driver=driver).filter(settled_pay__isnull=True).order_by("ended_at", "pk")[:PENDING_SHOWN]
    )
    guaranteed = {
        s.offer.batch_id: s.total_cents - s.tip_cents
        for s in OfferPaySnapshot.objects.filter(
            offer__batch__in=[b.pk for b in unsettled], offer__driver=driver, offer__status="accepted"
        ).select_related("offer")
    }
    # Tips of the orders the driver drove to that are neither credited nor cancelled.
    stop_batch = dict(
        _driven_stops(driver=driver)
        .filter(batch__status__in=EARNING_BATCH_STATUSES)
        .exclude(order__tip__isnull=True)
        .exclude(order__tip__status=Tip.Status.CANCELED)
        .values_list("order_id", "batch_id")
    )
    tips = (
        Tip.objects.filter(order_id__in=list(stop_batch))
        .exclude(status=Tip.Status.CANCELED)
        .exclude(_tip_credit_posted(driver=driver, tip_ref=OuterRef("pk")))
        .order_by("adjust_window_closes_at", "order_id")
    )
    return EarningsSummary(
        balance_cents=driver_balance_cents(driver=driver),
        earnings_cents=int(by_kind.get(Account.Kind.DRIVER_PAYABLE) or 0),
        tips_cents=int(by_kind.get(Account.Kind.TIPS_PAYABLE) or 0),
        pending_batches=tuple(
            PendingBatch(
                batch_id=b.pk,
                store_name=b.store.name,
                status=b.status,
                closed_at=b.closed_at,
                guaranteed_cents=guaranteed.get(b.pk),
            )
            for b in unsettled
        ),
        pending_tips=tuple(
            PendingTip(
                order_id=t.order_id,
                batch_id=stop_batch[t.order_id],
                amount_cents=t.amount_cents,
                window_closes_at=t.adjust_window_closes_at,
            )
            for t in tips
        ),
    )


# --- Weekly statements --------------------------------------------------------------------


class StatementCategory:
    """What a statement line is, from the ledger's flows (payments.models, above Account):
    told apart by the accounts on the other side, so it holds whatever the posting's kind is."""

    BATCH_PAY = "batch_pay"
    TRIP_PAY = "trip_pay"
    ADJUSTMENT = "adjustment"
    TIP = "tip"
    PAYOUT = "payout"  # negative: paid out; positive: a failed payout's money back
    FEE = "fee"
    OTHER = "other"

    ALL = (BATCH_PAY, TRIP_PAY, ADJUSTMENT, TIP, PAYOUT, FEE, OTHER)


class BadWeek(ValueError):
    """A statement week that is not a date, or not a Monday. The message says which."""


# Far enough either way for any driver; keeps the week's bounds well inside what dates can hold.
FIRST_STATEMENT_YEAR, LAST_STATEMENT_YEAR = 2000, 2999


def week_start(value: str) -> date:
    """Parse a statement week (YYYY-MM-DD, a Monday). BadWeek with a clear message otherwise."""
    try:
        day = date.fromisoformat(value)
    except (TypeError, ValueError):
        raise BadWeek(f"“{value}” is not a date: give the Monday the week starts on, as YYYY-MM-DD.") from None
    if len(value) != 10:
        raise BadWeek(f"“{value}” is not a date: give the Monday the week starts on, as YYYY-MM-DD.")
    if not FIRST_STATEMENT_YEAR <= day.year <= LAST_STATEMENT_YEAR:
        raise BadWeek(
            f"{day.isoformat()} is out of range: statements cover weeks from {FIRST_STATEMENT_YEAR} "
            f"to {LAST_STATEMENT_YEAR}."
        )
    if day.weekday() != 0:
        monday = day - timedelta(days=day.weekday())
        raise BadWeek(
            f"{day.isoformat()} is a {day.strftime('%A')}: statement weeks start on a Monday "
            f"(that week starts on {monday.isoformat()})."
        )
    return day


def driver_timezone(driver) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(driver.home_zone.timezone)


def current_week_start(*, driver, now: datetime) -> date:
    today = now.astimezone(driver_timezone(driver)).date()
    return today - timedelta(days=today.weekday())


@dataclass(frozen=True)
class StatementLine:
    at: datetime
    category: str  # StatementCategory
    account: str  # Account.Kind: driver_payable (earnings) or tips_payable (tips)
    amount_cents: int
    batch_id: int | None
    store_name: str
    transaction_id: int


@dataclass(frozen=True)
class WeeklyStatement:
    week_start: date  # a Monday
    week_end: date  # the Sunday
    timezone: str
    opening_balance_cents: int
    lines: tuple[StatementLine, ...]
    totals: dict[str, int] = field(default_factory=dict)  # per StatementCategory, every category present

    @property
    def net_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)

    @property
    def closing_balance_cents(self) -> int:
        return self.opening_balance_cents + self.net_cents

    @property
    def earned_cents(self) -> int:
        """Pay, adjustments and tips of the week: what was earned, before payouts and fees."""
        c = StatementCategory
        return sum(self.totals[k] for k in (c.BATCH_PAY, c.TRIP_PAY, c.ADJUSTMENT, c.TIP, c.OTHER))


def _category(entry) -> str:
    c = StatementCategory
    key = entry.transaction.idempotency_key
    # payments.payouts: "payout-fee:" and "payout-fee-refund:" (a fee, or one given back);
    # "payout:" and "payout-reversed:" (paid out, or a failed payout's money back).
    if key.startswith("payout-fee"):
        return c.FEE
    if key.startswith("payout"):
        return c.PAYOUT
    if entry.has_fee:
        return c.PAYOUT if entry.has_payout else c.FEE
    if entry.has_payout:
        return c.PAYOUT
    if entry.account.kind == Account.Kind.TIPS_PAYABLE:
        return c.TIP
    if entry.is_adjustment or key.startswith("pay-adjustment:"):
        return c.ADJUSTMENT
    if entry.is_batch_pay or key.startswith("batch-pay:"):
        return c.BATCH_PAY
    if key.startswith("trip-pay:"):
        return c.TRIP_PAY
    return c.OTHER


def weekly_statement(*, driver, week: date) -> WeeklyStatement:
    """Every entry on the driver's accounts from Monday 00:00 to the next Monday 00:00 in their
    zone's time, with the balance before and after. The lines add up to the difference."""
    if week.weekday() != 0:
        raise BadWeek(f"{week.isoformat()} is not a Monday.")
    tz = driver_timezone(driver)
    start = datetime.combine(week, time.min, tzinfo=tz)
    end = datetime.combine(week + timedelta(days=7), time.min, tzinfo=tz)
    mine = Entry.objects.filter(account__driver=driver, account__kind__in=DRIVER_ACCOUNT_KINDS)
    opening = mine.filter(transaction__created_at__lt=start).aggregate(s=Sum("amount_cents"))["s"] or 0

    def on_the_other_side(kind: str):
        return Exists(Entry.objects.filter(transaction=OuterRef("transaction"), account__kind=kind))

    entries = (
        mine.filter(transaction__created_at__gte=start, transaction__created_at__lt=end)
        .select_related("transaction__batch__store", "account")
        .annotate(
            has_fee=on_the_other_side(Account.Kind.FEES),
            has_payout=on_the_other_side(Account.Kind.PAYOUT_CLEARING),
            is_adjustment=Exists(PayAdjustment.objects.filter(ledger_transaction=OuterRef("transaction"))),
            is_batch_pay=Exists(BatchPay.objects.filter(ledger_transaction=OuterRef("transaction"))),
        )
        .order_by("transaction__created_at", "transaction_id", "pk")
    )
    lines = []
    for entry in entries:
        txn = entry.transaction
        lines.append(
            StatementLine(
                at=txn.created_at,
                category=_category(entry),
                account=entry.account.kind,
                amount_cents=entry.amount_cents,
                batch_id=txn.batch_id,
                store_name=txn.batch.store.name if txn.batch is not None else "",
                transaction_id=txn.pk,
            )
        )
    totals = {c: 0 for c in StatementCategory.ALL}
    for line in lines:
        totals[line.category] += line.amount_cents
    return WeeklyStatement(
        week_start=week,
        week_end=week + timedelta(days=6),
        timezone=driver.home_zone.timezone,
        opening_balance_cents=int(opening),
        lines=tuple(lines),
        totals=totals,
    )


def statement_weeks(*, driver, now: datetime, count: int = 8) -> list[date]:
    """The Mondays of the latest `count` weeks, this week first (for links to statements)."""
    this_week = current_week_start(driver=driver, now=now)
    return [this_week - timedelta(weeks=i) for i in range(count)]


# --- Payouts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutLine:
    id: int
    kind: str  # Payout.Kind: weekly, instant
    status: str  # Payout.Status: pending, paid, failed
    amount_cents: int
    fee_cents: int
    created_at: datetime
    paid_at: datetime | None
    failure_reason: str


def driver_payouts(*, driver) -> QuerySet[Payout]:
    """The driver's payouts, newest first: for paging."""
    return Payout.objects.filter(driver=driver).order_by("-created_at", "-pk")


def payout_lines(payouts: Iterable[Payout]) -> list[PayoutLine]:
    return [
        PayoutLine(
            id=p.pk,
            kind=p.kind,
            status=p.status,
            amount_cents=p.amount_cents,
            fee_cents=p.fee_cents,
            created_at=p.created_at,
            paid_at=p.paid_at,
            failure_reason=p.failure_reason,
        )
        for p in payouts
    ]
