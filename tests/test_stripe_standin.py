"""The Stripe stand-in (tests/stripe_standin) behaves as Stripe does where our money code relies
on it: idempotency, auth, errors, bracket form bodies, balances and scripted faults. Driven with
the real `stripe` SDK over HTTP (and `requests` where the SDK would not send such a request)."""

import time

import pytest
import requests
import stripe

from tests.stripe_standin import StripeStandin, parse_form

ACCOUNT = {
    "type": "express",
    "country": "US",
    "email": "driver@example.test",
    "capabilities": {"transfers": {"requested": True}},
    "metadata": {"driver_id": "7"},
}


@pytest.fixture
def standin():
    with StripeStandin() as standin:
        yield standin


def client(standin, *, retries=0, timeout=5.0, key=None):
    return stripe.StripeClient(
        key or standin.api_key,
        base_addresses={"api": standin.url},
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def post(standin, path, data, **headers):
    headers.setdefault("Authorization", f"Bearer {standin.api_key}")
    return requests.post(standin.url + path, data=data, headers=headers, timeout=5)


# --- form bodies and shapes ------------------------------------------------------------


def test_form_bodies_use_stripes_bracket_syntax():
    body = "metadata[driver_id]=7&capabilities[transfers][requested]=true&expand[0]=a&expand[1]=b&tags[]=x&email="
    assert parse_form(body) == {
        "metadata": {"driver_id": "7"},
        "capabilities": {"transfers": {"requested": "true"}},
        "expand": ["a", "b"],
        "tags": ["x"],
        "email": "",
    }


def test_an_account_has_stripes_shape_and_can_be_read_back_and_updated(standin):
    stripe_client = client(standin)
    account = stripe_client.v1.accounts.create(params=ACCOUNT)
    assert account.object == "account" and account.id.startswith("acct_") and len(account.id) == 21
    assert (account.type, account.country, account.email) == ("express", "US", "driver@example.test")
    assert account.capabilities.to_dict() == {"transfers": "inactive"}
    assert (account.charges_enabled, account.payouts_enabled, account.details_submitted) == (False, False, False)
    assert stripe_client.v1.accounts.retrieve(account.id).metadata.to_dict() == {"driver_id": "7"}
    # metadata merges key by key; an empty value removes a key
    stripe_client.v1.accounts.update(account.id, params={"metadata": {"zone": "nashville", "driver_id": ""}})
    assert stripe_client.v1.accounts.retrieve(account.id).metadata.to_dict() == {"zone": "nashville"}
    [event] = standin.objects("event")
    assert event["type"] == "account.updated" and event["data"]["object"]["id"] == account.id


def test_an_account_link_has_a_url_and_expires(standin):
    stripe_client = client(standin)
    account = stripe_client.v1.accounts.create(params=ACCOUNT)
    link = stripe_client.v1.account_links.create(
        params={
            "account": account.id,
            "type": "account_onboarding",
            "refresh_url": "https://spark.test/refresh",
            "return_url": "https://spark.test/return",
        }
    )
    assert link.object == "account_link" and link.url.startswith("http")
    assert link.created < link.expires_at <= link.created + 600


def test_transfers_move_the_balance_and_reversals_move_it_back(standin):
    stripe_client = client(standin)
    account = stripe_client.v1.accounts.create(params=ACCOUNT)
    platform = standin.balance()
    transfer = stripe_client.v1.transfers.create(
        params={"amount": 1250, "currency": "usd", "destination": account.id, "metadata": {"batch_id": "3"}}
    )
    assert (transfer.object, transfer.amount, transfer.destination) == ("transfer", 1250, account.id)
    assert standin.balance(account.id) == 1250 and standin.balance() == platform - 1250
    assert stripe_client.v1.transfers.retrieve(transfer.id).metadata.to_dict() == {"batch_id": "3"}
    assert [t.id for t in stripe_client.v1.transfers.list(params={"destination": account.id}).data] == [transfer.id]
    reversal = stripe_client.v1.transfers.reversals.create(transfer.id, params={"amount": 250})
    assert (reversal.object, reversal.amount, reversal.transfer) == ("transfer_reversal", 250, transfer.id)
    again = stripe_client.v1.transfers.retrieve(transfer.id)
    assert (again.amount_reversed, again.reversed) == (250, False)
    assert standin.balance(account.id) == 1000
    assert [e["type"] for e in standin.objects("event")] == ["transfer.created", "transfer.reversed"]


def test_a_transfer_beyond_the_platform_balance_is_refused():
    small = StripeStandin(platform_balance_cents=500)
    with small:
        stripe_client = client(small)
        account = stripe_client.v1.accounts.create(params=ACCOUNT)
        with pytest.raises(stripe.InvalidRequestError) as refused:
            stripe_client.v1.transfers.create(params={"amount": 501, "currency": "usd", "destination": account.id})
        assert (refused.value.http_status, refused.value.code) == (400, "balance_insufficient")
        assert small.objects("transfer") == []


def test_a_payout_from_a_connected_account_and_its_events(standin):
    stripe_client = client(standin)
    account = stripe_client.v1.accounts.create(params=ACCOUNT)
    stripe_client.v1.transfers.create(params={"amount": 2000, "currency": "usd", "destination": account.id})
    as_driver = {"stripe_account": account.id}
    payout = stripe_client.v1.payouts.create(
        params={"amount": 1500, "currency": "usd", "method": "instant"}, options=as_driver
    )
    assert (payout.object, payout.status, payout.method) == ("payout", "pending", "instant")
    assert stripe_client.v1.balance.retrieve(options=as_driver).available[0].amount == 500
    assert stripe_client.v1.payouts.retrieve(payout.id, options=as_driver).amount == 1500
    # the bank fails it later: the money comes back, an event says so
    event = standin.payout_settle(payout.id, "failed")
    fetched = stripe_client.v1.events.retrieve(event["id"])
    assert (fetched.type, fetched.account, fetched.data.object.status) == ("payout.failed", account.id, "failed")
    assert standin.balance(account.id) == 2000


# --- errors ----------------------------------------------------------------------------


def test_unknown_ids_are_404_resource_missing(standin):
    stripe_client = client(standin)
    for call in (
        lambda: stripe_client.v1.accounts.retrieve("acct_nope"),
        lambda: stripe_client.v1.transfers.retrieve("tr_nope"),
        lambda: stripe_client.v1.payouts.retrieve("po_nope"),
        lambda: stripe_client.v1.events.retrieve("evt_nope"),
    ):
        with pytest.raises(stripe.InvalidRequestError) as missing:
            call()
        assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
        assert missing.value.error.type == "invalid_request_error" and "No such" in missing.value.user_message


def test_the_error_body_has_stripes_shape(standin):
    answer = post(standin, "/v1/transfers", {"amount": "100", "currency": "usd", "destination": "acct_nope"})
    error = answer.json()["error"]
    assert answer.status_code == 400
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "resource_missing",
        "destination",
    )
    assert error["message"] == "No such account: 'acct_nope'"


