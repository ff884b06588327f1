"""Payouts (payments.payouts): weekly runs in each zone's time, instant cash-out with its fee,
daily limit and minimum, and what happens when Stripe pays, fails, times out or takes the money
back. Stripe is the real SDK over HTTP against our stand-in (`stripe_standin`); the sandbox
backend (the default of the test settings) moves money in the ledger only."""

from datetime import UTC, datetime

import pytest
import stripe
from django.core import mail
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.tests.factories import DriverFactory
from outbox.models import Message
from outbox.services import messages_send_due
from payments import payout_tasks, payouts
from payments.contractor import backends
from payments.contractor.payout_setup import payout_account_refresh
from payments.models import Account, Payout, PayoutRun
from payments.payouts import PayoutRefused, cashout_quote, cashout_request
from payments.selectors import driver_balance_cents, ledger_total_cents
from payments.tests.factories import PayPolicyFactory
from payments.tests.helpers import MONDAY_NOON_UTC, credit, onboarded_driver, post_stripe_event, send
from stores.tests.factories import ZoneFactory

pytestmark = pytest.mark.django_db


def driver_emails(driver) -> list[str]:
    messages_send_due()
    return [m.subject for m in mail.outbox if driver.user.email in m.to]


# --- weekly ------------------------------------------------------------------------------------


def test_weekly_payout_sends_the_whole_balance_to_the_drivers_account_once(stripe_standin):
    driver = onboarded_driver(stripe_standin)
    credit(driver, earnings=1234, tips=500)
    summary = payouts.weekly_payouts_run(now=MONDAY_NOON_UTC)
    assert summary == {"zones": 1, "payouts": 1, "total_cents": 1734}
    payout = Payout.objects.get(driver=driver)
    assert driver_balance_cents(driver=driver) == 0  # taken out as soon as the payout exists
    assert send(payout).status == Payout.Status.PAID
    [transfer] = stripe_standin.objects("transfer")
    assert (transfer["amount"], transfer["destination"]) == (1734, driver.contractor_id)
    assert payout.external_id == transfer["id"]
    assert stripe_standin.balance(driver.contractor_id) == 1734
    # a second run of the same week, and the task run again, pay nothing more
    assert payouts.weekly_payouts_run(now=MONDAY_NOON_UTC)["payouts"] == 0
    send(payout)
    assert len(stripe_standin.objects("transfer")) == 1
    assert ledger_total_cents() == 0


def test_weekly_run_waits_for_each_zones_local_time(settings):
    central = DriverFactory()
    pacific = DriverFactory(home_zone=ZoneFactory(slug="la", name="Los Angeles", timezone="America/Los_Angeles"))
    credit(central, earnings=1000)
    credit(pacific, earnings=2000)
    # Monday 05:00 in Nashville: nobody is paid yet
    assert payouts.weekly_payouts_run(now=datetime(2026, 12, 7, 11, 0, tzinfo=UTC))["payouts"] == 0
    # 06:30 in Nashville, 04:30 in Los Angeles: Nashville only
    payouts.weekly_payouts_run(now=MONDAY_NOON_UTC)
    assert list(Payout.objects.values_list("driver", "amount_cents")) == [(central.pk, 1000)]
    # 06:05 in Los Angeles: now them too, and Nashville's run is over for the week
    credit(central, earnings=300, key="later")
    payouts.weekly_payouts_run(now=datetime(2026, 12, 7, 14, 5, tzinfo=UTC))
    assert sorted(Payout.objects.values_list("driver", "amount_cents")) == sorted(
        [(central.pk, 1000), (pacific.pk, 2000)]
    )
    assert PayoutRun.objects.filter(finished_at__isnull=False).count() == 2


def test_drivers_without_payouts_enabled_keep_their_balance(stripe_standin):
    driver = DriverFactory()
    driver.contractor_id = backends.get_backend().enrol(driver)  # enrolled, never finished onboarding
    driver.save(update_fields=["contractor_id"])
    payout_account_refresh(driver=driver)
    credit(driver, earnings=900)
    assert payouts.weekly_payouts_run(now=MONDAY_NOON_UTC)["payouts"] == 0
    assert driver_balance_cents(driver=driver) == 900


