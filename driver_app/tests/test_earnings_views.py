"""The driver's earnings screens (Django test client): what each shows matches the rows and the
ledger, another driver's money is invisible, Spanish renders, the CSV parses and adds up, the
sandbox says "test payments", and the batch screen shows what the last batch paid."""

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone

from drivers.models import Driver
from drivers.tests.factories import DriverFactory
from orders.models import Batch
from payments.selectors import driver_balance_cents
from payments.tests.earnings_builders import adjust, ended_batch, payout, settle, tip_rows
from payments.tests.factories import PayPolicyFactory
from spark.money import format_cents
from stores.tests.factories import StoreFactory, ZoneFactory

pytestmark = pytest.mark.django_db

TEST_PAYMENTS = "Test payments: no real money moves"


@pytest.fixture
def zone(db):
    z = ZoneFactory(timezone="America/Chicago")
    PayPolicyFactory(zone=z)
    return z


@pytest.fixture
def driver(zone):
    return DriverFactory(home_zone=zone)


@pytest.fixture
def store(zone):
    return StoreFactory(zone=zone, name="Green Hills")


def client_for(driver, **headers) -> Client:
    client = Client(**headers)
    client.force_login(driver.user)
    return client


def this_monday(zone) -> str:
    today = timezone.now().astimezone(ZoneInfo(zone.timezone)).date()
    return (today - timedelta(days=today.weekday())).isoformat()


def test_home_shows_the_ledger_balance_and_what_is_pending(driver, store):
    settled = ended_batch(driver, store=store, tips=(500, 300))
    pay = settle(settled)
    tip_rows(settled, captured=1)  # 500 credited, 300 waiting for its window
    waiting = ended_batch(driver, store=store, tips=(200,))  # ended, not settled yet
    payout(driver, 1000, status="paid")

    res = client_for(driver).get("/driver/earnings/")
    assert res.status_code == 200
    html = res.content.decode()
    balance = pay.final_cents + 500 - 1000
    assert driver_balance_cents(driver=driver) == balance
    assert f'data-testid="balance">{format_cents(balance)}<' in html
    assert f'data-testid="balance-earnings">{format_cents(pay.final_cents - 1000)}<' in html
    assert f'data-testid="balance-tips">{format_cents(500)}<' in html
    # the batch not settled yet: pay being worked out, with the offer's guarantee
    assert html.count('data-testid="pending-batch"') == 1
    assert f"/driver/earnings/batches/{waiting.pk}/" in html and "at least $14.50" in html
    # tips waiting for their window: the settled batch's 300 and the waiting batch's 200
    assert html.count('data-testid="pending-tip"') == 1  # the waiting batch's tip has no Tip row yet
    assert "Tips not credited yet: $3.00" in html and "window closes" in html
    # the batch list: the settled batch's pay, the other being worked out
    assert f'data-testid="batch-pay">{format_cents(pay.final_cents)}<' in html
    assert 'data-testid="batch-pay-pending"' in html
    assert TEST_PAYMENTS in html
    assert 'aria-current="page" data-testid="tab-earnings"' in html
    assert 'href="/driver/payouts/cash-out/"' in html  # the fee is shown there before confirming


def test_another_drivers_money_is_invisible(driver, store, zone):
    other = DriverFactory(home_zone=zone)
    theirs = ended_batch(other, store=store)
    settle(theirs)
    payout(other, 700, reason="Bank said no", status="failed")
    client = client_for(driver)
    home = client.get("/driver/earnings/").content.decode()
    assert f"/driver/earnings/batches/{theirs.pk}/" not in home and 'data-testid="balance">$0.00<' in home
    assert client.get(f"/driver/earnings/batches/{theirs.pk}/").status_code == 404
    assert 'data-testid="no-payouts"' in client.get("/driver/earnings/payouts/").content.decode()
    week = this_monday(zone)
    assert "statement-empty" in client.get(f"/driver/earnings/statements/{week}/").content.decode()
    rows = list(csv.reader(io.StringIO(client.get(f"/driver/earnings/statements/{week}/csv/").content.decode())))
    assert len(rows) == 1  # the header only