def test_unknown_and_missing_parameters_are_refused(standin):
    stripe_client = client(standin)
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        stripe_client.v1.accounts.create(params={**ACCOUNT, "colour": "red"})
    assert (unknown.value.http_status, unknown.value.param) == (400, "colour")
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stripe_client.v1.transfers.create(params={"amount": 100, "currency": "usd"})
    assert (missing.value.code, missing.value.param) == ("parameter_missing", "destination")
    assert standin.objects("account") == []


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer sk_live_123", "Bearer pk_test_123", "Basic c2tfdGVzdF94Og=="],
    ids=["none", "live key", "publishable key", "basic"],
)
def test_calls_without_a_test_secret_key_are_401_and_change_nothing(standin, authorization):
    headers = {"Authorization": authorization} if authorization else {"Authorization": ""}
    answer = post(standin, "/v1/accounts", {"type": "express"}, **headers)
    assert answer.status_code == 401 and answer.json()["error"]["type"] == "invalid_request_error"
    assert standin.objects("account") == []


def test_the_sdk_reports_a_rejected_key_as_an_authentication_error(standin):
    with pytest.raises(stripe.AuthenticationError):
        client(standin, key="sk_live_123").v1.balance.retrieve()


def test_a_server_with_a_set_of_keys_refuses_other_test_keys():
    with StripeStandin(api_keys={"sk_test_ours"}) as standin:
        assert client(standin, key="sk_test_ours").v1.balance.retrieve().object == "balance"
        with pytest.raises(stripe.AuthenticationError):
            client(standin, key="sk_test_theirs").v1.balance.retrieve()


# --- idempotency -----------------------------------------------------------------------


def test_the_same_key_and_params_replay_the_first_answer(standin):
    stripe_client = client(standin)
    once = {"idempotency_key": "enrol-driver-7"}
    first = stripe_client.v1.accounts.create(params=ACCOUNT, options=once)
    second = stripe_client.v1.accounts.create(params=ACCOUNT, options=once)
    assert second.id == first.id and len(standin.objects("account")) == 1
    assert first.last_response.headers.get("Idempotent-Replayed") is None
    assert second.last_response.headers["Idempotent-Replayed"] == "true"


