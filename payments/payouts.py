"""Payouts: a driver's balance leaves the ledger for their Stripe Connect account.

Two kinds (payments.Payout.Kind):
- weekly: every positive balance, once a week in each zone's own time (weekly_payouts_run,
  beat every hour: a zone is paid once its local run time of the week has come, see
  SPARK_WEEKLY_PAYOUT_WEEKDAY / SPARK_WEEKLY_PAYOUT_HOUR);
- instant: a cash-out the driver asks for (cashout_quote, then cashout_request), with the
  zone's fee, daily limit and minimum (PayPolicy.cashout_*).

Every payout goes the same way:
1. One transaction creates the Payout row (pending) and posts the ledger under keys from the
   row: "payout:<id>" (the driver's payable accounts -amount, PAYOUT_CLEARING +amount) and for
   a cash-out "payout-fee:<id>" (DRIVER_PAYABLE -fee, FEES +fee). The driver's balance drops at
   once, so the same money cannot be paid out twice. The row's own `idempotency_key` (the week,
   or the driver app's key) makes a repeated request create nothing.
2. After the commit a task (payments.payout_tasks.pay_payout: acks_late, retried with backoff)
   asks Stripe for the transfer with the idempotency key "payout-<id>" (and looks for a
   transfer of the group "payout-<id>" first, for retries after Stripe forgot the key), outside
   any transaction. On success the payout is paid: "payout-paid:<id>" (PAYOUT_CLEARING -amount,
   STRIPE_CLEARING +amount). A cash-out then asks for an instant payout to the bank.
3. A failure that stays failed (Stripe refused, the retries ran out and Stripe has no transfer,
   the transfer was reversed, the instant payout failed) fails the payout: "payout-reversed:<id>"
   posts the opposite of everything posted for it, so the money (fee included) is back in the
   driver's balance, and the driver gets an email (payments.payout_notices).

Statuses only move forward: pending -> paid, pending -> failed, and paid -> failed when Stripe
takes the money back (a reversed transfer, a failed instant payout). Failed is final.
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import stripe
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from drivers.models import Driver
from spark.celery import queue_on_commit
from spark.errors import DomainError
from spark.money import format_cents
from stores.models import Zone

from .contractor.backends import get_backend
from .models import DRIVER_ACCOUNT_KINDS, Account, Entry, Payout, PayoutAccount, PayoutRun
from .payout_notices import payout_failed_notice
from .services import ledger_post, system_account, zone_pay_policy

logger = logging.getLogger(__name__)

Kind = Payout.Kind
Status = Payout.Status

# Stripe errors worth trying again (the network, a 5xx, too many requests, our key being
# rotated); anything else Stripe refused stays refused.
TRANSIENT_ERRORS = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError, stripe.AuthenticationError)


class PayoutRefused(DomainError):
    status_code = 409
    code = "payout_refused"


def driver_account(*, driver, kind: str) -> Account:
    """The driver's DRIVER_PAYABLE or TIPS_PAYABLE account, created on first use."""
    if kind not in DRIVER_ACCOUNT_KINDS:
        raise ValueError(f"{kind} is not a driver's account")
    label = "Payable to driver" if kind == Account.Kind.DRIVER_PAYABLE else "Tips payable to driver"
    account, _ = Account.objects.get_or_create(kind=kind, driver=driver, defaults={"name": f"{label} {driver.pk}"})
    return account


def _account_balances(driver) -> dict[str, int]:
    rows = (
        Entry.objects.filter(account__driver=driver, account__kind__in=DRIVER_ACCOUNT_KINDS)
        .values("account__kind")
        .annotate(total=Sum("amount_cents"))
    )
    return {row["account__kind"]: int(row["total"] or 0) for row in rows}


def _lock_driver_money(driver) -> tuple[Account, Account]:
    """Both payable accounts of `driver`, the earnings one locked: payouts of one driver run
    one at a time, so a balance is never paid out twice."""
    payable = driver_account(driver=driver, kind=Account.Kind.DRIVER_PAYABLE)
    tips = driver_account(driver=driver, kind=Account.Kind.TIPS_PAYABLE)
    Account.objects.select_for_update().filter(pk=payable.pk).get()
    return payable, tips


