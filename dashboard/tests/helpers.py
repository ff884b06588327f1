"""What the dashboard's view tests share."""

from datetime import timedelta

from django.utils import timezone

from orders.tests.factories import OrderFactory


def url(store, path=""):
    return f"/dashboard/s/{store.pk}/{path}"


def make_orders(store, n, **kw):
    """`n` orders of `store` whose two-hour window opens `window_start` (default: in two hours)."""
    start = kw.pop("window_start", timezone.now() + timedelta(hours=2))
    return [
        OrderFactory(store=store, window_start=start, window_end=start + timedelta(hours=2), **kw) for _ in range(n)
    ]
