from django.db.models import Sum

from .models import DRIVER_ACCOUNT_KINDS, Account, Entry


def driver_balance_cents(*, driver) -> int:
    """What we owe the driver: the entries on their earnings and tips payable accounts, and
    nothing else (payments.models: the ledger's flows)."""
    total = Entry.objects.filter(account__kind__in=DRIVER_ACCOUNT_KINDS, account__driver=driver).aggregate(
        s=Sum("amount_cents")
    )["s"]
    return int(total or 0)


def ledger_total_cents() -> int:
    """Sum of every entry ever posted. Always zero if every transaction balanced."""
    return int(Entry.objects.aggregate(s=Sum("amount_cents"))["s"] or 0)


def trip_pay_key(offer_id: int) -> str:
    """The ledger idempotency key of the trip pay for a released offer (one posting per offer)."""
    return f"trip-pay:{offer_id}"


def trip_pay_cents(*, offer) -> int | None:
    """What the driver was paid for the trip of a batch taken back from them (payments.services.
    trip_pay_for_released_batch), or None if nothing was posted for this offer."""
    total = Entry.objects.filter(
        transaction__idempotency_key=trip_pay_key(offer.pk), account__kind=Account.Kind.DRIVER_PAYABLE
    ).aggregate(s=Sum("amount_cents"))["s"]
    return None if total is None else int(total)
