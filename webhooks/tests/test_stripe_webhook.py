"""`POST /webhooks/stripe/`: signed events from Stripe (here: the events our Stripe stand-in
makes, signed as Stripe signs them), each handled once, in any order."""

import json
import time
from datetime import date

import pytest
import stripe

from payments import payout_tasks, payouts
from payments.models import Account, Payout, PayoutAccount, WebhookEvent
from payments.selectors import driver_balance_cents
from payments.services import ledger_post, system_account
from payments.tests.helpers import STRIPE_WEBHOOK_SECRET, enrolled_driver
from payments.tests.helpers import post_stripe_event as post_event
from payments.tests.helpers import post_stripe_raw as post_raw
from payments.tests.helpers import stripe_signature as signature

pytestmark = pytest.mark.django_db


def paid_payout(standin, amount: int = 1000) -> Payout:
    driver = enrolled_driver()
    standin.account_onboard(driver.contractor_id)
    PayoutAccount.objects.create(driver=driver, account_id=driver.contractor_id, payouts_enabled=True)
    payable = payouts.driver_account(driver=driver, kind=Account.Kind.DRIVER_PAYABLE)
    expense = system_account(kind=Account.Kind.PLATFORM_EXPENSE)
    ledger_post(idempotency_key=f"pay:{driver.pk}", kind="batch_pay", entries=[(payable, amount), (expense, -amount)])
    payout = payouts.weekly_payout_create(driver=driver, week=date(2026, 12, 7))
    assert payout is not None
    payout_tasks.pay_payout.apply(args=[payout.pk])
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID
    return payout


def test_account_updated_shows_the_driver_payouts_enabled(stripe_standin, client, settings):
    driver = enrolled_driver()
    event = stripe_standin.account_onboard(driver.contractor_id)
    response = post_event(client, settings, event)
    assert response.status_code == 200 and response.json()["status"] == "processed"
    account = PayoutAccount.objects.get(driver=driver)
    assert account.payouts_enabled and account.requirements_due == []
    assert WebhookEvent.objects.get(event_id=event["id"]).processed_at is not None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body: (body.replace(b'"account.updated"', b'"account.updatex"'), signature(body)),  # body changed
        lambda body: (body, signature(body, secret="whsec_other")),  # another secret
        lambda body: (body, signature(body, timestamp=int(time.time()) - 3600)),  # an old delivery replayed
        lambda body: (body, None),  # no signature
        lambda body: (body, "t=abc,v1=zz"),  # garbage
        lambda body: (b"not json", signature(b"not json")),  # signed, but not an event
        lambda body: (b"[1, 2]", signature(b"[1, 2]")),
    ],
    ids=["tampered", "wrong-secret", "stale", "unsigned", "garbage-header", "not-json", "not-an-object"],
)
def test_a_bad_signature_or_body_is_400_and_nothing_is_stored(stripe_standin, client, settings, tamper):
    settings.STRIPE_WEBHOOK_SECRET = STRIPE_WEBHOOK_SECRET
    driver = enrolled_driver()
    body = json.dumps(stripe_standin.account_onboard(driver.contractor_id)).encode()
    sent, header = tamper(body)
    response = post_raw(client, sent, header)
    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0 and not PayoutAccount.objects.exists()


def test_the_same_event_twice_is_handled_once(stripe_standin, client, settings):
    payout = paid_payout(stripe_standin)
    stripe_client = stripe.StripeClient(stripe_standin.api_key, base_addresses={"api": stripe_standin.url})
    stripe_client.v1.transfers.reversals.create(payout.external_id)
    event = stripe_standin.objects("event")[-1]
    assert post_event(client, settings, event).json()["status"] == "processed"
    assert post_event(client, settings, event).json()["status"] == "duplicate"
    assert WebhookEvent.objects.filter(event_id=event["id"]).count() == 1
    # the money came back once
    assert driver_balance_cents(driver=payout.driver) == 1000