def test_the_same_key_with_other_params_or_another_endpoint_is_an_idempotency_error(standin):
    stripe_client = client(standin)
    once = {"idempotency_key": "enrol-driver-7"}
    stripe_client.v1.accounts.create(params=ACCOUNT, options=once)
    with pytest.raises(stripe.IdempotencyError) as conflict:
        stripe_client.v1.accounts.create(params={**ACCOUNT, "email": "other@example.test"}, options=once)
    assert conflict.value.http_status == 400 and conflict.value.error.type == "idempotency_error"
    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.transfers.create(
            params={"amount": 1, "currency": "usd", "destination": "acct_x"}, options=once
        )
    assert len(standin.objects("account")) == 1


def test_keys_are_per_api_key_and_a_refused_request_keeps_no_result(standin):
    once = {"idempotency_key": "k"}
    client(standin).v1.accounts.create(params=ACCOUNT, options=once)
    client(standin, key="sk_test_other_platform").v1.accounts.create(params=ACCOUNT, options=once)
    assert len(standin.objects("account")) == 2
    # a parameter error is not kept: the corrected request with the same key goes through
    with pytest.raises(stripe.InvalidRequestError):
        client(standin).v1.accounts.create(params={"colour": "red"}, options={"idempotency_key": "k2"})
    client(standin).v1.accounts.create(params=ACCOUNT, options={"idempotency_key": "k2"})
    assert len(standin.objects("account")) == 3


def test_an_error_stripe_ran_into_is_replayed_too(standin):
    stripe_client = client(standin)
    once = {"idempotency_key": "pay-3"}
    params = {"amount": 100, "currency": "usd", "destination": "acct_gone"}
    for _ in range(2):
        with pytest.raises(stripe.InvalidRequestError):
            stripe_client.v1.transfers.create(params=params, options=once)
    assert [c.replayed for c in standin.calls("POST", "/v1/transfers")] == [False, True]


# --- faults ----------------------------------------------------------------------------


def test_a_scripted_500_does_nothing_and_the_next_call_succeeds(standin):
    standin.fault("POST", "/v1/accounts", "error", times=2)
    with pytest.raises(stripe.APIError) as failed:
        client(standin).v1.accounts.create(params=ACCOUNT)
    assert failed.value.http_status == 500 and failed.value.error.type == "api_error"
    assert standin.objects("account") == []
    # the SDK's own retries take the second 500 and then succeed, with one account made
    account = client(standin, retries=2).v1.accounts.create(params=ACCOUNT, options={"idempotency_key": "a"})
    assert [a["id"] for a in standin.objects("account")] == [account.id]
    assert [c.status for c in standin.calls("POST", "/v1/accounts")] == [500, 500, 200]


def test_faults_apply_to_their_method_and_path_only(standin):
    standin.fault("POST", "/v1/transfers*", "error")
    stripe_client = client(standin)
    account = stripe_client.v1.accounts.create(params=ACCOUNT)
    assert stripe_client.v1.accounts.retrieve(account.id).id == account.id
    with pytest.raises(stripe.APIError):
        stripe_client.v1.transfers.create(params={"amount": 1, "currency": "usd", "destination": account.id})
    stripe_client.v1.transfers.create(params={"amount": 1, "currency": "usd", "destination": account.id})
    standin.fault("GET", "/v1/balance", "error", times=5)
    standin.clear_faults()
    assert stripe_client.v1.balance.retrieve().object == "balance"


def test_a_reset_connection_is_a_connection_error_and_does_nothing(standin):
    standin.fault("POST", "/v1/accounts", "reset")
    with pytest.raises(stripe.APIConnectionError):
        client(standin).v1.accounts.create(params=ACCOUNT)
    assert standin.objects("account") == []
    assert client(standin).v1.accounts.create(params=ACCOUNT).object == "account"


def test_a_delay_past_the_client_timeout_is_a_time_out_after_stripe_did_it(standin):
    standin.fault("POST", "/v1/accounts", "delay", seconds=3)
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        client(standin, timeout=0.5).v1.accounts.create(params=ACCOUNT, options={"idempotency_key": "slow"})
    assert time.monotonic() - started < 2.5
    [account] = standin.objects("account")  # Stripe made it; we never heard
    # a retry with the same key gets that account back
    again = client(standin).v1.accounts.create(params=ACCOUNT, options={"idempotency_key": "slow"})
    assert again.id == account["id"] and len(standin.objects("account")) == 1


def test_stopping_the_server_does_not_wait_for_delayed_answers():
    standin = StripeStandin().start()
    standin.fault("GET", "/v1/balance", "delay", seconds=60)
    with pytest.raises(stripe.APIConnectionError):
        client(standin, timeout=0.3).v1.balance.retrieve()
    started = time.monotonic()
    standin.stop()
    assert time.monotonic() - started < 5