def _debits(driver, amount: int, payable: Account, tips: Account) -> list[tuple[Account, int]]:
    """Entries taking `amount` from the driver's balance: earnings first, then tips; a payout of
    the whole balance empties both accounts."""
    balances = _account_balances(driver)
    earned, tipped = balances.get(Account.Kind.DRIVER_PAYABLE, 0), balances.get(Account.Kind.TIPS_PAYABLE, 0)
    if amount == earned + tipped:
        parts = [(payable, -earned), (tips, -tipped)]
    else:
        from_earned = min(amount, max(earned, 0))
        parts = [(payable, -from_earned), (tips, -(amount - from_earned))]
    return [(account, cents) for account, cents in parts if cents]


def _payout_create(*, driver, kind: str, amount: int, fee: int, key: str, payable: Account, tips: Account) -> Payout:
    """In the caller's transaction, holding the driver's lock."""
    payout = Payout.objects.create(driver=driver, kind=kind, amount_cents=amount, fee_cents=fee, idempotency_key=key)
    clearing = system_account(kind=Account.Kind.PAYOUT_CLEARING)
    ledger_post(
        idempotency_key=f"payout:{payout.pk}",
        kind="payout",
        entries=[*_debits(driver, amount, payable, tips), (clearing, amount)],
        memo=f"{payout.get_kind_display()} payout {payout.pk} to driver {driver.pk}",
    )
    if fee:
        ledger_post(
            idempotency_key=f"payout-fee:{payout.pk}",
            kind="payout_fee",
            entries=[(payable, -fee), (system_account(kind=Account.Kind.FEES), fee)],
            memo=f"Cash-out fee of payout {payout.pk}",
        )
    from . import payout_tasks  # the tasks module imports this one

    queue_on_commit(payout_tasks.pay_payout, payout.pk)
    return payout


# --- Payouts enabled ----------------------------------------------------------------------


def payouts_enabled(driver) -> bool:
    """Whether money can go to the driver: the sandbox always (test payments); with Stripe,
    when their Connect account has payouts enabled as Stripe last told us."""
    if get_backend().name == "sandbox":
        return True
    return PayoutAccount.objects.filter(driver=driver, payouts_enabled=True).exists()


# --- Instant cash-out ---------------------------------------------------------------------


@dataclass(frozen=True)
class CashoutQuote:
    """What a cash-out right now would do, for the screen that confirms it (all in cents).
    `payout_cents` reaches the bank; `fee_cents` is taken from the balance on top of it."""

    available_cents: int
    fee_cents: int
    payout_cents: int
    min_cents: int
    remaining_today_cents: int
    allowed: bool
    reason: str
    # For screens that say it in the driver's language: "", "not_enabled", "empty",
    # "daily_limit" or "below_minimum" (also the PayoutRefused code of cashout_request).
    reason_code: str = ""


def _local_day_start(driver, now: datetime) -> datetime:
    tz = ZoneInfo(driver.home_zone.timezone)
    return datetime.combine(timezone.localtime(now, tz).date(), time.min, tzinfo=tz)


def cashed_out_today_cents(*, driver, now: datetime | None = None) -> int:
    """What the driver cashed out since midnight in their zone, failed cash-outs aside."""
    now = now or timezone.now()
    total = (
        Payout.objects.filter(driver=driver, kind=Kind.INSTANT, created_at__gte=_local_day_start(driver, now))
        .exclude(status=Status.FAILED)
        .aggregate(s=Sum("amount_cents"))["s"]
    )
    return int(total or 0)


