from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from drivers.models import Driver

from .models import Batch, Order


def orders_for_store(*, store_id: int, status: str | None = None, window_from=None, window_to=None) -> QuerySet[Order]:
    qs = Order.objects.filter(store_id=store_id).select_related("store")
    if status:
        qs = qs.filter(status=status)
    if window_from:
        qs = qs.filter(window_end__gt=window_from)
    if window_to:
        qs = qs.filter(window_start__lt=window_to)
    return qs.order_by("window_start", "pk")


def order_queue(*, store_id: int, day_start, day_end, status: str | None = None, q: str = "") -> list[Order]:
    """Orders of a store whose window overlaps [day_start, day_end), for the dashboard queue."""
    from django.db.models import Q

    qs = Order.objects.filter(store_id=store_id, window_start__lt=day_end, window_end__gt=day_start)
    if status:
        qs = qs.filter(status=status)
    if q:
        qs = qs.filter(
            Q(external_id__icontains=q)
            | Q(customer_name__icontains=q)
            | Q(address_line1__icontains=q)
            | Q(postal_code__startswith=q)
        )
    return list(qs.order_by("window_start", "window_end", "pk"))


def group_by_window(orders: list[Order]) -> list[tuple[tuple, list[Order]]]:
    groups: dict[tuple, list[Order]] = {}
    for o in orders:
        groups.setdefault((o.window_start, o.window_end), []).append(o)
    return list(groups.items())


def batches_for_store(*, store_id: int, statuses=None):
    """A store's batches, each with live_stop_count: the stops still on the trip, the same
    rule as batch_stops (a removed stop is not; a cancelled order's stop is removed)."""
    from django.db.models import Count, Q

    from .models import Batch, Stop

    live = ~Q(stops__status=Stop.Status.REMOVED)
    qs = (
        Batch.objects.filter(store_id=store_id)
        .select_related("driver__user")
        .annotate(live_stop_count=Count("stops", filter=live))
    )
    if statuses:
        qs = qs.filter(status__in=statuses)
    return qs.order_by("pickup_by", "pk")


def batch_stops(*, batch, keep: bool = False) -> list:
    """The batch's live stops with their orders, in sequence. keep=True remembers them on
    this instance (batch.live_stops) so the rest of the request reads no second copy (a
    claim's pay snapshot and its answer); only for instances whose stops will not change."""
    from .models import Stop

    if hasattr(batch, "live_stops"):
        return batch.live_stops
    stops = list(batch.stops.exclude(status=Stop.Status.REMOVED).select_related("order").order_by("sequence"))
    if keep:
        batch.live_stops = stops
    return stops


def batches_awaiting_handoff(*, store_id: int):
    """Batches whose driver is on the way or checked in, longest wait first."""
    from .models import Batch

    return (
        Batch.objects.filter(store_id=store_id, status__in=[Batch.Status.AT_STORE, Batch.Status.ASSIGNED])
        .select_related("driver__user")
        .order_by("arrived_at_store_at", "assigned_at")
    )


def batches_taken_from_drivers(*, store_id: int, since) -> list:
    """Batches of the store taken back from a driver before pickup since `since` and not
    taken by anyone since (withdrawn, or back on offer): the handoff page tells the associate
    that driver is not coming. Each is its BatchEvent (reason, when) with the batch."""
    from .models import Batch, BatchEvent

    events = (
        BatchEvent.objects.filter(
            batch__store_id=store_id,
            created_at__gte=since,
            from_status__in=[Batch.Status.ASSIGNED, Batch.Status.AT_STORE],
            to_status__in=[Batch.Status.PUBLISHED, Batch.Status.CANCELLED],
            batch__status__in=[Batch.Status.PUBLISHED, Batch.Status.CANCELLED],
        )
        .select_related("batch")
        .order_by("-created_at", "-pk")
    )
    latest: dict[int, object] = {}
    for event in events:
        latest.setdefault(event.batch_id, event)
    return list(latest.values())


def returns_expected(*, store_id: int) -> list[Order]:
    return list(
        Order.objects.filter(store_id=store_id, status=Order.Status.UNDELIVERABLE).order_by("status_changed_at")
    )