def test_events_out_of_order_end_in_what_stripe_says_now(stripe_standin, client, settings):
    # the transfer was reversed; its transfer.created arrives after transfer.reversed
    payout = paid_payout(stripe_standin)
    created = next(e for e in stripe_standin.objects("event") if e["type"] == "transfer.created")
    stripe_client = stripe.StripeClient(stripe_standin.api_key, base_addresses={"api": stripe_standin.url})
    stripe_client.v1.transfers.reversals.create(payout.external_id)
    reversed_event = stripe_standin.objects("event")[-1]
    assert post_event(client, settings, reversed_event).json()["status"] == "processed"
    assert post_event(client, settings, created).json()["status"] == "processed"
    payout.refresh_from_db()
    assert payout.status == Payout.Status.FAILED  # never back from a final state
    assert driver_balance_cents(driver=payout.driver) == 1000


def test_an_old_account_event_does_not_undo_the_set_up(stripe_standin, client, settings):
    driver = enrolled_driver()
    fresh = stripe_standin.account_onboard(driver.contractor_id)
    stale = json.loads(json.dumps(fresh))
    stale["id"] = "evt_older"
    stale["data"]["object"]["payouts_enabled"] = False  # the copy of an older event
    post_event(client, settings, fresh)
    assert post_event(client, settings, stale).json()["status"] == "processed"
    assert PayoutAccount.objects.get(driver=driver).payouts_enabled  # fetched from Stripe


def test_a_failed_instant_payout_takes_the_transfer_back(
    stripe_standin, client, settings, django_capture_on_commit_callbacks
):
    driver = enrolled_driver()
    stripe_standin.account_onboard(driver.contractor_id)
    PayoutAccount.objects.create(driver=driver, account_id=driver.contractor_id, payouts_enabled=True)
    payable = payouts.driver_account(driver=driver, kind=Account.Kind.DRIVER_PAYABLE)
    ledger_post(
        idempotency_key="pay",
        kind="batch_pay",
        entries=[(payable, 3000), (system_account(kind=Account.Kind.PLATFORM_EXPENSE), -3000)],
    )
    payout = payouts.cashout_request(driver, "k1")
    payout_tasks.pay_payout.apply(args=[payout.pk])
    payout.refresh_from_db()
    failed = stripe_standin.payout_settle(payout.stripe_payout_id, "failed")
    with django_capture_on_commit_callbacks() as callbacks:
        assert post_event(client, settings, failed).json()["status"] == "processed"
    # the webhook queued the task (after its commit); run it as the worker would
    assert len(callbacks) == 1
    payout_tasks.return_payout.apply(args=[payout.pk, "bank failed"])
    payout.refresh_from_db()
    assert payout.status == Payout.Status.FAILED
    assert stripe_standin.get("transfer", payout.external_id)["reversed"] is True
    assert driver_balance_cents(driver=driver) == 3000  # fee included


def test_payment_intents_charges_and_refunds_not_ours_are_ignored(client, settings):
    # A PaymentIntent that is not one of our tips' (here: no Stripe to ask) is ignored, as is a
    # charge or refund naming none; tips' own are tested with localstripe in test_tips.py.
    event = {
        "id": "evt_pi_1",
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_1"}},
    }
    assert post_event(client, settings, event).json()["status"] == "ignored"
    charge = {"id": "evt_ch_1", "object": "event", "type": "charge.refunded", "data": {"object": {"id": "ch_1"}}}
    assert post_event(client, settings, charge).json()["status"] == "ignored"
    refund = {"type": "refund.created", "data": {"object": {"id": "re_1", "payment_intent": "pi_1"}}}
    assert post_event(client, settings, {"id": "evt_re_1", "object": "event", **refund}).json()["status"] == "ignored"
    assert WebhookEvent.objects.get(source="stripe", event_id="evt_ch_1").processed_at is not None


def test_stripe_down_answers_503_and_stores_nothing(stripe_standin, client, settings):
    driver = enrolled_driver()
    event = stripe_standin.account_onboard(driver.contractor_id)
    stripe_standin.fault("GET", "/v1/accounts/*", "error", times=10)
    assert post_event(client, settings, event).status_code == 503
    assert not WebhookEvent.objects.exists()
    stripe_standin.clear_faults()
    assert post_event(client, settings, event).json()["status"] == "processed"


def test_without_a_secret_the_webhook_is_unavailable(client, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    body = b"{}"
    assert post_raw(client, body, signature(body)).status_code == 503