def test_a_payout_stripe_keeps_failing_fails_and_the_money_is_back(stripe_standin, monkeypatch):
    monkeypatch.setattr(backends.StripeBackend, "max_network_retries", 0)
    driver = onboarded_driver(stripe_standin)
    credit(driver, earnings=2500)
    payouts.weekly_payouts_run(now=MONDAY_NOON_UTC)
    stripe_standin.fault("POST", "/v1/transfers", "error", times=100)
    payout = send(Payout.objects.get(driver=driver))
    # every retry got a 500; Stripe has no transfer, so the payout failed and the money is back
    assert payout.status == Payout.Status.FAILED
    assert len(stripe_standin.calls("POST", "/v1/transfers")) == 1 + payout_tasks.pay_payout.max_retries
    assert stripe_standin.objects("transfer") == []
    assert driver_balance_cents(driver=driver) == 2500
    assert driver_emails(driver) == ["Spark: your payout did not go through"]
    assert ledger_total_cents() == 0


def test_a_failed_payout_is_told_in_the_drivers_language(stripe_standin, monkeypatch):
    monkeypatch.setattr(backends.StripeBackend, "max_network_retries", 0)
    driver = onboarded_driver(stripe_standin)
    type(driver.user).objects.filter(pk=driver.user.pk).update(language="es")
    credit(driver, earnings=2500)
    payouts.weekly_payouts_run(now=MONDAY_NOON_UTC)
    stripe_standin.fault("POST", "/v1/transfers", "error", times=100)
    send(Payout.objects.get(driver=driver))
    assert driver_emails(driver) == ["Spark: tu pago no se completó"]
    [email] = [m for m in mail.outbox if driver.user.email in m.to]
    assert "Tu pago semanal de $25.00 no se completó." in email.body


def test_a_payout_stripe_refuses_fails_at_once(stripe_standin):
    driver = onboarded_driver(stripe_standin)
    credit(driver, earnings=2500)
    # The platform's Stripe balance cannot cover it: Stripe refuses (no retry helps).
    stripe_standin.api.state.balances["platform"] = 100
    payouts.weekly_payouts_run(now=MONDAY_NOON_UTC)
    payout = send(Payout.objects.get(driver=driver))
    assert payout.status == Payout.Status.FAILED
    assert "insufficient" in payout.failure_reason
    assert len(stripe_standin.calls("POST", "/v1/transfers")) == 1
    assert driver_balance_cents(driver=driver) == 2500


def test_a_time_out_then_success_makes_one_transfer(stripe_standin, monkeypatch):
    # Stripe makes the transfer but answers after our client gave up; the retry carries the
    # same idempotency key ("payout-<id>"), so Stripe replays its answer instead of paying twice.
    monkeypatch.setattr(backends.StripeBackend, "timeout_seconds", 0.5)
    monkeypatch.setattr(backends.StripeBackend, "max_network_retries", 1)
    driver = onboarded_driver(stripe_standin)
    credit(driver, earnings=4200)
    payouts.weekly_payouts_run(now=MONDAY_NOON_UTC)
    payout = Payout.objects.get(driver=driver)
    stripe_standin.fault("POST", "/v1/transfers", "delay", times=1, seconds=2)
    assert send(payout).status == Payout.Status.PAID
    [transfer] = stripe_standin.objects("transfer")
    posts = stripe_standin.calls("POST", "/v1/transfers")
    assert [c.idempotency_key for c in posts] == [f"payout-{payout.pk}"] * 2
    assert [c.replayed for c in posts] == [False, True]
    assert payout.external_id == transfer["id"] and stripe_standin.balance(driver.contractor_id) == 4200


def test_a_retry_after_stripe_forgot_the_key_finds_the_transfer(stripe_standin, monkeypatch):
    # The task ran, Stripe made the transfer, the worker died before recording it, and the
    # sweeper runs it a day later (the key is gone at Stripe): the transfer group finds it.
    driver = onboarded_driver(stripe_standin)
    credit(driver, earnings=700)
    payouts.weekly_payouts_run(now=MONDAY_NOON_UTC)
    payout = Payout.objects.get(driver=driver)
    backends.get_backend().transfer(payout)
    stripe_standin.api.state.idempotency.clear()
    assert send(payout).status == Payout.Status.PAID
    assert len(stripe_standin.objects("transfer")) == 1


