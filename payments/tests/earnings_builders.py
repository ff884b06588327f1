"""Builders for the earnings tests (payments/tests/test_earnings.py, driver_app/tests/test_earnings_*.py,
tests/browser/test_earnings_e2e.py): the rows settlement, tips and payouts write, made directly
with their ledger postings, as those services post them (payments.models, above Account)."""

from datetime import datetime, timedelta

from django.utils import timezone

from dispatch.tests.factories import OfferFactory
from orders.models import Batch, Stop
from orders.tests.factories import BatchFactory, OrderFactory, StopFactory
from payments.models import Account, BatchPay, LedgerTransaction, OfferPaySnapshot, PayAdjustment, Payout, Tip
from payments.services import account_for_driver, ledger_post, system_account
from stores.tests.factories import StoreFactory, UserFactory

OFFERED = {
    "base_cents": 400,
    "stops_cents": 300,
    "miles_cents": 450,
    "heavy_cents": 200,
    "incentive_cents": 100,
    "tip_cents": 800,
}
PAID = {
    "base_cents": 400,
    "stops_cents": 300,
    "stops_paid": 2,
    "miles_cents": 510,
    "routed_meters": 13680,
    "heavy_cents": 200,
    "heavy_paid": 1,
    "incentive_cents": 100,
    "wait_minutes": 6,
    "wait_cents": 120,
}


def _post(**kwargs) -> LedgerTransaction:
    return ledger_post(**kwargs).transaction


def tips_account(driver) -> Account:
    account, _ = Account.objects.get_or_create(
        kind=Account.Kind.TIPS_PAYABLE, driver=driver, defaults={"name": f"Tips payable to driver {driver.pk}"}
    )
    return account


def _at(txn: LedgerTransaction, when: datetime | None) -> LedgerTransaction:
    if when is not None:
        LedgerTransaction.objects.filter(pk=txn.pk).update(created_at=when)
        txn.refresh_from_db()
    return txn


def ended_batch(
    driver,
    *,
    store=None,
    tips: tuple[int, ...] = (500, 300),
    offered: dict | None = OFFERED,
    status: str = Batch.Status.COMPLETED,
    closed_at: datetime | None = None,
) -> Batch:
    """A batch the driver ended, one delivered order per tip, with the accepted offer's snapshot."""
    store = store or StoreFactory(zone=driver.home_zone)
    closed_at = closed_at or timezone.now() - timedelta(minutes=30)
    batch = BatchFactory(
        store=store, driver=driver, status=status, closed_at=closed_at, stops_count=len(tips), route_meters=13680
    )
    for tip in tips:
        StopFactory(
            batch=batch,
            order=OrderFactory(store=store, tip_cents=tip, status="delivered"),
            status=Stop.Status.DELIVERED,
        )
    if offered is not None:
        offer = OfferFactory(batch=batch, driver=driver, status="accepted")
        OfferPaySnapshot.objects.create(offer=offer, total_cents=sum(offered.values()), routed_meters=12000, **offered)
    return batch


def settle(batch: Batch, *, paid: dict | None = None, when: datetime | None = None) -> BatchPay:
    """What settlement writes: the BatchPay row and its posting "batch-pay:<batch>"."""
    paid = paid or PAID
    snapshot = OfferPaySnapshot.objects.filter(offer__batch=batch, offer__status="accepted").first()
    snapshot_cents = snapshot.total_cents - snapshot.tip_cents if snapshot else 0
    # as payments.settlement.final_pay: the greater of the snapshot and what happened, plus wait
    recomputed = sum(v for k, v in paid.items() if k.endswith("_cents") and k != "wait_cents")
    final = max(snapshot_cents, recomputed) + paid["wait_cents"]
    txn = _post(
        idempotency_key=f"batch-pay:{batch.pk}",
        kind="batch_pay",
        entries=[
            (account_for_driver(driver=batch.driver), final),
            (system_account(kind=Account.Kind.PLATFORM_EXPENSE), -final),
        ],
        batch=batch,
    )
    return BatchPay.objects.create(
        batch=batch,
        driver=batch.driver,
        snapshot=snapshot,
        snapshot_cents=snapshot_cents,
        final_cents=final,
        ledger_transaction=_at(txn, when),
        **paid,
    )


