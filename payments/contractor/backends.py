"""Backends of the contractor module, chosen by settings.SPARK_PAYMENT_BACKEND.

"stripe": each driver is a Stripe Connect Express account; payouts are transfers to it
(an instant cash-out also asks Stripe for an instant payout from it to the driver's bank).
"sandbox": no network, clearly labelled fake ids ("sandbox_acct_<driver id>",
"sandbox_tr_<payout id>") for the embedded default and tests; money moves in our ledger only.
Production settings refuse it.

Backends make network calls: call them outside any database transaction (DESIGN rule 4).
Callers: services.contractor_enrol, payout_setup (onboarding link, account status) and
payments.payouts (transfers, reconciliation).
"""

from dataclasses import dataclass, field
from typing import Any, Protocol

import stripe
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class AccountStatus:
    """What Stripe says about a driver's connected account."""

    account_id: str
    payouts_enabled: bool
    details_submitted: bool
    requirements_due: list[str] = field(default_factory=list)
    disabled_reason: str = ""


@dataclass(frozen=True)
class TransferInfo:
    """A transfer as Stripe holds it (reconciliation, webhooks)."""

    id: str
    amount_cents: int
    amount_reversed_cents: int
    destination: str
    payout_id: int | None  # ours, from the transfer's metadata


class ContractorBackend(Protocol):
    name: str

    def enrol(self, driver) -> str:
        """Make `driver` a contractor and return the contractor id. Safe to call twice."""
        ...

    def account_link(self, driver, return_url: str, refresh_url: str) -> str:
        """A one-time link to the driver's Connect onboarding (bank account, identity)."""
        ...

    def account_status(self, driver) -> AccountStatus: ...

    def transfer(self, payout) -> str:
        """Send `payout` to the driver's account; returns the transfer id. Safe to call twice."""
        ...

    def find_transfer(self, payout) -> str | None:
        """The transfer already made for `payout`, if any."""
        ...

    def instant_payout(self, payout) -> str:
        """Ask for an instant payout of `payout`'s amount from the driver's account to their bank."""
        ...

    def retrieve_transfer(self, transfer_id: str) -> TransferInfo: ...

    def retrieve_payout(self, payout_id: str, account: str):
        """A Stripe payout of a connected account, as Stripe holds it now."""
        ...

    def reverse_transfer(self, payout) -> str:
        """Take `payout`'s transfer back in full (its money returned to us). Safe to call twice."""
        ...

    def list_transfers(self, *, created_since: int) -> list[TransferInfo]: ...


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

    def account_link(self, driver, return_url: str, refresh_url: str) -> str:
        link = self._client().v1.account_links.create(
            params={
                "account": driver.contractor_id,
                "type": "account_onboarding",
                "return_url": return_url,
                "refresh_url": refresh_url,
            }
        )
        return link.url

    def account_status(self, driver) -> AccountStatus:
        account = self._client().v1.accounts.retrieve(driver.contractor_id)
        return account_status_from(account)

    def transfer(self, payout) -> str:
        # The key comes from our payout row: a retry (timeout, redelivered task, the sweeper)
        # replays Stripe's first answer instead of sending the money twice. Stripe forgets keys
        # after 24 h, so the transfer group (also ours) is looked up first.
        found = self.find_transfer(payout)
        if found:
            return found
        transfer = self._client().v1.transfers.create(
            params={
                "amount": payout.amount_cents,
                "currency": "usd",
                "destination": payout.driver.contractor_id,
                "transfer_group": transfer_group(payout),
                "description": f"Spark {payout.get_kind_display().lower()} payout",
                "metadata": {"spark_payout_id": str(payout.pk), "driver_id": str(payout.driver_id)},
            },
            options={"idempotency_key": f"payout-{payout.pk}"},
        )
        return transfer.id

    def find_transfer(self, payout) -> str | None:
        found = self._client().v1.transfers.list(params={"transfer_group": transfer_group(payout), "limit": 1})
        return found.data[0].id if found.data else None

    def instant_payout(self, payout) -> str:
        stripe_payout = self._client().v1.payouts.create(
            params={
                "amount": payout.amount_cents,
                "currency": "usd",
                "method": "instant",
                "metadata": {"spark_payout_id": str(payout.pk)},
            },
            options={"idempotency_key": f"payout-{payout.pk}-instant", "stripe_account": payout.driver.contractor_id},
        )
        return stripe_payout.id

    def retrieve_transfer(self, transfer_id: str) -> TransferInfo:
        return transfer_info_from(self._client().v1.transfers.retrieve(transfer_id))

    def retrieve_payout(self, payout_id: str, account: str) -> dict:
        return _plain(self._client().v1.payouts.retrieve(payout_id, options={"stripe_account": account}))

    def reverse_transfer(self, payout) -> str:
        client = self._client()
        transfer = client.v1.transfers.retrieve(payout.external_id)
        if transfer.amount_reversed >= transfer.amount:
            return transfer.id
        client.v1.transfers.reversals.create(
            payout.external_id,
            params={"metadata": {"spark_payout_id": str(payout.pk)}},
            options={"idempotency_key": f"payout-{payout.pk}-reversal"},
        )
        return transfer.id

    def list_transfers(self, *, created_since: int) -> list[TransferInfo]:
        transfers, after = [], None
        client = self._client()
        while True:
            params: Any = {"limit": 100, "created": {"gte": created_since}}
            if after:
                params["starting_after"] = after
            page = client.v1.transfers.list(params=params)
            transfers += [transfer_info_from(t) for t in page.data]
            if not page.has_more or not page.data:
                return transfers
            after = page.data[-1].id


