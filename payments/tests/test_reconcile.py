"""The daily reconciliation (payments.reconcile): quiet when the ledger, our payouts and Stripe
agree; a planted difference is found, logged and emailed to staff."""

import logging
from datetime import UTC, datetime

import pytest
import stripe
from django.core import mail

from outbox.services import messages_send_due
from payments import payouts, reconcile
from payments.models import Account, Entry, LedgerTransaction, Payout
from payments.tests.helpers import MONDAY_NOON_UTC, credit, onboarded_driver, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid(stripe_standin):
    driver = onboarded_driver(stripe_standin)
    credit(driver, earnings=1800, tips=200)
    payouts.weekly_payouts_run(now=MONDAY_NOON_UTC)
    return send(Payout.objects.get(driver=driver))


def staff_emails(ops_user) -> list[str]:
    messages_send_due()
    return [m.subject for m in mail.outbox if ops_user.email in m.to]


def test_all_agree_no_report(paid, ops_user):
    report = reconcile.reconcile()
    assert report.ok and report.differences == []
    assert report.checked["stripe_transfers"] == 1
    assert staff_emails(ops_user) == []


def test_a_pending_payout_is_what_payout_clearing_holds(stripe_standin, ops_user):
    driver = onboarded_driver(stripe_standin)
    credit(driver, earnings=900)
    payouts.weekly_payouts_run(now=MONDAY_NOON_UTC)  # its task has not run yet
    report = reconcile.reconcile()
    assert report.ok, report.differences
    assert report.checked["payout_clearing_cents"] == report.checked["pending_payouts_cents"] == 900


def test_a_transfer_stripe_reversed_behind_our_back_is_reported(paid, stripe_standin, ops_user, caplog):
    client = stripe.StripeClient(stripe_standin.api_key, base_addresses={"api": stripe_standin.url})
    client.v1.transfers.reversals.create(paid.external_id, params={"amount": 500})  # the webhook was lost
    with caplog.at_level(logging.ERROR, logger="payments.reconcile"):
        report = reconcile.reconcile()
    assert not report.ok
    assert report.differences == [
        f"Payout {paid.pk} is paid but 500 cents of its transfer {paid.external_id} were reversed at Stripe."
    ]
    assert "were reversed at Stripe" in caplog.text
    assert staff_emails(ops_user) == [f"Spark reconciliation: 1 difference(s) on {report.ran_at:%Y-%m-%d}"]
    assert "were reversed at Stripe" in mail.outbox[-1].body


def test_a_planted_ledger_difference_is_found(paid, ops_user):
    # someone wrote straight into the ledger: an entry with nothing on the other side
    txn = LedgerTransaction.objects.create(idempotency_key="planted", kind="manual")
    Entry.objects.create(
        transaction=txn, account=Account.objects.get(kind=Account.Kind.PAYOUT_CLEARING), amount_cents=7
    )
    report = reconcile.reconcile(now=datetime(2026, 12, 8, 7, 0, tzinfo=UTC))
    assert not report.ok
    assert "The ledger does not sum to zero: it is off by 7 cents." in report.differences
    assert "Ledger transaction planted does not balance (sums to 7 cents)." in report.differences
    assert any("PAYOUT_CLEARING" in d and "hold 7 cents" in d for d in report.differences)
    assert len(staff_emails(ops_user)) == 1


def test_a_paid_payout_without_its_transfer_at_stripe_is_found(paid, ops_user):
    Payout.objects.filter(pk=paid.pk).update(amount_cents=paid.amount_cents + 1)
    report = reconcile.reconcile()
    assert f"Payout {paid.pk} is for 2001 cents but its Stripe transfer {paid.external_id} is for 2000." in (
        report.differences
    )