def test_batch_shows_the_offer_beside_the_pay_with_wait_tips_and_adjustments(driver, store):
    batch = ended_batch(driver, store=store, tips=(500, 300))
    pay = settle(batch)
    tip_rows(batch, captured=1)
    adjust(pay, 250, reason="route", note="Closed bridge <b>detour</b>")
    adjust(pay, -50, reason="correction", note="Counted twice")

    html = client_for(driver).get(f"/driver/earnings/batches/{batch.pk}/").content.decode()
    assert 'data-testid="offered-total">$14.50<' in html  # the offer: 400+300+450+200+100, tips aside
    assert 'data-testid="paid-miles">$5.10<' in html and 'data-testid="paid-wait">$1.20<' in html
    assert "Wait at the store: 6 minutes past the grace" in html
    assert f'data-testid="paid-final">{format_cents(pay.final_cents)}<' in html
    assert 'data-testid="paid-top-up"' not in html  # what happened paid more than the offer
    assert f'data-testid="batch-total">{format_cents(pay.final_cents + 200)}<' in html
    assert "Route was longer than measured" in html and "Correction of an earlier adjustment" in html
    assert "Closed bridge &lt;b&gt;detour&lt;/b&gt;" in html and "<b>detour" not in html
    assert html.count('data-testid="tip"') == 2
    assert "Credited" in html and "Waiting for the tip window to close" in html
    assert "Tips credited: $5.00" in html and "$3.00 in tips to come" in html
    assert "The offer showed $8.00 in tips." in html


def test_guarantee_top_up_makes_the_parts_add_up(driver, store):
    batch = ended_batch(driver, store=store)
    low = {**dict.fromkeys(["base_cents", "stops_cents", "miles_cents", "heavy_cents", "wait_cents"], 100)}
    pay = settle(
        batch,
        paid={
            **low,
            "incentive_cents": 100,
            "stops_paid": 2,
            "heavy_paid": 0,
            "routed_meters": 9000,
            "wait_minutes": 5,
        },
    )
    assert pay.final_cents == 1450 + 100  # the offer's guarantee (above the 500 worked out), plus the wait
    html = client_for(driver).get(f"/driver/earnings/batches/{batch.pk}/").content.decode()
    assert 'data-testid="paid-top-up">$9.50<' in html and 'data-testid="paid-final">$15.50<' in html


def test_a_batch_not_settled_says_pay_is_being_worked_out(driver, store):
    batch = ended_batch(driver, store=store)
    html = client_for(driver).get(f"/driver/earnings/batches/{batch.pk}/").content.decode()
    assert 'data-testid="pay-pending"' in html and "guarantees at least $14.50" in html
    assert 'data-testid="paid-final"' not in html


