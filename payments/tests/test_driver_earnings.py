"""payments.driver_earnings: the selectors behind the driver's earnings screens and API."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from dispatch.tests.factories import OfferFactory
from drivers.tests.factories import DriverFactory
from orders.models import Batch
from payments import driver_earnings
from payments.models import Account, Tip
from payments.selectors import driver_balance_cents
from payments.services import ledger_post, offer_pay_snapshot_create, system_account, trip_pay_for_released_batch
from payments.tests.earnings_builders import adjust, ended_batch, payout, settle, tip_rows, tips_account
from payments.tests.factories import PayPolicyFactory
from stores.tests.factories import StoreFactory, ZoneFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def driver(db):
    zone = ZoneFactory(timezone="America/Los_Angeles")
    PayPolicyFactory(zone=zone)
    return DriverFactory(home_zone=zone)


def test_this_weeks_statement_ends_at_the_balance(driver):
    store = StoreFactory(zone=driver.home_zone)
    batch = ended_batch(driver, store=store)
    adjust(settle(batch), 125, note="Long wait")
    tip_rows(batch, captured=2)
    payout(driver, 900, fee=100, kind="instant")
    week = driver_earnings.current_week_start(driver=driver, now=timezone.now())
    statement = driver_earnings.weekly_statement(driver=driver, week=week)
    assert statement.opening_balance_cents == 0
    assert statement.closing_balance_cents == driver_balance_cents(driver=driver)
    assert statement.closing_balance_cents == driver_earnings.earnings_summary(driver=driver).balance_cents
    assert statement.totals["fee"] == -100 and statement.totals["payout"] == -900


def test_the_week_is_the_drivers_zone_week(driver):
    store = StoreFactory(zone=driver.home_zone)
    monday = datetime(2026, 6, 1, tzinfo=ZoneInfo("America/Los_Angeles"))
    # Monday 06:00 UTC is Sunday 23:00 in Los Angeles: the week before
    settle(ended_batch(driver, store=store), when=datetime(2026, 6, 1, 6, 0, tzinfo=ZoneInfo("UTC")))
    settle(ended_batch(driver, store=store), when=monday + timedelta(hours=1))
    assert len(driver_earnings.weekly_statement(driver=driver, week=date(2026, 5, 25)).lines) == 1
    assert len(driver_earnings.weekly_statement(driver=driver, week=date(2026, 6, 1)).lines) == 1
    assert driver_earnings.current_week_start(
        driver=driver, now=datetime(2026, 6, 1, 6, 0, tzinfo=ZoneInfo("UTC"))
    ) == date(2026, 5, 25)


def test_trip_pay_is_its_own_line(driver):
    store = StoreFactory(zone=driver.home_zone)
    batch = ended_batch(driver, store=store, status=Batch.Status.CANCELLED, tips=(), offered=None)
    offer = OfferFactory(batch=batch, driver=driver, status="released")
    offer_pay_snapshot_create(offer=offer, incentive_cents=0)
    trip_pay_for_released_batch(batch=batch, driver=driver, offer=offer)
    week = driver_earnings.current_week_start(driver=driver, now=timezone.now())
    [line] = driver_earnings.weekly_statement(driver=driver, week=week).lines
    assert line.category == "trip_pay" and line.amount_cents == 400 and line.batch_id == batch.pk
    # a cancelled batch is not among the batches that pay, nor pending
    assert driver_earnings.batch_earnings(driver=driver, batch_id=batch.pk) is None
    assert driver_earnings.earnings_summary(driver=driver).pending_batches == ()


def test_pending_tips_are_the_drivers_authorised_ones(driver):
    store = StoreFactory(zone=driver.home_zone)
    batch = ended_batch(driver, store=store, tips=(400, 300, 200))
    closes = timezone.now() + timedelta(hours=5)
    tips = tip_rows(batch, captured=1, window_closes_at=closes)
    Tip.objects.filter(pk=tips[2].pk).update(status=Tip.Status.CANCELED)
    other = DriverFactory(home_zone=driver.home_zone)
    tip_rows(ended_batch(other, store=store, tips=(999,)))
    summary = driver_earnings.earnings_summary(driver=driver)
    assert [(t.amount_cents, t.batch_id, t.window_closes_at) for t in summary.pending_tips] == [(300, batch.pk, closes)]
    assert summary.tips_cents == 400 and summary.pending_tips_cents == 300


def test_guarantee_and_top_up():
    pay = driver_earnings.SettledPay(
        base_cents=100,
        stops_cents=100,
        stops_paid=1,
        miles_cents=100,
        routed_meters=1000,
        heavy_cents=0,
        heavy_paid=0,
        incentive_cents=50,
        wait_minutes=1,
        wait_cents=20,
        snapshot_cents=900,
        final_cents=920,
        settled_at=timezone.now(),
    )
    assert pay.parts_cents + pay.guarantee_top_up_cents == pay.final_cents == 920


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-06-02", "2026-06-02 is a Tuesday: statement weeks start on a Monday (that week starts on 2026-06-01)."),
        ("2026-13-01", "“2026-13-01” is not a date"),
        ("", "is not a date"),
        ("1999-12-27", "out of range"),
    ],
)
def test_week_start_says_what_is_wrong(value, message):
    with pytest.raises(driver_earnings.BadWeek, match=message.replace("(", r"\(").replace(")", r"\)")):
        driver_earnings.week_start(value)
    assert driver_earnings.week_start("2026-06-01") == date(2026, 6, 1)


def test_test_payments_follows_the_backend(settings):
    settings.SPARK_PAYMENT_BACKEND = "sandbox"
    assert driver_earnings.test_payments() is True
    settings.SPARK_PAYMENT_BACKEND = "stripe"
    assert driver_earnings.test_payments() is False


def test_a_tip_is_credited_when_the_ledger_credits_it_in_full_or_as_cover(driver):
    store = StoreFactory(zone=driver.home_zone)
    batch = ended_batch(driver, store=store, tips=(600, 400, 250))
    declined, waiting, cancelled = tip_rows(batch)  # all authorised, none credited yet
    Tip.objects.filter(pk__in=[declined.pk, cancelled.pk]).update(status=Tip.Status.CANCELED, amount_cents=0)
    # the card was declined: Spark covers the 600 shown, up to the zone's cap (500)
    ledger_post(
        idempotency_key=f"tip-cover:{declined.pk}",
        kind="tip_cover",
        entries=[(tips_account(driver), 500), (system_account(kind=Account.Kind.PLATFORM_EXPENSE), -500)],
    )
    [item] = driver_earnings.batch_earnings_for(driver=driver, batches=[batch])
    assert [(t.state, t.credited_cents) for t in item.tips] == [("credited", 500), ("waiting", 0), ("canceled", 0)]
    assert item.tips_credited_cents == 500 and item.tips_pending_cents == 400
    summary = driver_earnings.earnings_summary(driver=driver)
    assert [t.order_id for t in summary.pending_tips] == [waiting.order_id]
    assert summary.tips_cents == 500 == driver_balance_cents(driver=driver)


def test_a_batch_bringing_returns_back_is_pending_until_the_store_checks_them_in(driver):
    store = StoreFactory(zone=driver.home_zone)
    returning = ended_batch(driver, store=store, status=Batch.Status.RETURNING)
    Batch.objects.filter(pk=returning.pk).update(closed_at=None)
    [pending] = driver_earnings.earnings_summary(driver=driver).pending_batches
    assert pending.batch_id == returning.pk and pending.status == "returning" and pending.guaranteed_cents == 1450
    done = ended_batch(driver, store=store)
    assert [b.pk for b in driver_earnings.driver_batches(driver=driver)] == [returning.pk, done.pk]


def test_statement_lines_of_the_real_payout_flows(driver, django_capture_on_commit_callbacks):
    """payments.payouts in the sandbox: a cash-out with its fee, paid, then failed for good (the
    money and the fee come back): every line is a payout or a fee, and they add up to zero."""
    from payments import payouts

    store = StoreFactory(zone=driver.home_zone)
    settle(ended_batch(driver, store=store))
    before = driver_balance_cents(driver=driver)
    quote = payouts.cashout_quote(driver)
    assert quote.allowed, quote.reason
    with django_capture_on_commit_callbacks(execute=False):  # the transfer task is not what is tested
        cashed = payouts.cashout_request(driver, "confirm-1")
    payouts.payout_mark_paid(payout_id=cashed.pk, transfer_id="tr_test")
    payouts.payout_fail(payout_id=cashed.pk, reason="Bank returned it")
    week = driver_earnings.current_week_start(driver=driver, now=timezone.now())
    statement = driver_earnings.weekly_statement(driver=driver, week=week)
    money_moves = [line for line in statement.lines if line.category != "batch_pay"]
    assert {line.category for line in money_moves} == {"payout", "fee"}
    assert sum(line.amount_cents for line in money_moves) == 0
    # the fee came back inside the reversal (one entry per account): the fee line stays, the
    # payout lines make up for it
    assert statement.totals["fee"] == -cashed.fee_cents and statement.totals["payout"] == cashed.fee_cents
    assert statement.closing_balance_cents == before == driver_balance_cents(driver=driver)
