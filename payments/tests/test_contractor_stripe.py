"""Contractor enrolment with the Stripe backend: the real SDK over HTTP against our stand-in for
Stripe (the `stripe_standin` fixture, tests/stripe_standin). Each test checks what the driver
and ops would see: the account id stored on the driver, and how many accounts Stripe holds."""

import pytest
import stripe

from drivers.models import Driver
from drivers.tests.factories import DriverFactory
from payments import tasks
from payments.contractor import backends, services

pytestmark = pytest.mark.django_db

ATTEMPTS = 1 + backends.StripeBackend.max_network_retries  # what one enrol call sends at most


def in_screening(**overrides) -> Driver:
    return DriverFactory(**{"status": Driver.Status.SCREENING, **overrides})


def contractor_id(driver: Driver) -> str:
    return Driver.objects.values_list("contractor_id", flat=True).get(pk=driver.pk)


def test_enrolment_stores_the_id_of_one_express_account_for_the_driver(stripe_standin):
    driver = in_screening()
    # when the enrol task runs, then runs again (a redelivery)
    first = tasks.enrol_contractor(driver.pk)
    second = tasks.enrol_contractor(driver.pk)
    # then Stripe holds one Express account for the driver, and the driver has its id
    [account] = stripe_standin.objects("account")
    assert first == second == contractor_id(driver) == account["id"]
    assert account["id"].startswith("acct_")
    assert (account["type"], account["country"], account["email"]) == ("express", "US", driver.user.email)
    assert account["capabilities"] == {"transfers": "inactive"}  # until the driver onboards
    assert account["metadata"] == {"driver_id": str(driver.pk)}
    assert len(stripe_standin.calls("POST", "/v1/accounts")) == 1  # the stored id stops the second


def test_two_enrolments_racing_for_one_driver_get_one_account(stripe_standin):
    # The task and the sweeper both reach Stripe before either stores the id: the idempotency
    # key comes from our driver row, so Stripe hands the second one the same account.
    driver, other = in_screening(), in_screening()
    backend = backends.get_backend()
    assert backend.enrol(driver) == backend.enrol(driver)
    backend.enrol(other)
    accounts = stripe_standin.objects("account")
    assert sorted(a["metadata"]["driver_id"] for a in accounts) == sorted([str(driver.pk), str(other.pk)])
    assert [c.replayed for c in stripe_standin.calls("POST", "/v1/accounts")] == [False, True, False]


@pytest.mark.parametrize("kind", ["error", "reset"])
def test_a_failed_call_then_success_creates_one_account(stripe_standin, kind):
    # given Stripe answers 500 once (or drops the connection once)
    stripe_standin.fault("POST", "/v1/accounts", kind)
    driver = in_screening()
    # when the driver is enrolled (the SDK retries with the same key)
    account_id = services.contractor_enrol(driver_id=driver.pk)
    # then one account, stored on the driver
    assert [a["id"] for a in stripe_standin.objects("account")] == [account_id] == [contractor_id(driver)]


def test_stripe_down_leaves_the_driver_for_the_sweeper(stripe_standin):
    driver = in_screening()
    stripe_standin.fault("POST", "/v1/accounts", "error", times=ATTEMPTS)
    # the task fails (Celery logs it) and the driver has no id yet
    with pytest.raises(stripe.APIError):
        tasks.enrol_contractor(driver.pk)
    assert contractor_id(driver) == "" and stripe_standin.objects("account") == []
    # the next sweep enrols them, once
    assert services.screening_sweep()["enrolled"] == 1
    assert [a["id"] for a in stripe_standin.objects("account")] == [contractor_id(driver)]
    assert services.screening_sweep()["enrolled"] == 0


def test_a_time_out_after_stripe_created_the_account_ends_with_that_account(stripe_standin, monkeypatch):
    # Stripe creates the account but every answer comes after our client gave up.
    monkeypatch.setattr(backends.StripeBackend, "timeout_seconds", 0.5)
    stripe_standin.fault("POST", "/v1/accounts", "delay", times=ATTEMPTS, seconds=3)
    driver = in_screening()
    with pytest.raises(stripe.APIConnectionError):
        tasks.enrol_contractor(driver.pk)
    [account] = stripe_standin.objects("account")
    assert contractor_id(driver) == ""  # we never heard back
    # the sweeper retries with the same key and gets that account, not a second one
    assert services.screening_sweep()["enrolled"] == 1
    assert contractor_id(driver) == account["id"]
    assert len(stripe_standin.objects("account")) == 1


def test_a_rejected_key_enrols_nobody_and_the_sweeper_keeps_going(stripe_standin, settings, caplog):
    settings.STRIPE_SECRET_KEY = "sk_live_not_for_this_server"
    driver = in_screening()
    assert services.screening_sweep()["enrolled"] == 0
    assert contractor_id(driver) == "" and stripe_standin.objects("account") == []
    assert f"Enrolling driver {driver.pk} as a contractor failed" in caplog.text
