"""Auto-batching from the dashboard: start a run, watch it, publish what it proposed."""

from datetime import timedelta

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from dashboard.forms import AutoBatchForm
from dashboard.page import show_domain_error, store_view
from orders import batch_editing, batching_runs
from orders import selectors as order_selectors
from orders.models import Batch, BatchingRun, Order
from spark import geo
from spark.errors import DomainError


@store_view()
def autobatch(request, store):
    if request.method == "POST":
        form = AutoBatchForm(request.POST)
        if form.is_valid():
            run = batching_runs.batching_run_start(
                store=store,
                window_from=form.cleaned_data["window_from"],
                window_to=form.cleaned_data["window_to"],
                actor=request.user,
            )
            return redirect("dashboard:autobatch_run", store_id=store.pk, run_id=run.pk)
    else:
        now = timezone.localtime()
        start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        form = AutoBatchForm(
            initial={
                "window_from": start.strftime("%Y-%m-%dT%H:%M"),
                "window_to": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
            }
        )
    runs = BatchingRun.objects.filter(store=store)[:5]
    return render(request, "dashboard/autobatch.html", {"store": store, "form": form, "runs": runs})


@store_view()
def autobatch_run(request, store, run_id: int):
    run = get_object_or_404(BatchingRun, pk=run_id, store=store)
    proposed = []
    for b in run.batches.exclude(status=Batch.Status.CANCELLED).order_by("pk"):
        stops = order_selectors.batch_stops(batch=b)
        proposed.append(
            {
                "batch": b,
                "stops": stops,
                "totes": sum(s.order.totes for s in stops),
                "miles": geo.meters_to_miles(b.route_meters),
            }
        )
    elapsed = (timezone.now() - run.started_at).total_seconds() if run.started_at else 0
    context = {
        "store": store,
        "run": run,
        "proposed": proposed,
        "progress": min(99, int(100 * elapsed / max(1, run.time_limit_seconds))) if run.status == "running" else None,
        "map_routes": [
            [{"lat": float(store.lat), "lng": float(store.lng)}]
            + [
                {"lat": float(s.order.lat), "lng": float(s.order.lng), "label": f"{p['batch'].pk}/{s.sequence}"}
                for s in p["stops"]
            ]
            for p in proposed
        ],
        "unassigned": Order.objects.filter(pk__in=run.unassigned_order_ids),
    }
    if request.htmx and run.status in (BatchingRun.Status.QUEUED, BatchingRun.Status.RUNNING):
        return render(request, "dashboard/_autobatch_progress.html", context)
    if request.htmx:
        # Finished: make htmx reload the whole page to show the map and the proposals.
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    return render(request, "dashboard/autobatch_run.html", context)


@require_POST
@store_view()
def autobatch_publish_all(request, store, run_id: int):
    run = get_object_or_404(BatchingRun, pk=run_id, store=store)
    done = 0
    for b in run.batches.filter(status=Batch.Status.DRAFT):
        try:
            batch_editing.batch_publish(batch=b, actor=request.user)
            done += 1
        except DomainError as exc:
            show_domain_error(request, exc)
    messages.success(request, _("%(n)d batches published.") % {"n": done})
    return redirect("dashboard:autobatch_run", store_id=store.pk, run_id=run.pk)
