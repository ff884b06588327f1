"""The daily reconciliation: the ledger, our payouts and Stripe agree, or ops hear of it.

Checks (each difference is one sentence ops can act on):
1. the ledger balances: every transaction sums to zero, and so does the whole ledger;
2. PAYOUT_CLEARING holds exactly the pending payouts (paid ones moved on to STRIPE_CLEARING,
   failed ones were reversed);
3. every payout has its ledger entries: "payout:<id>" for its amount; a paid one
   "payout-paid:<id>", a failed one "payout-reversed:<id>" (when anything was posted);
4. with Stripe (not the sandbox): every payout paid in the last SPARK_RECONCILE_DAYS days has
   its transfer at Stripe for the same amount and not reversed, and every transfer of ours at
   Stripe belongs to a paid payout.

Stripe is read (transfers listed) before the database, outside any transaction. The result is
a Reconciliation row; differences are logged and emailed to every active staff user through
the outbox (payments.payout_notices).
"""

import logging
from datetime import timedelta

import stripe
from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from .contractor.backends import TransferInfo, get_backend
from .models import Account, Entry, LedgerTransaction, Payout, Reconciliation
from .payout_notices import reconciliation_report_notice
from .selectors import ledger_total_cents

logger = logging.getLogger(__name__)


def _ledger_differences() -> list[str]:
    differences = []
    total = ledger_total_cents()
    if total != 0:
        differences.append(f"The ledger does not sum to zero: it is off by {total} cents.")
    unbalanced = (
        LedgerTransaction.objects.annotate(total=Sum("entries__amount_cents"))
        .filter(~Q(total=0) | Q(total__isnull=True))
        .values_list("idempotency_key", "total")[:50]
    )
    for key, amount in unbalanced:
        differences.append(f"Ledger transaction {key} does not balance (sums to {amount or 0} cents).")
    return differences


def _account_total(kind: str) -> int:
    return int(Entry.objects.filter(account__kind=kind).aggregate(s=Sum("amount_cents"))["s"] or 0)


def _entry_amount(key: str, kind: str) -> int | None:
    total = Entry.objects.filter(transaction__idempotency_key=key, account__kind=kind).aggregate(s=Sum("amount_cents"))[
        "s"
    ]
    return None if total is None else int(total)


def _payout_differences() -> tuple[list[str], dict]:
    differences = []
    pending = int(Payout.objects.filter(status=Payout.Status.PENDING).aggregate(s=Sum("amount_cents"))["s"] or 0)
    clearing = _account_total(Account.Kind.PAYOUT_CLEARING)
    if clearing != pending:
        differences.append(
            f"Payouts in transit (PAYOUT_CLEARING) hold {clearing} cents; pending payouts add up to {pending} cents."
        )
    keys = set(
        LedgerTransaction.objects.filter(idempotency_key__startswith="payout").values_list("idempotency_key", flat=True)
    )
    payouts = Payout.objects.only("pk", "status", "amount_cents")
    for payout in payouts.iterator():
        pk = payout.pk
        if f"payout:{pk}" not in keys:
            differences.append(f"Payout {pk} ({payout.status}) has no ledger entries (payout:{pk}).")
            continue
        posted = _entry_amount(f"payout:{pk}", Account.Kind.PAYOUT_CLEARING)
        if posted != payout.amount_cents:
            differences.append(f"Payout {pk} is for {payout.amount_cents} cents but its ledger entry is {posted}.")
        if payout.status == Payout.Status.PAID and f"payout-paid:{pk}" not in keys:
            differences.append(f"Payout {pk} is paid but its transfer is not in the ledger (payout-paid:{pk}).")
        if payout.status == Payout.Status.FAILED and f"payout-reversed:{pk}" not in keys:
            differences.append(f"Payout {pk} failed but its money was not put back (payout-reversed:{pk}).")
    return differences, {"pending_payouts_cents": pending, "payout_clearing_cents": clearing}


def _stripe_differences(transfers: list[TransferInfo], since) -> list[str]:
    differences = []
    by_payout = {t.payout_id: t for t in transfers if t.payout_id is not None}
    paid = Payout.objects.filter(status=Payout.Status.PAID, paid_at__gte=since).only(
        "pk", "amount_cents", "external_id"
    )
    for payout in paid.iterator():
        transfer = by_payout.get(payout.pk)
        if transfer is None:
            differences.append(f"Payout {payout.pk} is paid but Stripe has no transfer for it.")
            continue
        if transfer.amount_cents != payout.amount_cents:
            differences.append(
                f"Payout {payout.pk} is for {payout.amount_cents} cents but its Stripe transfer {transfer.id} "
                f"is for {transfer.amount_cents}."
            )
        if transfer.amount_reversed_cents:
            differences.append(
                f"Payout {payout.pk} is paid but {transfer.amount_reversed_cents} cents of its transfer "
                f"{transfer.id} were reversed at Stripe."
            )
        if payout.external_id and payout.external_id != transfer.id:
            differences.append(f"Payout {payout.pk} records transfer {payout.external_id}, Stripe has {transfer.id}.")
    statuses = dict(Payout.objects.filter(pk__in=list(by_payout)).values_list("pk", "status"))
    for payout_id, transfer in by_payout.items():
        status = statuses.get(payout_id)
        if status is None:
            differences.append(f"Stripe transfer {transfer.id} names payout {payout_id}, which we do not have.")
        elif status == Payout.Status.FAILED and transfer.amount_reversed_cents < transfer.amount_cents:
            differences.append(
                f"Payout {payout_id} failed and its money went back to the driver's balance, but its Stripe "
                f"transfer {transfer.id} was not reversed."
            )
        elif status == Payout.Status.PENDING:
            differences.append(f"Payout {payout_id} is pending but Stripe made its transfer {transfer.id}.")
    return differences


def reconcile(*, now=None) -> Reconciliation:
    """Run every check; store, log and (on differences) email the result to staff."""
    now = now or timezone.now()
    since = now - timedelta(days=settings.SPARK_RECONCILE_DAYS)
    backend = get_backend()
    differences: list[str] = []
    checked: dict = {"backend": backend.name}
    transfers = None
    if backend.name != "sandbox":
        try:
            # A day more of transfers than of payouts: a transfer made just before a payout was marked paid.
            transfers = backend.list_transfers(created_since=int((since - timedelta(days=1)).timestamp()))
        except stripe.StripeError as exc:
            differences.append(f"Stripe could not be read, so payouts were not compared with it: {exc}")
    differences += _ledger_differences()
    payout_differences, totals = _payout_differences()
    differences += payout_differences
    checked.update(totals)
    checked["payouts"] = Payout.objects.count()
    if transfers is not None:
        differences += _stripe_differences(transfers, since)
        checked["stripe_transfers"] = len(transfers)
    with transaction.atomic():
        report = Reconciliation.objects.create(ran_at=now, ok=not differences, differences=differences, checked=checked)
        if differences:
            reconciliation_report_notice(report)
    for difference in differences:
        logger.error("Reconciliation %s: %s", report.pk, difference)
    if not differences:
        logger.info("Reconciliation %s: the ledger, payouts and Stripe agree (%s)", report.pk, checked)
    return report