def test_a_reversed_transfer_puts_the_money_back(stripe_standin, client, settings):
    driver = onboarded_driver(stripe_standin)
    credit(driver, earnings=1500, tips=300)
    payouts.weekly_payouts_run(now=MONDAY_NOON_UTC)
    payout = send(Payout.objects.get(driver=driver))
    # Stripe takes the transfer back (ops at Stripe, a dispute) and tells us
    stripe_client = stripe.StripeClient(stripe_standin.api_key, base_addresses={"api": stripe_standin.url})
    stripe_client.v1.transfers.reversals.create(payout.external_id)
    reversed_event = stripe_standin.objects("event")[-1]
    assert reversed_event["type"] == "transfer.reversed"
    assert post_stripe_event(client, settings, reversed_event).json()["status"] == "processed"
    payout.refresh_from_db()
    assert payout.status == Payout.Status.FAILED
    assert driver_balance_cents(driver=driver) == 1800
    assert driver_emails(driver) == ["Spark: your payout did not go through"]
    assert ledger_total_cents() == 0


# --- instant cash-out -----------------------------------------------------------------------


@pytest.fixture
def policy():
    return PayPolicyFactory(
        zone=ZoneFactory(), cashout_fee_cents=50, cashout_min_cents=500, cashout_daily_limit_cents=2000
    )


def test_cashout_below_the_minimum_is_refused(policy):
    driver = DriverFactory(home_zone=policy.zone)
    credit(driver, earnings=520)
    quote = cashout_quote(driver)
    assert not quote.allowed and "at least $5.00" in quote.reason
    with pytest.raises(PayoutRefused, match=r"at least \$5\.00 after the \$0\.50 fee"):
        cashout_request(driver, "k1")
    assert Payout.objects.count() == 0 and driver_balance_cents(driver=driver) == 520


def test_cashout_with_nothing_to_pay_is_refused(policy):
    driver = DriverFactory(home_zone=policy.zone)
    with pytest.raises(PayoutRefused, match="nothing to cash out"):
        cashout_request(driver, "k1")


def test_cashout_takes_the_fee_and_stops_at_the_daily_limit(policy):
    driver = DriverFactory(home_zone=policy.zone)
    credit(driver, earnings=3000, tips=500)
    quote = cashout_quote(driver)
    assert (quote.available_cents, quote.fee_cents, quote.payout_cents, quote.remaining_today_cents) == (
        3500,
        50,
        2000,
        2000,
    )
    assert quote.allowed
    payout = cashout_request(driver, "k1")
    assert (payout.kind, payout.amount_cents, payout.fee_cents) == (Payout.Kind.INSTANT, 2000, 50)
    assert driver_balance_cents(driver=driver) == 1450
    # the same confirmation sent twice is one cash-out
    assert cashout_request(driver, "k1") == payout
    # the day's limit is used up
    with pytest.raises(PayoutRefused, match=r"today's cash-out limit of \$20\.00"):
        cashout_request(driver, "k2")
    assert send(payout).status == Payout.Status.PAID  # sandbox: paid in the ledger only
    fees = Account.objects.get(kind=Account.Kind.FEES)
    assert sum(e.amount_cents for e in fees.entries.all()) == 50
    assert ledger_total_cents() == 0


def test_a_failed_cashout_gives_back_the_fee_and_frees_the_daily_limit(policy):
    driver = DriverFactory(home_zone=policy.zone)
    credit(driver, earnings=1000)
    payout = cashout_request(driver, "k1")
    payouts.payout_fail(payout_id=payout.pk, reason="test")
    assert driver_balance_cents(driver=driver) == 1000
    assert cashout_quote(driver).remaining_today_cents == 2000


def test_cashout_before_payouts_are_set_up_is_refused(stripe_standin, policy):
    driver = DriverFactory(home_zone=policy.zone)
    credit(driver, earnings=5000)
    with pytest.raises(PayoutRefused, match="Set up payouts first"):
        cashout_request(driver, "k1")


