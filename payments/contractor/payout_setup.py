"""The driver's payout set-up (contractor module, second half): their Stripe Connect Express
account gets a bank account and identity details through Stripe's onboarding pages, reached by
a one-time account link; whether payouts are enabled and what Stripe still needs is kept on
payments.PayoutAccount (the driver's Payouts page, the driver admin, payments.payouts).

Stripe is called outside any transaction. With the sandbox backend there is nothing to set up:
payouts are test payments in the ledger only, and the page says so.
"""

from dataclasses import dataclass

from django.utils import timezone

from payments.models import PayoutAccount
from spark.errors import DomainError

from .backends import AccountStatus, get_backend


class PayoutSetupUnavailable(DomainError):
    status_code = 409
    code = "payout_setup_unavailable"


@dataclass(frozen=True)
class PayoutSetup:
    """What the Payouts page shows."""

    sandbox: bool
    has_account: bool  # the contractor firm enrolled the driver (a Connect account exists)
    payouts_enabled: bool
    requirements_due: list[str]
    updated_at: object  # when Stripe last told us, or None


def payout_account_store(*, driver, status: AccountStatus) -> PayoutAccount:
    """Keep what Stripe said about the driver's account."""
    account, _ = PayoutAccount.objects.update_or_create(
        driver=driver,
        defaults={
            "account_id": status.account_id,
            "payouts_enabled": status.payouts_enabled,
            "details_submitted": status.details_submitted,
            "requirements_due": status.requirements_due,
            "disabled_reason": status.disabled_reason[:64],
            "updated_at": timezone.now(),
        },
    )
    return account


def payout_account_refresh(*, driver) -> PayoutAccount | None:
    """Ask Stripe for the account's status now and keep it (the driver is back from Stripe's
    pages, or opened Payouts). None when the driver has no Connect account yet."""
    if not driver.contractor_id or get_backend().name == "sandbox":
        return None
    return payout_account_store(driver=driver, status=get_backend().account_status(driver))


def payout_setup_status(*, driver) -> PayoutSetup:
    """What we know of the driver's payout set-up, without calling Stripe."""
    sandbox = get_backend().name == "sandbox"
    account = PayoutAccount.objects.filter(driver=driver).first()
    return PayoutSetup(
        sandbox=sandbox,
        has_account=bool(driver.contractor_id),
        payouts_enabled=sandbox or bool(account and account.payouts_enabled),
        requirements_due=list(account.requirements_due) if account and not sandbox else [],
        updated_at=account.updated_at if account else None,
    )


def payout_setup_link(*, driver, return_url: str, refresh_url: str) -> str:
    """A one-time link to Stripe's onboarding for the driver's account (it expires within
    minutes: make one per click). Refused before the driver has an account, and in sandbox."""
    backend = get_backend()
    if backend.name == "sandbox":
        raise PayoutSetupUnavailable("Test payments: there is no bank account to set up.", code="sandbox")
    if not driver.contractor_id:
        raise PayoutSetupUnavailable(
            "Your payout account is created once your application is submitted; try again later.", code="no_account"
        )
    return backend.account_link(driver, return_url, refresh_url)


def payout_account_summary(driver) -> str:
    """One line for ops (the driver admin): sandbox, not enrolled, enabled, or what is due."""
    if get_backend().name == "sandbox":
        return "Test payments (sandbox)"
    if not driver.contractor_id:
        return "No Connect account yet"
    try:
        account = driver.payout_account
    except PayoutAccount.DoesNotExist:
        return "Not checked with Stripe yet"
    if account.payouts_enabled:
        return "Payouts enabled"
    due = ", ".join(account.requirements_due) or account.disabled_reason or "onboarding not finished"
    return f"Not enabled: {due}"