def cashout_quote(driver, *, now: datetime | None = None) -> CashoutQuote:
    """The cash-out the driver can have now. The payout is the balance less the fee, capped at
    what is left of the daily limit; `reason` says in words why it is not allowed."""
    from .selectors import driver_balance_cents

    policy = zone_pay_policy(zone=driver.home_zone)
    available = driver_balance_cents(driver=driver)
    fee = policy.cashout_fee_cents
    remaining = max(0, policy.cashout_daily_limit_cents - cashed_out_today_cents(driver=driver, now=now))
    payout = max(0, min(available - fee, remaining))
    reason = code = ""
    if not payouts_enabled(driver):
        code, reason = "not_enabled", "Set up payouts first: add your bank account on the Payouts page."
    elif available <= 0:
        code, reason = "empty", "Your balance is empty: there is nothing to cash out."
    elif remaining <= 0:
        code = "daily_limit"
        reason = f"You reached today's cash-out limit of {format_cents(policy.cashout_daily_limit_cents)}."
    elif payout < policy.cashout_min_cents:
        code = "below_minimum"
        reason = (
            f"A cash-out is at least {format_cents(policy.cashout_min_cents)} after the "
            f"{format_cents(fee)} fee; your balance is {format_cents(available)}."
        )
    return CashoutQuote(
        available_cents=available,
        fee_cents=fee,
        payout_cents=payout if not reason else 0,
        min_cents=policy.cashout_min_cents,
        remaining_today_cents=remaining,
        allowed=not reason,
        reason=reason,
        reason_code=code,
    )


def cashout_request(driver, idempotency_key: str) -> Payout:
    """Cash out what cashout_quote offers now. `idempotency_key` comes from the driver app (one
    per confirmation screen): sending the same confirmation twice returns the same payout.
    Refused (PayoutRefused, nothing changed) below the minimum, past the daily limit, with
    nothing to pay, or before payouts are set up."""
    key = (idempotency_key or "").strip()
    if not key or len(key) > 64:
        raise PayoutRefused("A cash-out needs an idempotency key of 1 to 64 characters.", code="bad_key")
    row_key = f"cashout:{driver.pk}:{key}"
    with transaction.atomic():
        payable, tips = _lock_driver_money(driver)
        existing = Payout.objects.filter(idempotency_key=row_key).first()
        if existing is not None:
            return existing
        quote = cashout_quote(driver)
        if not quote.allowed:
            raise PayoutRefused(quote.reason, code=quote.reason_code)
        return _payout_create(
            driver=driver,
            kind=Kind.INSTANT,
            amount=quote.payout_cents,
            fee=quote.fee_cents,
            key=row_key,
            payable=payable,
            tips=tips,
        )


def payout_history(driver) -> QuerySet[Payout]:
    """The driver's payouts, newest first."""
    return Payout.objects.filter(driver=driver).order_by("-created_at", "-pk")


# --- Weekly payouts -----------------------------------------------------------------------


def week_of(moment: datetime, tz: ZoneInfo) -> date:
    """The local Monday of the week `moment` falls in."""
    local = timezone.localtime(moment, tz).date()
    return local - timedelta(days=local.weekday())


def zone_run_due(zone: Zone, now: datetime) -> date | None:
    """The week whose payout run is due in `zone` at `now` (its local weekday and hour have
    come), or None before that time of the week."""
    tz = ZoneInfo(zone.timezone)
    week = week_of(now, tz)
    run_at = datetime.combine(
        week + timedelta(days=settings.SPARK_WEEKLY_PAYOUT_WEEKDAY), time(settings.SPARK_WEEKLY_PAYOUT_HOUR), tzinfo=tz
    )
    return week if now >= run_at else None


def weekly_payout_create(*, driver, week: date) -> Payout | None:
    """Pay out the driver's whole positive balance for `week`, once ("weekly:<driver>:<week>").
    None when there is nothing to pay, payouts are not set up, or it was paid already."""
    if not payouts_enabled(driver):
        return None
    from .selectors import driver_balance_cents

    key = f"weekly:{driver.pk}:{week.isoformat()}"
    with transaction.atomic():
        payable, tips = _lock_driver_money(driver)
        if Payout.objects.filter(idempotency_key=key).exists():
            return None
        balance = driver_balance_cents(driver=driver)
        if balance <= 0:
            return None
        return _payout_create(
            driver=driver, kind=Kind.WEEKLY, amount=balance, fee=0, key=key, payable=payable, tips=tips
        )


