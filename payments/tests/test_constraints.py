"""Database constraints of payments: money never negative, snapshots add up, the ledger is sane."""

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from dispatch.tests.factories import OfferFactory
from drivers.tests.factories import DriverFactory
from orders.tests.factories import OrderFactory
from payments.models import (
    PAY_POLICY_MONEY_FIELDS,
    Account,
    Entry,
    LedgerTransaction,
    OfferPaySnapshot,
    Payout,
    PayPolicy,
    Tip,
    TipAdjustment,
    WebhookEvent,
)
from payments.tests.factories import PayPolicyFactory

pytestmark = pytest.mark.django_db

SNAPSHOT_PARTS = ("base_cents", "stops_cents", "miles_cents", "heavy_cents", "incentive_cents", "tip_cents")


def _snapshot(**overrides) -> OfferPaySnapshot:
    parts = {
        "base_cents": 400,
        "stops_cents": 300,
        "miles_cents": 480,
        "heavy_cents": 0,
        "incentive_cents": 100,
        "tip_cents": 500,
    }
    parts.update({k: v for k, v in overrides.items() if k in SNAPSHOT_PARTS})
    total = overrides.get("total_cents", sum(parts.values()))
    return OfferPaySnapshot.objects.create(
        offer=overrides.get("offer") or OfferFactory(), total_cents=total, routed_meters=12000, **parts
    )


def _tip(**kwargs) -> Tip:
    return Tip.objects.create(
        order=kwargs.pop("order", None) or OrderFactory(), **{"amount_cents": 500, "authorized_cents": 500, **kwargs}
    )


# --- PayPolicy -----------------------------------------------------------------------


@pytest.mark.parametrize("field", PAY_POLICY_MONEY_FIELDS)
def test_pay_policy_money_non_negative(field):
    policy = PayPolicyFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        PayPolicy.objects.filter(pk=policy.pk).update(**{field: -1})
    policy.refresh_from_db()
    assert getattr(policy, field) >= 0


def test_pay_policy_incentive_cap_at_least_step():
    policy = PayPolicyFactory(incentive_step_cents=100, incentive_cap_cents=800)
    with pytest.raises(IntegrityError), transaction.atomic():
        PayPolicy.objects.filter(pk=policy.pk).update(incentive_cap_cents=99)
    PayPolicy.objects.filter(pk=policy.pk).update(incentive_cap_cents=100)


# --- OfferPaySnapshot ----------------------------------------------------------------


def test_snapshot_with_consistent_parts_is_accepted():
    snap = _snapshot()
    assert snap.total_cents == 1780


@pytest.mark.parametrize("field", SNAPSHOT_PARTS)
def test_snapshot_parts_non_negative(field):
    # a negative part with a total that still "adds up" is refused for the sign alone
    with pytest.raises(IntegrityError), transaction.atomic():
        _snapshot(**{field: -1})


@pytest.mark.parametrize("delta", [1, -1])
def test_snapshot_total_is_sum_of_parts(delta):
    with pytest.raises(IntegrityError), transaction.atomic():
        _snapshot(total_cents=1780 + delta)


