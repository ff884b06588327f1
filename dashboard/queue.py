"""The dashboard's start page and the store's order queue for the day."""

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import timezone

from dashboard.page import day_bounds, store_view
from orders import selectors as order_selectors
from orders import time_rules
from orders.models import Order
from spark import roles


@login_required
def dashboard_home(request):
    stores = roles.store_ids_for(request.user)
    if not stores:
        return render(request, "dashboard/no_store.html", status=403)
    return redirect("dashboard:queue", store_id=sorted(stores)[0])


@store_view()
def queue(request, store):
    day_start, day_end = day_bounds(store)
    status = request.GET.get("status") or ""
    if status and status not in Order.Status.values:
        status = ""
    q = request.GET.get("q", "").replace("\x00", "").strip()[:64]  # PostgreSQL text cannot hold NUL
    orders = order_selectors.order_queue(
        store_id=store.pk, day_start=day_start, day_end=day_end + timedelta(days=1), status=status or None, q=q
    )
    now = timezone.now()
    context = {
        "store": store,
        "now": now,
        # Flagged above the queue: customers already in their window with no batch for them.
        "window_started": time_rules.orders_window_started_unbatched(store_id=store.pk, now=now),
        "groups": order_selectors.group_by_window(orders),
        "status": status,
        "q": q,
        "statuses": Order.Status.choices,
        "counts": {s: sum(1 for o in orders if o.status == s) for s in Order.Status.values},
        "metrics": order_selectors.store_metrics(store_id=store.pk, day_start=day_start, day_end=day_end, now=now),
        "at_risk": time_rules.batches_at_risk(store_ids=[store.pk], now=now),
    }
    template = "dashboard/_queue.html" if request.htmx and request.htmx.target == "queue" else "dashboard/queue.html"
    return render(request, template, context)