def weekly_payouts_run(*, now: datetime | None = None) -> dict:
    """Beat, hourly: each zone whose weekly run time has come and whose run of the week has not
    finished pays every driver of the zone with a positive balance. Safe to run any number of
    times; a run cut short is carried on by the next."""
    now = now or timezone.now()
    summary = {"zones": 0, "payouts": 0, "total_cents": 0}
    for zone in Zone.objects.order_by("pk"):
        week = zone_run_due(zone, now)
        if week is None:
            continue
        run, _ = PayoutRun.objects.get_or_create(zone=zone, week_of=week)
        if run.finished_at is not None:
            continue
        summary["zones"] += 1
        count, total = run.payouts, run.total_cents
        drivers = (
            Driver.objects.filter(home_zone=zone)
            .filter(Q(pk__in=Entry.objects.filter(account__kind__in=DRIVER_ACCOUNT_KINDS).values("account__driver")))
            .select_related("home_zone")
            .order_by("pk")
        )
        for driver in drivers:
            payout = weekly_payout_create(driver=driver, week=week)
            if payout is not None:
                count, total = count + 1, total + payout.amount_cents
                summary["payouts"] += 1
                summary["total_cents"] += payout.amount_cents
        PayoutRun.objects.filter(pk=run.pk).update(finished_at=timezone.now(), payouts=count, total_cents=total)
    return summary


# --- Sending a payout (the task's work) ----------------------------------------------------


def payout_mark_paid(*, payout_id: int, transfer_id: str) -> bool:
    """The transfer exists: pending -> paid and "payout-paid:<id>" posted. False (nothing done)
    when the payout is no longer pending."""
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout_id)
        if payout.status != Status.PENDING:
            return False
        payout.status, payout.external_id, payout.paid_at = Status.PAID, transfer_id, timezone.now()
        payout.save(update_fields=["status", "external_id", "paid_at"])
        ledger_post(
            idempotency_key=f"payout-paid:{payout.pk}",
            kind="payout_paid",
            entries=[
                (system_account(kind=Account.Kind.PAYOUT_CLEARING), -payout.amount_cents),
                (system_account(kind=Account.Kind.STRIPE_CLEARING), payout.amount_cents),
            ],
            memo=f"Transfer {transfer_id} of payout {payout.pk}",
        )
    return True


def payout_fail(*, payout_id: int, reason: str) -> bool:
    """The payout stays failed: the opposite of everything posted for it is posted once
    ("payout-reversed:<id>"), so the money, fee included, is back in the driver's balance, and
    the driver is told. False (nothing done) when it had failed already."""
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout_id)
        if payout.status == Status.FAILED:
            return False
        payout.status, payout.failure_reason = Status.FAILED, reason[:255]
        payout.save(update_fields=["status", "failure_reason"])
        keys = [f"payout:{payout.pk}", f"payout-fee:{payout.pk}", f"payout-paid:{payout.pk}"]
        net = (
            Entry.objects.filter(transaction__idempotency_key__in=keys)
            .values("account")
            .annotate(total=Sum("amount_cents"))
        )
        accounts = Account.objects.in_bulk([row["account"] for row in net])
        entries = [(accounts[row["account"]], -int(row["total"])) for row in net if row["total"]]
        if entries:
            ledger_post(
                idempotency_key=f"payout-reversed:{payout.pk}",
                kind="payout_reversed",
                entries=entries,
                memo=f"Payout {payout.pk} failed: {reason}"[:255],
            )
        payout_failed_notice(payout)
    logger.warning("Payout %s failed: %s", payout_id, reason)
    return True


