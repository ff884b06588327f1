"""What a driver has earned, read from the ledger and BatchPay (the earnings screens and API,
another part of issue 10, read these): their balance, each settled batch's pay with its
adjustments, and the batches completed but not settled yet."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Exists, OuterRef, Prefetch, Sum

from orders.models import Batch

from .models import Account, BatchPay, Entry, PayAdjustment
from .selectors import driver_balance_cents
from .settlement import BATCH_PAY_KIND, PAY_ADJUSTMENT_KIND, SETTLED_BATCH_STATUSES


@dataclass(frozen=True)
class AdjustmentLine:
    amount_cents: int
    reason: str
    reason_label: str
    note: str
    created_at: datetime


@dataclass(frozen=True)
class BatchPayLine:
    batch_id: int
    store_name: str
    closed_at: datetime | None
    snapshot_cents: int
    final_cents: int
    wait_minutes: int
    wait_cents: int
    stops_paid: int
    adjustments: tuple[AdjustmentLine, ...]

    @property
    def total_cents(self) -> int:
        """What the batch paid, adjustments included (tips aside)."""
        return self.final_cents + sum(a.amount_cents for a in self.adjustments)


@dataclass(frozen=True)
class PendingBatch:
    batch_id: int
    store_name: str
    status: str
    closed_at: datetime | None


@dataclass(frozen=True)
class EarningsSummary:
    balance_cents: int  # what we owe the driver now (earnings + tips - payouts - fees)
    batch_pay_cents: int  # every batch's settled pay
    adjustments_cents: int  # every adjustment ops made
    pending_batches: int  # finished (completed, returning or returned), not settled yet


def driver_pay_history(*, driver, limit: int = 50) -> list[BatchPayLine]:
    """The driver's settled batches, newest first, each with its adjustments (oldest first)."""
    pays = (
        BatchPay.objects.filter(driver=driver)
        .select_related("batch__store")
        .prefetch_related(Prefetch("adjustments", queryset=PayAdjustment.objects.order_by("created_at", "pk")))
        .order_by("-created_at", "-pk")[:limit]
    )
    return [
        BatchPayLine(
            batch_id=p.batch_id,
            store_name=p.batch.store.name,
            closed_at=p.batch.closed_at,
            snapshot_cents=p.snapshot_cents,
            final_cents=p.final_cents,
            wait_minutes=p.wait_minutes,
            wait_cents=p.wait_cents,
            stops_paid=p.stops_paid,
            adjustments=tuple(
                AdjustmentLine(
                    amount_cents=a.amount_cents,
                    reason=a.reason,
                    reason_label=a.get_reason_display(),
                    note=a.note,
                    created_at=a.created_at,
                )
                for a in p.adjustments.all()
            ),
        )
        for p in pays
    ]


def driver_pending_batches(*, driver) -> list[PendingBatch]:
    """The driver's finished batches whose pay has not settled yet: completed or returned (it
    settles within minutes: the task runs on commit, the sweep every few minutes), or returning
    (it settles once the store checks the returns in)."""
    rows = (
        Batch.objects.filter(driver=driver, status__in=(*SETTLED_BATCH_STATUSES, Batch.Status.RETURNING))
        .filter(~Exists(BatchPay.objects.filter(batch=OuterRef("pk"))))
        .select_related("store")
        .order_by("closed_at", "pk")
    )
    return [PendingBatch(batch_id=b.pk, store_name=b.store.name, status=b.status, closed_at=b.closed_at) for b in rows]


def _posted_cents(*, driver, kind: str) -> int:
    total = Entry.objects.filter(
        account__kind=Account.Kind.DRIVER_PAYABLE, account__driver=driver, transaction__kind=kind
    ).aggregate(s=Sum("amount_cents"))["s"]
    return int(total or 0)


def driver_earnings_summary(*, driver) -> EarningsSummary:
    """The driver's balance and what it is made of, from the ledger."""
    return EarningsSummary(
        balance_cents=driver_balance_cents(driver=driver),
        batch_pay_cents=_posted_cents(driver=driver, kind=BATCH_PAY_KIND),
        adjustments_cents=_posted_cents(driver=driver, kind=PAY_ADJUSTMENT_KIND),
        pending_batches=len(driver_pending_batches(driver=driver)),
    )