def transfer_group(payout) -> str:
    return f"payout-{payout.pk}"


def _plain(obj) -> dict:
    """A Stripe object as a plain dict (the SDK's objects are not dicts)."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def account_status_from(account) -> AccountStatus:
    """An AccountStatus from a Stripe account object (the API's, or an event's copy)."""
    account = _plain(account)
    requirements = account.get("requirements") or {}
    return AccountStatus(
        account_id=account["id"],
        payouts_enabled=bool(account.get("payouts_enabled")),
        details_submitted=bool(account.get("details_submitted")),
        requirements_due=list(requirements.get("currently_due") or []),
        disabled_reason=requirements.get("disabled_reason") or "",
    )


def transfer_info_from(transfer) -> TransferInfo:
    transfer = _plain(transfer)
    metadata = transfer.get("metadata") or {}
    raw = str(metadata.get("spark_payout_id") or "")
    return TransferInfo(
        id=transfer["id"],
        amount_cents=int(transfer["amount"]),
        amount_reversed_cents=int(transfer.get("amount_reversed") or 0),
        destination=str(transfer.get("destination") or ""),
        payout_id=int(raw) if raw.isdigit() and len(raw) < 19 else None,
    )


class SandboxBackend:
    """No money moves and nothing leaves the machine; ids say so. Payouts are "paid" at once:
    the money moves in our ledger only (every money screen says "test payments")."""

    name = "sandbox"

    def enrol(self, driver) -> str:
        return f"sandbox_acct_{driver.pk}"

    def account_link(self, driver, return_url: str, refresh_url: str) -> str:
        return return_url  # nothing to set up: test payments

    def account_status(self, driver) -> AccountStatus:
        return AccountStatus(
            account_id=driver.contractor_id or f"sandbox_acct_{driver.pk}", payouts_enabled=True, details_submitted=True
        )

    def transfer(self, payout) -> str:
        return f"sandbox_tr_{payout.pk}"

    def find_transfer(self, payout) -> str | None:
        return None

    def instant_payout(self, payout) -> str:
        return f"sandbox_po_{payout.pk}"

    def retrieve_transfer(self, transfer_id: str) -> TransferInfo:
        raise LookupError("The sandbox keeps no transfers.")

    def retrieve_payout(self, payout_id: str, account: str):
        raise LookupError("The sandbox keeps no payouts.")

    def reverse_transfer(self, payout) -> str:
        return payout.external_id

    def list_transfers(self, *, created_since: int) -> list[TransferInfo]:
        return []


BACKENDS: dict[str, type] = {"stripe": StripeBackend, "sandbox": SandboxBackend}


def get_backend() -> ContractorBackend:
    name = settings.SPARK_PAYMENT_BACKEND
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ImproperlyConfigured(
            f"SPARK_PAYMENT_BACKEND must be one of {', '.join(sorted(BACKENDS))}, not {name!r}."
        ) from None