def _send_instant(payout: Payout, backend) -> str:
    """The cash-out's instant payout from the driver's account to their bank, once."""
    if payout.stripe_payout_id:
        return "paid"
    try:
        stripe_payout_id = backend.instant_payout(payout)
    except TRANSIENT_ERRORS:
        raise
    except stripe.StripeError as exc:
        # The money is in the driver's Stripe account and reaches the bank on Stripe's standard
        # schedule: the transfer stands, the fee for "instant" is given back.
        why = exc.user_message or exc.code or "error"
        note = f"Instant payout refused by Stripe ({why}); sent on the standard schedule"
        with transaction.atomic():
            Payout.objects.filter(pk=payout.pk).update(stripe_payout_id="standard", failure_reason=note[:255])
            if payout.fee_cents:
                ledger_post(
                    idempotency_key=f"payout-fee-refund:{payout.pk}",
                    kind="payout_fee_refund",
                    entries=[
                        (system_account(kind=Account.Kind.FEES), -payout.fee_cents),
                        (driver_account(driver=payout.driver, kind=Account.Kind.DRIVER_PAYABLE), payout.fee_cents),
                    ],
                    memo=f"Fee of payout {payout.pk} given back: no instant payout",
                )
        return "paid"
    Payout.objects.filter(pk=payout.pk, stripe_payout_id="").update(stripe_payout_id=stripe_payout_id)
    return "paid"


def payout_send(*, payout_id: int, final_try: bool = False) -> str:
    """Make the transfer of a pending payout (outside any transaction; called by the task).
    Returns the payout's status. A transient Stripe error is raised for the task to retry; on
    the final try the payout fails if Stripe has no transfer for it, and stays pending (for the
    sweeper) if Stripe cannot tell."""
    payout = Payout.objects.select_related("driver").get(pk=payout_id)
    backend = get_backend()
    if payout.status == Status.PENDING:
        transfer_id: str | None
        try:
            transfer_id = backend.transfer(payout)
        except TRANSIENT_ERRORS as exc:
            if not final_try:
                raise
            try:
                transfer_id = backend.find_transfer(payout)
            except TRANSIENT_ERRORS:
                logger.error("Payout %s: Stripe unreachable after the retries; left pending for the sweeper", payout_id)
                return Status.PENDING
            if transfer_id is None:
                payout_fail(payout_id=payout_id, reason=f"Stripe did not answer ({type(exc).__name__})")
                return Status.FAILED
        except stripe.StripeError as exc:
            payout_fail(payout_id=payout_id, reason=f"Refused by Stripe: {exc.user_message or exc.code or exc}")
            return Status.FAILED
        if transfer_id is not None:
            payout_mark_paid(payout_id=payout_id, transfer_id=transfer_id)
        payout.refresh_from_db()
    if payout.status == Status.PAID and payout.kind == Kind.INSTANT and backend.name != "sandbox":
        try:
            return _send_instant(payout, backend)
        except TRANSIENT_ERRORS:
            if final_try:
                logger.error("Payout %s: instant payout not asked for; the sweeper tries again", payout_id)
                return Status.PAID
            raise
    return payout.status


def payout_return(*, payout_id: int, reason: str) -> str:
    """Stripe failed to pay the driver's bank (an instant payout failed): take the transfer back
    (outside any transaction), then fail the payout so the money is back in the balance."""
    payout = Payout.objects.select_related("driver").get(pk=payout_id)
    if payout.status == Status.FAILED:
        return Status.FAILED
    if payout.external_id:
        get_backend().reverse_transfer(payout)
    payout_fail(payout_id=payout_id, reason=reason)
    return Status.FAILED


PENDING_SWEEP_AFTER = timedelta(minutes=30)


def pending_payouts_sweep(*, now: datetime | None = None) -> int:
    """Beat safety net: queue again the payouts pending for a while (a lost task, Stripe down
    past the retries) and cash-outs whose instant payout was not asked for. Returns how many."""
    now = now or timezone.now()
    stale = Payout.objects.filter(created_at__lt=now - PENDING_SWEEP_AFTER).filter(
        Q(status=Status.PENDING) | Q(status=Status.PAID, kind=Kind.INSTANT, stripe_payout_id="")
    )
    if get_backend().name == "sandbox":
        stale = stale.filter(status=Status.PENDING)
    from . import payout_tasks

    ids = list(stale.values_list("pk", flat=True)[:500])
    for payout_id in ids:
        queue_on_commit(payout_tasks.pay_payout, payout_id)
    return len(ids)