def store_metrics(*, store_id: int, day_start, day_end, now) -> dict:
    """Today's numbers for the dashboard header."""
    from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Min, Q

    from .models import Batch, Stop

    orders = Order.objects.filter(store_id=store_id, window_start__gte=day_start, window_start__lt=day_end)
    batches = Batch.objects.filter(store_id=store_id, created_at__gte=day_start, created_at__lt=day_end)
    dispense = (
        Batch.objects.filter(
            store_id=store_id,
            picked_up_at__gte=day_start,
            picked_up_at__lt=day_end,
            arrived_at_store_at__isnull=False,
        )
        .annotate(d=ExpressionWrapper(F("picked_up_at") - F("arrived_at_store_at"), output_field=DurationField()))
        .aggregate(avg=Avg("d"))["avg"]
    )
    waiting_since = Batch.objects.filter(store_id=store_id, status=Batch.Status.AT_STORE).aggregate(
        m=Min("arrived_at_store_at")
    )["m"]
    delivered = Stop.objects.filter(
        batch__store_id=store_id, status=Stop.Status.DELIVERED, delivered_at__gte=day_start, delivered_at__lt=day_end
    ).aggregate(n=Count("pk"), on_time=Count("pk", filter=Q(delivered_at__lte=F("order__window_end"))))
    return {
        "orders": orders.count(),
        "batches": batches.exclude(status=Batch.Status.CANCELLED).count(),
        "avg_dispense": dispense,
        "longest_wait": (now - waiting_since) if waiting_since else None,
        "delivered": delivered["n"],
        "on_time": delivered["on_time"],
        "on_time_pct": round(100 * delivered["on_time"] / delivered["n"]) if delivered["n"] else None,
    }


def stop_areas(*, batch) -> list[dict]:
    """What a driver may see of a batch's stops before it is theirs: the area (ZIP code and a
    point rounded to about a kilometre) and the distance from the store, never the address."""
    from spark import geo

    store = geo.Point.of(batch.store.lat, batch.store.lng)
    areas = []
    for stop in batch_stops(batch=batch):
        o = stop.order
        areas.append(
            {
                "sequence": stop.sequence,
                "postal_code": o.postal_code,
                "area_lat": geo.area_coordinate(o.lat),
                "area_lng": geo.area_coordinate(o.lng),
                "distance_from_store_m": geo.distance_m(store, geo.Point.of(o.lat, o.lng)),
                "totes": o.totes,
                "heavy": o.is_heavy,
                "alcohol": o.contains_alcohol,
                "window_end": o.window_end.isoformat(),
            }
        )
    return areas


def batch_addresses_visible_to(*, batch: Batch, driver, now=None) -> bool:
    """DESIGN rule 6, the one place it is decided: may `driver` see the exact customer
    addresses (and names, phones, positions) of `batch`? Yes from the moment the batch is
    theirs (assigned to them, whether by offer or board claim) until
    SPARK_ADDRESS_VISIBLE_HOURS after it closed (they may need to answer a question about a
    delivery); never for a batch that is not theirs, including one taken back from them.
    Every surface asks this: the driver API and the driver app."""
    if driver is None or batch.driver_id is None or batch.driver_id != driver.pk:
        return False
    if batch.status in Batch.ACTIVE_STATUSES:
        return True
    if batch.status in Batch.CLOSED_STATUSES and batch.closed_at is not None:
        now = now or timezone.now()
        return now < batch.closed_at + timedelta(hours=settings.SPARK_ADDRESS_VISIBLE_HOURS)
    return False


def driver_finishing_batch(driver: Driver) -> Batch | None:
    """The open batch a driver who can no longer take work was let finish (ops chose "finish
    this batch first" when suspending or deactivating them, or the groceries were already in
    their car): the one batch they may still act on. None for everyone else."""
    return Batch.objects.filter(driver=driver, status__in=Batch.ACTIVE_STATUSES, finish_first_at__isnull=False).first()


def driver_holds_batch(*, driver_id: int) -> bool:
    """Whether the driver holds an active batch (spark.hooks.driver_holds_batch, for drivers:
    going offline keeps the last position then, and location pings are accepted)."""
    return Batch.objects.filter(driver_id=driver_id, status__in=Batch.ACTIVE_STATUSES).exists()
