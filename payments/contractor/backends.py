"""Backends of the contractor module, chosen by settings.SPARK_PAYMENT_BACKEND.

"stripe": each driver is a Stripe Connect Express account (payouts will go to it).
"sandbox": no network, clearly labelled fake ids ("sandbox_acct_<driver id>") for the
embedded default and tests; production settings refuse it.

Backends make network calls: call them outside any database transaction (DESIGN rule 4);
services.contractor_enrol is the only caller.
"""

from typing import Protocol

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class ContractorBackend(Protocol):
    name: str

    def enrol(self, driver) -> str:
        """Make `driver` a contractor and return the contractor id. Safe to call twice."""
        ...


class StripeBackend:
    name = "stripe"
    # Stripe answers in about a second; past this the call counts as lost. The SDK then retries
    # it (and any 5xx or dropped connection) with the same idempotency key, so a call Stripe did
    # carry out is replayed rather than done twice; past the retries the sweeper tries again.
    timeout_seconds: float = 30
    max_network_retries = 2

    def _client(self) -> stripe.StripeClient:
        # STRIPE_API_BASE is api.stripe.com but for local stand-ins (tests, development).
        return stripe.StripeClient(
            settings.STRIPE_SECRET_KEY,
            base_addresses={"api": settings.STRIPE_API_BASE},
            max_network_retries=self.max_network_retries,
            http_client=stripe.RequestsClient(timeout=self.timeout_seconds),
        )

    def enrol(self, driver) -> str:
        # The idempotency key comes from our own row: a retry (task redelivered, sweeper and
        # task both running) gets the same account back instead of a second one. Stripe keeps
        # keys for 24 h; the guarded store in services.contractor_enrol covers the rest.
        account = self._client().v1.accounts.create(
            params={
                "type": "express",
                "country": "US",
                "email": driver.user.email,
                "capabilities": {"transfers": {"requested": True}},
                "business_type": "individual",
                "metadata": {"driver_id": str(driver.pk)},
            },
            options={"idempotency_key": f"enrol-driver-{driver.pk}"},
        )
        return account.id


class SandboxBackend:
    """No money moves and nothing leaves the machine; ids say so."""

    name = "sandbox"

    def enrol(self, driver) -> str:
        return f"sandbox_acct_{driver.pk}"


BACKENDS: dict[str, type] = {"stripe": StripeBackend, "sandbox": SandboxBackend}


def get_backend() -> ContractorBackend:
    name = settings.SPARK_PAYMENT_BACKEND
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ImproperlyConfigured(
            f"SPARK_PAYMENT_BACKEND must be one of {', '.join(sorted(BACKENDS))}, not {name!r}."
        ) from None
