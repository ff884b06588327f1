"""Fixtures shared by this folder's test modules."""

import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import stripe

from outbox.services import messages_send_due
from payments import tasks


@pytest.fixture
def queued(monkeypatch):
    """Celery tasks queued on commit, recorded instead of sent to the broker."""
    sent = []
    monkeypatch.setattr(
        tasks.enrol_contractor,
        "apply_async",
        lambda args=(), kwargs=None, countdown=None, **options: sent.append(("enrol_contractor", args)),
    )
    return sent


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """`with commit():` runs what the code queued for after the commit (tasks), then sends what
    it owes through the outbox, as the outbox's worker does."""

    @contextmanager
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            yield
        messages_send_due()

    return run


# --- localstripe (PaymentIntents, customers) ---------------------------------------------------


class LocalStripe:
    """A localstripe server (GPL: run as its own process, never imported) and the real Stripe SDK
    pointed at it, to make the customers and saved cards a store's e-commerce would send."""

    api_key = "sk_test_localstripe"

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = stripe.StripeClient(self.api_key, base_addresses={"api": url})

    def saved_card(self, number: str = "4242424242424242") -> tuple[str, str]:
        """(customer id, payment method id) of a card saved to a new customer. 4000000000000341
        saves fine and is declined when charged."""
        customer = self.client.v1.customers.create(params={"email": "customer@example.test"})
        card = {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}
        method = self.client.v1.payment_methods.create(params={"type": "card", "card": card})  # type: ignore[typeddict-item]
        self.client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
        return customer.id, method.id

    def payment_intent(self, pi_id: str) -> dict:
        return self.client.v1.payment_intents.retrieve(pi_id).to_dict()

    def cancel(self, pi_id: str) -> None:
        self.client.v1.payment_intents.cancel(pi_id)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def _localstripe_server():
    binary = Path(sys.executable).parent / "localstripe"
    if not binary.exists():
        pytest.skip("localstripe is not installed in the virtualenv")
    port = _free_port()
    # --from-scratch: localstripe keeps its objects in one fixed file, /tmp/localstripe.pickle,
    # shared by every localstripe on the machine; loading another run's half-written copy
    # crashes it. Started from scratch, each server keeps its own objects in memory.
    proc = subprocess.Popen(
        [str(binary), "--port", str(port), "--from-scratch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("localstripe exited at start")
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("localstripe did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def localstripe(_localstripe_server, settings):
    """The Stripe payment backend pointed at localstripe for this test."""
    settings.SPARK_PAYMENT_BACKEND = "stripe"
    settings.STRIPE_SECRET_KEY = LocalStripe.api_key
    settings.STRIPE_API_BASE = _localstripe_server
    return LocalStripe(_localstripe_server)