def adjust(pay: BatchPay, amount: int, *, reason: str = "wait", note: str = "", when: datetime | None = None):
    adjustment = PayAdjustment.objects.create(
        batch_pay=pay, amount_cents=amount, reason=reason, note=note, created_by=UserFactory(is_staff=True)
    )
    txn = _post(
        idempotency_key=f"pay-adjustment:{adjustment.pk}",
        kind="pay_adjustment",
        entries=[
            (account_for_driver(driver=pay.driver), amount),
            (system_account(kind=Account.Kind.PLATFORM_EXPENSE), -amount),
        ],
        batch=pay.batch,
    )
    adjustment.ledger_transaction = _at(txn, when)
    adjustment.save(update_fields=["ledger_transaction"])
    return adjustment


def tip_rows(batch: Batch, *, captured: int = 0, window_closes_at: datetime | None = None, when=None) -> list[Tip]:
    """A Tip per order of the batch: the first `captured` captured and credited to the driver
    (TIPS_PAYABLE), the others authorised with their window still open."""
    closes = window_closes_at or timezone.now() + timedelta(hours=20)
    tips = []
    for i, stop in enumerate(batch.stops.select_related("order").order_by("sequence")):
        amount = stop.order.tip_cents
        done = i < captured
        tip = Tip.objects.create(
            order=stop.order,
            status=Tip.Status.CAPTURED if done else Tip.Status.AUTHORIZED,
            amount_cents=amount,
            authorized_cents=amount,
            adjust_window_closes_at=closes,
            captured_at=timezone.now() if done else None,
        )
        if done:
            txn = _post(
                idempotency_key=f"tip-credited:{tip.pk}",
                kind="tip_credited",
                entries=[(tips_account(batch.driver), amount), (system_account(kind=Account.Kind.TIPS_HELD), -amount)],
                batch=batch,
            )
            _at(txn, when)
        tips.append(tip)
    return tips


def payout(
    driver, amount: int, *, fee: int = 0, status: str = "paid", kind: str = "weekly", reason: str = "", when=None
):
    """A payout row and its posting (earnings payable -> payout clearing; an instant one's fee -> fees)."""
    row = Payout.objects.create(
        driver=driver,
        kind=kind,
        status=status,
        amount_cents=amount,
        fee_cents=fee,
        idempotency_key=f"payout:{driver.pk}:{Payout.objects.count() + 1}:{amount}",
        failure_reason=reason,
        paid_at=timezone.now() if status == "paid" else None,
    )
    if when is not None:
        Payout.objects.filter(pk=row.pk).update(created_at=when)
        row.refresh_from_db()
    txn = _post(
        idempotency_key=f"payout:{row.pk}",
        kind="payout",
        entries=[
            (account_for_driver(driver=driver), -amount),
            (system_account(kind=Account.Kind.PAYOUT_CLEARING), amount),
        ],
    )
    _at(txn, when)
    if fee:
        fee_txn = _post(
            idempotency_key=f"payout-fee:{row.pk}",
            kind="payout_fee",
            entries=[(account_for_driver(driver=driver), -fee), (system_account(kind=Account.Kind.FEES), fee)],
        )
        _at(fee_txn, when)
    if status == "failed":  # the money comes back to the balance
        back = _post(
            idempotency_key=f"payout-reversed:{row.pk}",
            kind="payout_reversed",
            entries=[
                (account_for_driver(driver=driver), amount),
                (system_account(kind=Account.Kind.PAYOUT_CLEARING), -amount),
            ],
        )
        _at(back, when)
    return row
