"""Plain helpers (builders, constants) shared by this folder's test modules; fixtures live in conftest.py."""

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

from django.utils import timezone

from drivers.models import Driver
from drivers.tests.factories import DriverFactory
from payments import payout_tasks
from payments.contractor import backends, services
from payments.contractor.payout_setup import payout_account_refresh
from payments.models import Account, Payout, ScreeningCase
from payments.payouts import driver_account
from payments.services import ledger_post, system_account

SUMMARY = "Reckless driving conviction, Davidson County, 2024-05-10."


def make_applicant(**overrides):
    """An applicant who finished onboarding: consent, license and insurance on file."""
    values = {
        "status": Driver.Status.APPLICANT,
        "background_check_consent_at": timezone.now(),
        "license_document": "driver-docs/license/front.jpg",
        "insurance_document": "driver-docs/insurance/card.pdf",
    }
    return DriverFactory(**{**values, **overrides})


def submitted(commit, **overrides) -> ScreeningCase:
    with commit():
        return services.screening_submit(driver=make_applicant(**overrides))


# --- payouts (test_payouts, test_reconcile, webhooks/tests/test_stripe_webhook) ---------------

# Monday 7 December 2026, 12:30 UTC: 06:30 in Nashville (Central), 04:30 in Los Angeles.
MONDAY_NOON_UTC = datetime(2026, 12, 7, 12, 30, tzinfo=UTC)
STRIPE_WEBHOOK_URL = "/webhooks/stripe/"
STRIPE_WEBHOOK_SECRET = "whsec_test_secret"


def credit(driver, *, earnings: int = 0, tips: int = 0, key: str = "") -> None:
    """Money the driver earned (batch pay) and tips credited, as settlement posts them."""
    expense = system_account(kind=Account.Kind.PLATFORM_EXPENSE)
    held = system_account(kind=Account.Kind.TIPS_HELD)
    tag = key or f"{driver.pk}:{earnings}:{tips}"
    if earnings:
        payable = driver_account(driver=driver, kind=Account.Kind.DRIVER_PAYABLE)
        ledger_post(
            idempotency_key=f"test-pay:{tag}", kind="batch_pay", entries=[(payable, earnings), (expense, -earnings)]
        )
    if tips:
        tips_payable = driver_account(driver=driver, kind=Account.Kind.TIPS_PAYABLE)
        ledger_post(
            idempotency_key=f"test-tip:{tag}", kind="tip_credited", entries=[(tips_payable, tips), (held, -tips)]
        )


def enrolled_driver(**overrides):
    """A driver the contractor firm enrolled (a Connect account at Stripe, or the sandbox's)."""
    driver = DriverFactory(**overrides)
    driver.contractor_id = backends.get_backend().enrol(driver)
    driver.save(update_fields=["contractor_id"])
    return driver


def onboarded_driver(standin, **overrides):
    """A driver enrolled at Stripe who finished Stripe's onboarding (payouts enabled)."""
    driver = enrolled_driver(**overrides)
    standin.account_onboard(driver.contractor_id)
    payout_account_refresh(driver=driver)
    return driver


def send(payout: Payout) -> Payout:
    """The payout's task as a worker runs it, retries included (eagerly)."""
    payout_tasks.pay_payout.apply(args=[payout.pk])
    payout.refresh_from_db()
    return payout


def stripe_signature(body: bytes, secret: str = STRIPE_WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe sends with `body`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def post_stripe_raw(client, body: bytes, header: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": header} if header is not None else {}
    return client.post(STRIPE_WEBHOOK_URL, data=body, content_type="application/json", **headers)


def post_stripe_event(client, settings, event: dict):
    """Deliver `event` to the webhook as Stripe does (signed with the configured secret)."""
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_WEBHOOK_SECRET
    body = json.dumps(event).encode()
    return post_stripe_raw(client, body, stripe_signature(body))
