from django.db.models import QuerySet

from .models import Order


def orders_for_store(*, store_id: int, status: str | None = None, window_from=None, window_to=None) -> QuerySet[Order]:
    qs = Order.objects.filter(store_id=store_id).select_related("store")
    if status:
        qs = qs.filter(status=status)
    if window_from:
        qs = qs.filter(window_end__gt=window_from)
    if window_to:
        qs = qs.filter(window_start__lt=window_to)
    return qs.order_by("window_start", "pk")