def test_snapshot_total_cannot_be_edited_out_of_sum():
    snap = _snapshot()
    with pytest.raises(IntegrityError), transaction.atomic():
        OfferPaySnapshot.objects.filter(pk=snap.pk).update(total_cents=F("total_cents") + 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        OfferPaySnapshot.objects.filter(pk=snap.pk).update(base_cents=F("base_cents") - 1)


def test_one_snapshot_per_offer():
    snap = _snapshot()
    with pytest.raises(IntegrityError), transaction.atomic():
        _snapshot(offer=snap.offer)


# --- Tips and payouts ----------------------------------------------------------------


@pytest.mark.parametrize("field", ["amount_cents", "authorized_cents"])
def test_tip_amounts_non_negative(field):
    tip = _tip()
    with pytest.raises(IntegrityError), transaction.atomic():
        Tip.objects.filter(pk=tip.pk).update(**{field: -1})
    with pytest.raises(IntegrityError), transaction.atomic():
        _tip(**{field: -1})
    Tip.objects.filter(pk=tip.pk).update(**{field: 0})


@pytest.mark.parametrize("field", ["old_cents", "new_cents"])
def test_tip_adjustment_amounts_non_negative(field):
    tip = _tip()
    with pytest.raises(IntegrityError), transaction.atomic():
        TipAdjustment.objects.create(tip=tip, **{"old_cents": 500, "new_cents": 600, field: -1})


def test_payout_amount_positive():
    driver = DriverFactory()
    for amount in (0, -1):
        with pytest.raises(IntegrityError), transaction.atomic():
            Payout.objects.create(driver=driver, kind=Payout.Kind.WEEKLY, amount_cents=amount, idempotency_key="p")
    Payout.objects.create(driver=driver, kind=Payout.Kind.WEEKLY, amount_cents=1, idempotency_key="p")


def test_payout_fee_non_negative():
    driver = DriverFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Payout.objects.create(
            driver=driver, kind=Payout.Kind.INSTANT, amount_cents=1000, fee_cents=-1, idempotency_key="p"
        )


def test_payout_idempotency_key_unique():
    driver = DriverFactory()
    Payout.objects.create(driver=driver, kind=Payout.Kind.WEEKLY, amount_cents=1000, idempotency_key="weekly:1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Payout.objects.create(driver=driver, kind=Payout.Kind.WEEKLY, amount_cents=1000, idempotency_key="weekly:1")


def test_webhook_event_unique_per_source():
    WebhookEvent.objects.create(source="stripe", event_id="evt_1", event_type="x", payload={})
    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookEvent.objects.create(source="stripe", event_id="evt_1", event_type="x", payload={})
    WebhookEvent.objects.create(source="screening", event_id="evt_1", event_type="x", payload={})


# --- Ledger --------------------------------------------------------------------------


def test_ledger_entry_non_zero():
    txn = LedgerTransaction.objects.create(idempotency_key="k", kind="test")
    account = Account.objects.create(kind=Account.Kind.CASH, name="cash")
    with pytest.raises(IntegrityError), transaction.atomic():
        Entry.objects.create(transaction=txn, account=account, amount_cents=0)
    entry = Entry.objects.create(transaction=txn, account=account, amount_cents=5)
    with pytest.raises(IntegrityError), transaction.atomic():
        Entry.objects.filter(pk=entry.pk).update(amount_cents=0)


def test_ledger_idempotency_key_unique():
    LedgerTransaction.objects.create(idempotency_key="batch-pay:1", kind="batch_pay")
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerTransaction.objects.create(idempotency_key="batch-pay:1", kind="batch_pay")
    assert LedgerTransaction.objects.filter(idempotency_key="batch-pay:1").count() == 1


def test_driver_payable_account_needs_a_driver():
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.create(kind=Account.Kind.DRIVER_PAYABLE, driver=None, name="payable")


@pytest.mark.parametrize("kind", [k for k in Account.Kind.values if k not in ("driver_payable", "tips_payable")])
def test_system_account_has_no_driver(kind):
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.create(kind=kind, driver=DriverFactory(), name="x")


def test_one_payable_account_per_driver():
    driver = DriverFactory()
    Account.objects.create(kind=Account.Kind.DRIVER_PAYABLE, driver=driver, name="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.create(kind=Account.Kind.DRIVER_PAYABLE, driver=driver, name="b")
    Account.objects.create(kind=Account.Kind.DRIVER_PAYABLE, driver=DriverFactory(), name="c")


def test_one_system_account_per_kind():
    # NULL driver counts as equal here (nulls_distinct=False): one cash account, not two
    Account.objects.create(kind=Account.Kind.CASH, name="cash")
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.create(kind=Account.Kind.CASH, name="cash again")
    Account.objects.create(kind=Account.Kind.TIPS_HELD, name="tips")


def test_the_account_kind_check_names_every_kind():
    """The database check lists the kinds by hand (a migration cannot import the enum): adding a
    kind to one and not the other would refuse that kind's accounts, or let a typo in."""
    from payments.models import ACCOUNT_KINDS, DRIVER_ACCOUNT_KINDS

    assert sorted(ACCOUNT_KINDS) == sorted(Account.Kind.values)
    assert set(DRIVER_ACCOUNT_KINDS) == {Account.Kind.DRIVER_PAYABLE, Account.Kind.TIPS_PAYABLE}


def test_a_tips_payable_account_belongs_to_a_driver(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.create(kind=Account.Kind.TIPS_PAYABLE, name="tips of nobody")
    driver = DriverFactory()
    Account.objects.create(kind=Account.Kind.TIPS_PAYABLE, driver=driver, name="tips")
    Account.objects.create(kind=Account.Kind.DRIVER_PAYABLE, driver=driver, name="earnings")