def test_cashout_with_stripe_is_a_transfer_and_an_instant_payout(stripe_standin, policy):
    driver = onboarded_driver(stripe_standin, home_zone=policy.zone)
    credit(driver, earnings=1200)
    payout = send(cashout_request(driver, "k1"))
    assert payout.status == Payout.Status.PAID
    [transfer] = stripe_standin.objects("transfer")
    [bank_payout] = stripe_standin.objects("payout")
    assert transfer["amount"] == bank_payout["amount"] == 1150
    assert bank_payout["method"] == "instant"
    assert payout.stripe_payout_id == bank_payout["id"]


# --- the balance, whatever happens ----------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("earn"), st.integers(1, 5000)),
            st.tuples(st.just("tip"), st.integers(1, 2000)),
            st.tuples(st.just("cashout"), st.integers(0, 0)),
            st.tuples(st.just("weekly"), st.integers(0, 3)),
            st.tuples(st.just("fail_last"), st.integers(0, 0)),
            st.tuples(st.just("pay_last"), st.integers(0, 0)),
        ),
        max_size=12,
    )
)
def test_balance_is_earnings_plus_tips_less_payouts_and_fees(policy, steps):
    driver = DriverFactory(home_zone=policy.zone)
    earned = tipped = 0
    for i, (step, value) in enumerate(steps):
        if step == "earn":
            credit(driver, earnings=value, key=f"{driver.pk}:{i}")
            earned += value
        elif step == "tip":
            credit(driver, tips=value, key=f"{driver.pk}:{i}")
            tipped += value
        elif step == "cashout":
            try:
                cashout_request(driver, f"k{i}")
            except PayoutRefused:
                pass
        elif step == "weekly":
            payouts.weekly_payout_create(driver=driver, week=datetime(2026, 12, 7 + 7 * value).date())
        last = Payout.objects.filter(driver=driver).order_by("-pk").first()
        if step == "fail_last" and last is not None:
            payouts.payout_fail(payout_id=last.pk, reason="bank")
        if step == "pay_last" and last is not None:
            payouts.payout_send(payout_id=last.pk)
    live = Payout.objects.filter(driver=driver).exclude(status=Payout.Status.FAILED)
    paid_out = sum(p.amount_cents for p in live)
    fees = sum(p.fee_cents for p in live)
    assert driver_balance_cents(driver=driver) == earned + tipped - paid_out - fees
    assert ledger_total_cents() == 0
    failed = Payout.objects.filter(driver=driver, status=Payout.Status.FAILED)
    assert Message.objects.filter(key__in=[f"payout-failed:{p.pk}" for p in failed]).count() == failed.count()


# --- the schedule --------------------------------------------------------------------------


def test_beat_runs_weekly_payouts_hourly_the_sweeper_and_the_reconciliation():
    from spark.celery import app

    schedule = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    for name in (
        "payments.payout_tasks.run_weekly_payouts",
        "payments.payout_tasks.sweep_pending_payouts",
        "payments.payout_tasks.reconcile_daily",
    ):
        assert name in app.tasks, name
    # hourly: every zone's local run time is met within the hour
    assert schedule["payments.payout_tasks.run_weekly_payouts"].total_seconds() <= 3600
    assert schedule["payments.payout_tasks.reconcile_daily"].total_seconds() <= 24 * 3600
    task = app.tasks["payments.payout_tasks.pay_payout"]
    assert task.acks_late and task.autoretry_for == payouts.TRANSIENT_ERRORS and task.retry_backoff


def test_a_lost_task_is_queued_again_by_the_sweeper(django_capture_on_commit_callbacks):
    driver = DriverFactory()
    credit(driver, earnings=800)
    payout = payouts.weekly_payout_create(driver=driver, week=datetime(2026, 12, 7).date())
    assert payout is not None
    assert payouts.pending_payouts_sweep() == 0  # just made: its own task is on its way
    later = payout.created_at + payouts.PENDING_SWEEP_AFTER * 2
    assert payouts.pending_payouts_sweep(now=later) == 1
    send(payout)
    assert payouts.pending_payouts_sweep(now=later) == 0
