"""Auto-batching from the dashboard: start a run, watch it, publish what it proposed."""

from datetime import timedelta

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import time_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from dashboard.forms import AutoBatchForm
from dashboard.page import NOT_AN_ID, show_domain_error, store_view
from orders import batch_editing, batching_runs, time_rules
from orders import selectors as order_selectors
from orders.models import Batch, BatchingRun, Order
from spark import geo
from spark.ids import parse_ids


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
    context = {
        "store": store,
        "run": run,
        "proposed": proposed,
        # The solver stops when its plan stops improving, so there is no share done to show:
        # the page says how long it has been working instead.
        "elapsed_s": int((timezone.now() - run.started_at).total_seconds()) if run.started_at else 0,
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
    """ "Publish all drafts now". A draft whose own "ready at" is still ahead, or whose orders can
    no longer all be reached in time, is not published without asking: the first press shows
    them in a confirm step (nothing published yet); its answer publishes the rest and the ones
    ticked, and leaves the others as they were."""
    run = get_object_or_404(BatchingRun, pk=run_id, store=store)
    drafts = list(run.batches.filter(status=Batch.Status.DRAFT).select_related("store__zone").order_by("pk"))
    if request.POST.get("answered") != "1":
        plan = time_rules.publish_now_plan(batches=drafts, now=timezone.now())
        if plan.needs_confirmation:
            template = "dashboard/_publish_all_confirm.html" if request.htmx else "dashboard/publish_all_confirm.html"
            return render(request, template, {"store": store, "run": run, "plan": plan})
    confirmed = parse_ids(request.POST.getlist("confirm"))
    if confirmed is None:
        messages.error(request, NOT_AN_ID)
        return _to_run_page(request, store, run)
    result = batch_editing.batches_publish_now(batches=drafts, actor=request.user, confirmed_ids=confirmed)
    for _batch, exc in result.failed:
        show_domain_error(request, exc)
    messages.success(request, _("%(n)d batches published.") % {"n": len(result.published)})
    for b in result.held:
        messages.info(request, _held_message(b))
    return _to_run_page(request, store, run)


def _held_message(batch) -> str:
    if batch.ready_at and batch.ready_at > timezone.now():
        return _("Batch %(id)s stays scheduled: it publishes itself at %(time)s.") % {
            "id": batch.pk,
            "time": time_format(timezone.localtime(batch.ready_at), "g:i A"),
        }
    return _("Batch %(id)s stays a draft: some of its orders can no longer be reached in their window.") % {
        "id": batch.pk
    }


def _to_run_page(request, store, run):
    url = reverse("dashboard:autobatch_run", kwargs={"store_id": store.pk, "run_id": run.pk})
    if request.htmx:
        # A whole new page (statuses, map, messages): htmx follows this header with a full load.
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)
