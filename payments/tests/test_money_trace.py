"""payments.money_trace.batch_money_trace: every cent of one batch, as ops read it in the admin:
the offer's snapshot, the pay settled with its parts and adjustments, its orders' tips and every
ledger posting behind them (found by the batch link and by the tips' keys), balanced."""

from datetime import timedelta

import pytest

from payments import tips
from payments.models import Account, LedgerTransaction, Tip
from payments.money_trace import batch_money_trace
from payments.tests.money_trace_builders import settled_batch
from payments.tests.tip_helpers import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivered():
    return settled_batch(note="<script>alert(1)</script> waited")


def test_the_trace_holds_the_snapshot_the_pay_with_its_adjustment_and_their_postings(delivered):
    run, offer, pay = delivered
    trace = batch_money_trace(run.batch)

    assert trace.snapshot is not None and trace.snapshot.offer_id == offer.pk
    assert trace.snapshot.guaranteed_cents == pay.snapshot_cents
    assert trace.pay is not None and trace.pay.final_cents == pay.final_cents
    assert [a.amount_cents for a in trace.pay.adjustments] == [250]
    assert trace.pay.total_cents == pay.final_cents + 250
    assert [t.idempotency_key for t in trace.transactions] == [
        f"batch-pay:{run.batch.pk}",
        f"pay-adjustment:{trace.pay.adjustments[0].id}",
    ]
    assert trace.to_driver_cents == pay.final_cents + 250
    assert trace.net_cents == 0
    # the tip is there, still authorised and waiting for its window: nothing posted for it yet
    assert [(t.order_id, t.status, t.amount_cents) for t in trace.tips] == [(run.order.pk, "authorized", 650)]


def test_a_settled_tip_brings_its_capture_and_credit_with_their_entries(delivered):
    run, _, pay = delivered
    tips.tips_settle_due()  # stamps the adjust window
    run.tip.refresh_from_db()
    assert tips.tips_settle_due(now=run.tip.adjust_window_closes_at + timedelta(seconds=1))["settled"] == 1

    trace = batch_money_trace(run.batch)
    tip = Tip.objects.get(pk=run.tip.pk)
    charge = tip.charges.get()
    tip_txns = {t.idempotency_key: t for t in trace.transactions if t.tip_id == tip.pk}
    assert set(tip_txns) == {f"tip-captured:{charge.pk}", f"tip-credited:{tip.pk}"}
    credited = tip_txns[f"tip-credited:{tip.pk}"]
    assert {(e.account_kind, e.amount_cents) for e in credited.entries} == {
        (Account.Kind.TIPS_PAYABLE, 650),
        (Account.Kind.TIPS_HELD, -650),
    }
    assert trace.tips[0].status == "captured" and trace.tips[0].charges[0].captured_cents == 650
    # to the driver: the pay, the adjustment and the tip; held and clearing net out per account
    assert trace.to_driver_cents == pay.final_cents + 250 + 650
    by_kind = {t.account_kind: t.amount_cents for t in trace.totals}
    assert by_kind[Account.Kind.TIPS_HELD] == 0 and by_kind[Account.Kind.STRIPE_CLEARING] == -650
    assert trace.net_cents == 0


def test_another_batchs_postings_and_tips_stay_out(delivered):
    run, _, _ = delivered
    other = Run(run.zone, amount=900).claim()
    trace = batch_money_trace(other.batch)
    assert trace.snapshot is None and trace.pay is None and trace.transactions == ()
    assert [t.amount_cents for t in trace.tips] == [900]
    assert LedgerTransaction.objects.filter(batch=run.batch).count() == 2
