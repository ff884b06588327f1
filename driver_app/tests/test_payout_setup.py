"""The driver's Payouts page (driver_app/payout_setup.py): the status Stripe gives their Connect
account, a button to Stripe's onboarding, and "test payments" under the sandbox. Ops see the same
status in the driver admin."""

import pytest
from django.test import Client

from drivers.tests.factories import DriverFactory
from payments.models import PayoutAccount
from payments.tests.helpers import enrolled_driver
from stores.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PAGE = "/driver/payouts/"
SETUP = "/driver/payouts/setup/"


def client_for(driver, **headers) -> Client:
    client = Client(**headers)
    client.force_login(driver.user)
    return client


def test_sandbox_page_says_test_payments_and_offers_no_link(driver):
    response = client_for(driver).get(PAGE)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="payouts-sandbox"' in body and "test payments" in body
    assert 'data-testid="payouts-setup"' not in body
    # the set-up address sends them back with the same words, not to a bank page
    follow = client_for(driver).get(SETUP, follow=True)
    assert follow.redirect_chain == [(PAGE, 302)]
    assert "Test payments: there is no bank account to set up." in follow.content.decode()


def test_in_spanish(driver):
    body = client_for(driver, HTTP_ACCEPT_LANGUAGE="es").get(PAGE).content.decode()
    assert "Pagos de prueba" in body and "No hay nada que configurar." in body


def test_not_set_up_shows_what_stripe_needs_and_the_button(stripe_standin):
    driver = enrolled_driver()
    body = client_for(driver).get(PAGE).content.decode()
    assert 'data-testid="payouts-not-enabled"' in body
    assert "a bank account or debit card" in body and "accepting Stripe&#x27;s terms" in body
    assert "Set up payouts at Stripe" in body
    # the button makes a fresh onboarding link and sends the driver to Stripe
    response = client_for(driver).get(SETUP)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{stripe_standin.url}/setup/s/{driver.contractor_id}/")
    [call] = stripe_standin.calls("POST", "/v1/account_links")
    assert call.params["return_url"] == "http://testserver/driver/payouts/?return=1"
    assert call.params["refresh_url"] == "http://testserver/driver/payouts/setup/"


def test_back_from_stripe_the_page_shows_payouts_enabled(stripe_standin, client, settings):
    driver = enrolled_driver()
    client_for(driver).get(PAGE)
    stripe_standin.account_onboard(driver.contractor_id)
    body = client_for(driver).get(PAGE + "?return=1").content.decode()
    assert 'data-testid="payouts-enabled"' in body and "Stripe still needs" not in body
    assert PayoutAccount.objects.get(driver=driver).payouts_enabled
    # ops see it in the driver admin, on the list and on the driver's page
    ops = UserFactory(email="ops-payouts@example.test", is_staff=True, is_superuser=True)
    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = [ops.email]
    client.force_login(ops)
    for url in ("/admin/drivers/driver/", f"/admin/drivers/driver/{driver.pk}/change/"):
        response = client.get(url)
        assert response.status_code == 200 and "Payouts enabled" in response.content.decode()


def test_ops_see_what_stripe_still_needs(stripe_standin, client, settings):
    driver = enrolled_driver()
    client_for(driver).get(PAGE)
    ops = UserFactory(email="ops-payouts@example.test", is_staff=True, is_superuser=True)
    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = [ops.email]
    client.force_login(ops)
    body = client.get(f"/admin/drivers/driver/{driver.pk}/change/").content.decode()
    assert "Not enabled: external_account, tos_acceptance.date, tos_acceptance.ip" in body


def test_stripe_down_keeps_the_page_up(stripe_standin):
    driver = enrolled_driver()
    stripe_standin.fault("GET", "/v1/accounts/*", "error", times=10)
    response = client_for(driver).get(PAGE)
    assert response.status_code == 200
    assert "Stripe is not answering right now" in response.content.decode()


def test_no_account_yet_has_no_button(stripe_standin):
    driver = DriverFactory()  # not enrolled by the contractor firm yet
    body = client_for(driver).get(PAGE).content.decode()
    assert "Not set up yet" in body and 'data-testid="payouts-setup"' not in body
