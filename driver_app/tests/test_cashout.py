"""Cash-out from the driver app (driver_app/cashout.py): the fee and what reaches the bank are on
screen before the driver confirms; one confirmation is one cash-out, however often it is sent."""

import re

import pytest
from django.test import Client

from payments.models import Payout
from payments.selectors import driver_balance_cents
from payments.tests.factories import PayPolicyFactory
from payments.tests.helpers import credit

pytestmark = pytest.mark.django_db

PAGE = "/driver/payouts/cash-out/"


@pytest.fixture
def web(driver):
    PayPolicyFactory(
        zone=driver.home_zone, cashout_fee_cents=50, cashout_min_cents=500, cashout_daily_limit_cents=50_000
    )
    client = Client()
    client.force_login(driver.user)
    return client


def _key(response) -> str:
    return re.search(r'name="key" value="([0-9a-f]+)"', response.content.decode()).group(1)


def test_the_fee_and_the_amount_are_shown_before_confirming(web, driver):
    credit(driver, earnings=2_000, tips=450)
    body = web.get(PAGE).content.decode()
    assert 'data-testid="cashout-available">$24.50<' in body
    assert 'data-testid="cashout-fee">$0.50<' in body
    assert 'data-testid="cashout-amount">$24.00<' in body
    assert "Test payments: no real money moves" in body  # the embedded default is the sandbox
    assert Payout.objects.count() == 0  # looking is not asking


def test_confirming_twice_cashes_out_once(web, driver):
    credit(driver, earnings=2_000)
    key = _key(web.get(PAGE))
    first = web.post(PAGE, {"key": key}, follow=True)
    assert "Test cash-out of $19.50 recorded (fee $0.50): no real money moves." in first.content.decode()
    web.post(PAGE, {"key": key})  # a double tap, or the POST sent again on reload
    payout = Payout.objects.get()
    assert (payout.kind, payout.amount_cents, payout.fee_cents) == (Payout.Kind.INSTANT, 1_950, 50)
    assert driver_balance_cents(driver=driver) == 0


def test_below_the_minimum_nothing_is_offered_and_a_forged_post_changes_nothing(web, driver):
    credit(driver, earnings=300)
    body = web.get(PAGE).content.decode()
    assert 'data-testid="cashout-refused">A cash-out is at least $5.00 after the $0.50 fee.<' in body
    assert 'data-testid="cashout-form"' not in body
    response = web.post(PAGE, {"key": "a" * 32}, follow=True)
    assert "A cash-out is at least $5.00" in response.content.decode()
    assert Payout.objects.count() == 0 and driver_balance_cents(driver=driver) == 300


def test_a_post_without_a_key_changes_nothing(web, driver):
    credit(driver, earnings=2_000)
    response = web.post(PAGE, {}, follow=True)
    assert "Reload the page and try again." in response.content.decode()
    assert Payout.objects.count() == 0 and driver_balance_cents(driver=driver) == 2_000


def test_markup_in_the_key_is_only_a_key(web, driver):
    credit(driver, earnings=2_000)
    hostile = "<script>alert(1)</script>" * 10
    response = web.post(PAGE, {"key": hostile}, follow=True)
    web.post(PAGE, {"key": hostile})
    assert "<script>alert(1)" not in response.content.decode()
    assert Payout.objects.count() == 1


def test_spanish(web, driver):
    credit(driver, earnings=2_000)
    web.cookies["django_language"] = "es"
    body = web.get(PAGE).content.decode()
    assert "Cobrar ahora" in body and "Comisión de cobro" in body and "A tu banco ahora" in body


API = "/api/v1/driver/earnings/cashout/"


def test_the_api_quotes_then_cashes_out_once_per_key(web, driver):
    credit(driver, earnings=2_000)
    quote = web.get(API).json()
    assert (quote["available_cents"], quote["fee_cents"], quote["payout_cents"], quote["allowed"]) == (
        2_000,
        50,
        1_950,
        True,
    )
    first = web.post(API, {"idempotency_key": "k1"}, content_type="application/json")
    again = web.post(API, {"idempotency_key": "k1"}, content_type="application/json")
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and first.json()["amount_cents"] == 1_950
    assert Payout.objects.count() == 1


def test_the_api_refuses_below_the_minimum_and_bad_bodies(web, driver):
    credit(driver, earnings=300)
    refused = web.post(API, {"idempotency_key": "k1"}, content_type="application/json")
    assert refused.status_code == 409 and refused.json()["code"] == "below_minimum"
    for body in ({}, {"idempotency_key": ""}, {"idempotency_key": "x" * 65}, {"idempotency_key": {"a": 1}}):
        assert web.post(API, body, content_type="application/json").status_code == 400
    assert Payout.objects.count() == 0 and driver_balance_cents(driver=driver) == 300
