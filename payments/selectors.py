from django.db.models import Sum

from .models import Account, Entry


def driver_balance_cents(*, driver) -> int:
    """What we owe the driver: the sum of entries on their payable account."""
    total = Entry.objects.filter(account__kind=Account.Kind.DRIVER_PAYABLE, account__driver=driver).aggregate(
        s=Sum("amount_cents")
    )["s"]
    return int(total or 0)


def ledger_total_cents() -> int:
    """Sum of every entry ever posted. Always zero if every transaction balanced."""
    return int(Entry.objects.aggregate(s=Sum("amount_cents"))["s"] or 0)