def test_statement_lists_the_weeks_entries_and_the_csv_adds_up(driver, store, zone):
    tz = ZoneInfo(zone.timezone)
    monday = datetime(2026, 11, 2, tzinfo=tz)  # a Monday
    before = ended_batch(driver, store=store, closed_at=monday - timedelta(hours=2))
    settle(before, when=monday - timedelta(minutes=1))  # Sunday 23:59 local: the week before
    batch = ended_batch(driver, store=store, closed_at=monday + timedelta(hours=10))
    pay = settle(batch, when=monday + timedelta(minutes=1))  # Monday 00:01 local
    adjust(pay, 300, note="Detour", when=monday + timedelta(days=1))
    tip_rows(batch, captured=2, when=monday + timedelta(days=2))
    payout(driver, 2000, fee=150, kind="instant", when=monday + timedelta(days=6, hours=23, minutes=59))
    settle(ended_batch(driver, store=store), when=monday + timedelta(days=7))  # the next Monday 00:00

    client = client_for(driver)
    res = client.get("/driver/earnings/statements/2026-11-02/")
    assert res.status_code == 200
    html = res.content.decode()
    opening = pay.final_cents  # the batch settled a minute before the week
    net = pay.final_cents + 300 + 800 - 2000 - 150
    assert f'data-testid="opening-balance">{format_cents(opening)}<' in html
    assert f'data-testid="closing-balance">{format_cents(opening + net)}<' in html
    assert html.count('data-testid="statement-line"') == 6  # pay, adjustment, 2 tips, payout, fee
    assert "Pay adjustment" in html and "Cash-out fee" in html and "Customer tip" in html
    assert f'data-testid="earned">{format_cents(pay.final_cents + 300 + 800)}<' in html

    res = client.get("/driver/earnings/statements/2026-11-02/csv/")
    assert res.status_code == 200 and res["Content-Type"].startswith("text/csv")
    assert 'filename="spark-statement-2026-11-02.csv"' in res["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(res.content.decode())))
    assert len(rows) == 6 and sum(int(r["amount_cents"]) for r in rows) == net
    assert {r["type"] for r in rows} == {"batch_pay", "adjustment", "tip", "payout", "fee"}
    assert rows[0]["date"] == "2026-11-02" and rows[0]["time"] == "00:01" and rows[-1]["date"] == "2026-11-08"
    assert all(r["store"] == "Green Hills" for r in rows if r["batch"])


def test_bad_statement_weeks_are_400_with_a_clear_message(driver):
    client = client_for(driver)
    res = client.get("/driver/earnings/statements/2026-11-03/")
    assert res.status_code == 400
    assert "is a Tuesday: statement weeks start on a Monday (that week starts on 2026-11-02)" in res.content.decode()
    res = client.get("/driver/earnings/statements/not-a-date/csv/")
    assert res.status_code == 400 and "is not a date" in res.content.decode()


def test_payout_history_shows_kind_status_amount_fee_and_failure(driver):
    payout(driver, 4200, status="paid")
    payout(driver, 1000, fee=150, kind="instant", status="failed", reason="The bank refused the transfer.")
    html = client_for(driver).get("/driver/earnings/payouts/").content.decode()
    assert html.count('data-testid="payout"') == 2
    assert "$42.00" in html and "Weekly payout" in html and "Paid" in html
    assert "$10.00" in html and "fee $1.50" in html and "Instant cash-out" in html
    assert "The bank refused the transfer." in html and "the money is back in your balance" in html
    assert TEST_PAYMENTS in html


def test_no_test_payments_notice_with_real_payments(driver, settings):
    settings.SPARK_PAYMENT_BACKEND = "stripe"
    for path in ("/driver/earnings/", "/driver/earnings/payouts/"):
        assert TEST_PAYMENTS not in client_for(driver).get(path).content.decode()


def test_spanish(driver, store):
    batch = ended_batch(driver, store=store)
    settle(batch)
    tip_rows(batch)
    client = client_for(driver, HTTP_ACCEPT_LANGUAGE="es")
    home = client.get("/driver/earnings/").content.decode()
    assert "Ganancias" in home and "Tu saldo" in home and "Pagos de prueba: no se mueve dinero real" in home
    assert "Estados de cuenta semanales" in home
    detail = client.get(f"/driver/earnings/batches/{batch.pk}/").content.decode()
    assert "Espera en la tienda: 6 minutos" in detail and "Propinas del cliente" in detail
    payouts = client.get("/driver/earnings/payouts/").content.decode()
    assert "Historial de pagos" in payouts
    statement = client.get(f"/driver/earnings/statements/{this_monday(driver.home_zone)}/").content.decode()
    assert "Saldo al final de la semana" in statement and "Pago del lote" in statement
    batch_page = client.get("/driver/batch/").content.decode()
    assert "Este lote pagó" in batch_page


def test_suspended_driver_still_sees_their_money(zone, store):
    driver = DriverFactory(home_zone=zone, status=Driver.Status.SUSPENDED, reason_code="other")
    settle(ended_batch(driver, store=store))
    assert client_for(driver).get("/driver/earnings/").status_code == 200


def test_batch_screen_shows_what_the_last_batch_paid(driver, store):
    batch = ended_batch(driver, store=store, closed_at=timezone.now() - timedelta(minutes=5))
    client = client_for(driver)
    html = client.get("/driver/batch/").content.decode()
    assert 'data-testid="last-batch-pay"' in html and "Pay being worked out" in html and "at least $14.50" in html
    pay = settle(batch)
    html = client.get("/driver/batch/").content.decode()
    assert f"This batch paid {format_cents(pay.final_cents)}." in html
    assert f"/driver/earnings/batches/{batch.pk}/" in html and TEST_PAYMENTS in html


def test_a_cancelled_last_batch_shows_no_pay_line(driver, store):
    ended_batch(driver, store=store, status=Batch.Status.CANCELLED, closed_at=timezone.now(), tips=())
    html = client_for(driver).get("/driver/batch/").content.decode()
    assert 'data-testid="last-batch"' in html and 'data-testid="last-batch-pay"' not in html


def test_a_batch_bringing_returns_back_shows_when_its_pay_is_worked_out(driver, store):
    returning = ended_batch(driver, store=store, status=Batch.Status.RETURNING)
    Batch.objects.filter(pk=returning.pk).update(closed_at=None)
    html = client_for(driver).get("/driver/earnings/").content.decode()
    assert "worked out once the store checks your returns in" in html and "Bringing returns back" in html
    es = client_for(driver, HTTP_ACCEPT_LANGUAGE="es").get("/driver/earnings/").content.decode()
    assert "se calcula cuando la tienda registre tus devoluciones" in es
