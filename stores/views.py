"""The staff dashboard: server-rendered pages + htmx, scoped by StoreMembership.

Surfaces sit above the apps: these views call the services and selectors of orders and
payments (stores' models and services never import them).
"""

import zoneinfo
from datetime import datetime, time, timedelta
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from orders import batch_editing, batching_runs
from orders import selectors as order_selectors
from orders.delivery import batch_handoff
from orders.models import Batch, BatchingRun, Order, Stop
from orders.returns import order_return_check_in
from payments.services import pay_quote
from spark import geo, roles
from spark.errors import DomainError, NotFound
from spark.httpkit import safe_next
from spark.ids import parse_id, parse_ids

from .forms import AutoBatchForm, HandoffForm, ReadyAtForm, ReturnForm
from .models import Store


def store_view(manager: bool = False):
    """Resolve <store_id> against the user's memberships (another store is a 404) and run
    the view in the store's local time."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, store_id: int, *args, **kwargs):
            allowed = roles.store_ids_for(request.user, roles=("manager",) if manager else None)
            if store_id not in allowed:
                raise Http404("No such store.")
            store = get_object_or_404(Store.objects.select_related("zone"), pk=store_id)
            request.store = store
            request.my_stores = list(Store.objects.filter(pk__in=roles.store_ids_for(request.user)))
            request.is_manager = roles.is_store_member(request.user, store.pk, manager=True)
            with timezone.override(zoneinfo.ZoneInfo(store.zone.timezone)):
                return view(request, store, *args, **kwargs)

        return wrapper

    return decorator


def _day_bounds(store, day=None):
    tz = zoneinfo.ZoneInfo(store.zone.timezone)
    day = day or timezone.localdate(timezone=tz)
    start = datetime.combine(day, time.min, tzinfo=tz)
    return start, start + timedelta(days=1)


def _back(request, default: str):
    return redirect(safe_next(request, default))


def _domain_error(request, exc: DomainError):
    messages.error(request, exc.message)


@login_required
def dashboard_home(request):
    stores = roles.store_ids_for(request.user)
    if not stores:
        return render(request, "dashboard/no_store.html", status=403)
    return redirect("dashboard:queue", store_id=sorted(stores)[0])


@store_view()
def queue(request, store):
    day_start, day_end = _day_bounds(store)
    status = request.GET.get("status") or ""
    if status and status not in Order.Status.values:
        status = ""
    q = request.GET.get("q", "").replace("\x00", "").strip()[:64]  # PostgreSQL text cannot hold NUL
    orders = order_selectors.order_queue(
        store_id=store.pk, day_start=day_start, day_end=day_end + timedelta(days=1), status=status or None, q=q
    )
    context = {
        "store": store,
        "groups": order_selectors.group_by_window(orders),
        "status": status,
        "q": q,
        "statuses": Order.Status.choices,
        "counts": {s: sum(1 for o in orders if o.status == s) for s in Order.Status.values},
        "metrics": order_selectors.store_metrics(
            store_id=store.pk, day_start=day_start, day_end=day_end, now=timezone.now()
        ),
        "at_risk": list(order_selectors.batches_at_risk(store_ids=[store.pk], now=timezone.now())),
    }
    template = "dashboard/_queue.html" if request.htmx and request.htmx.target == "queue" else "dashboard/queue.html"
    return render(request, template, context)


@require_POST
@store_view()
def batch_new(request, store):
    ids = parse_ids(request.POST.getlist("order"))
    orders_by_id = {o.pk: o for o in Order.objects.filter(pk__in=ids or [], store=store)}
    if ids is None or len(orders_by_id) != len(set(ids)):
        messages.error(request, _("Some of those orders are not this store's."))
        return redirect("dashboard:queue", store_id=store.pk)
    try:
        batch = batch_editing.batch_create(store=store, orders=[orders_by_id[i] for i in ids], actor=request.user)
    except DomainError as exc:
        _domain_error(request, exc)
        return redirect("dashboard:queue", store_id=store.pk)
    return redirect("dashboard:batch", store_id=store.pk, batch_id=batch.pk)


@store_view()
def batches(request, store):
    open_statuses = [
        Batch.Status.DRAFT,
        Batch.Status.PUBLISHED,
        Batch.Status.ASSIGNED,
        Batch.Status.AT_STORE,
        Batch.Status.PICKED_UP,
        Batch.Status.RETURNING,
    ]
    rows = list(order_selectors.batches_for_store(store_id=store.pk, statuses=open_statuses))
    return render(request, "dashboard/batches.html", {"store": store, "batches": rows})


def _batch_context(store, batch):
    stops = order_selectors.batch_stops(batch=batch)
    return {
        "store": store,
        "batch": batch,
        "stops": stops,
        "totes": sum(s.order.totes for s in stops),
        "miles": geo.meters_to_miles(batch.route_meters),
        "drive_minutes": round(batch.route_seconds / 60),
        "quote": pay_quote(batch=batch, incentive_cents=batch.incentive_cents),
        "addable": Order.objects.filter(store=store, status=Order.Status.RECEIVED).order_by("window_start")[:50]
        if batch.status == Batch.Status.DRAFT
        else [],
        "ready_form": ReadyAtForm(),
        "map_points": [
            {"lat": float(store.lat), "lng": float(store.lng), "label": store.name, "store": True},
            *[
                {
                    "lat": float(s.order.lat),
                    "lng": float(s.order.lng),
                    "label": f"{s.sequence}. {s.order.address_line1}",
                }
                for s in stops
            ],
        ],
    }


@store_view()
def batch_detail(request, store, batch_id: int):
    batch = get_object_or_404(Batch, pk=batch_id, store=store)
    context = _batch_context(store, batch)
    template = "dashboard/_batch_editor.html" if request.htmx else "dashboard/batch.html"
    return render(request, template, context)


def _batch_action(request, store, batch_id: int, action):
    batch = get_object_or_404(Batch, pk=batch_id, store=store)
    try:
        action(batch)
    except DomainError as exc:
        _domain_error(request, exc)
        if request.htmx:
            context = _batch_context(store, batch)
            return render(request, "dashboard/_batch_editor.html", context, status=exc.status_code)
    batch.refresh_from_db()
    if request.htmx:
        return render(request, "dashboard/_batch_editor.html", _batch_context(store, batch))
    return redirect("dashboard:batch", store_id=store.pk, batch_id=batch.pk)


def _stop_of(batch, stop_id) -> Stop:
    stop = batch.stops.filter(pk=stop_id).exclude(status=Stop.Status.REMOVED).first()
    if stop is None:
        raise NotFound(_("That stop is not in this batch."))
    return stop


@require_POST
@store_view()
def batch_move(request, store, batch_id: int, stop_id: int, direction: str):
    if direction not in ("up", "down"):
        raise Http404("Unknown move.")
    offset = -1 if direction == "up" else 1
    return _batch_action(
        request,
        store,
        batch_id,
        lambda b: batch_editing.batch_move_stop(stop=_stop_of(b, stop_id), offset=offset, actor=request.user),
    )


@require_POST
@store_view()
def batch_reorder(request, store, batch_id: int):
    # A value that is not an id leaves the list short of a stop: the service refuses it.
    ids = parse_ids(request.POST.getlist("stop")) or []
    return _batch_action(
        request, store, batch_id, lambda b: batch_editing.batch_set_order(batch=b, stop_ids=ids, actor=request.user)
    )


@require_POST
@store_view()
def batch_remove(request, store, batch_id: int, stop_id: int):
    return _batch_action(
        request,
        store,
        batch_id,
        lambda b: batch_editing.batch_remove_stop(stop=_stop_of(b, stop_id), actor=request.user),
    )


@require_POST
@store_view()
def batch_add(request, store, batch_id: int):
    ids = parse_ids(request.POST.getlist("order"))

    def add(b):
        found = list(Order.objects.filter(pk__in=ids or [], store=store))
        if ids is None or len(found) != len(set(ids)):
            raise DomainError(_("Some of those orders are not this store's."), code="wrong_store")
        if not found:
            raise DomainError(_("Pick at least one order to add."), code="empty")
        batch_editing.batch_add_orders(batch=b, orders=found, actor=request.user)

    return _batch_action(request, store, batch_id, add)


@require_POST
@store_view()
def batch_publish(request, store, batch_id: int):
    def publish(b):
        batch_editing.batch_publish(batch=b, actor=request.user)
        # Dispatch runs after the commit (a task, or the beat sweeper if the broker is down).
        messages.success(request, _("Batch %(id)s is published; offers to drivers will follow.") % {"id": b.pk})

    return _batch_action(request, store, batch_id, publish)


@require_POST
@store_view()
def batch_ready_at(request, store, batch_id: int):
    form = ReadyAtForm(request.POST)

    def schedule(b):
        if not form.is_valid():
            raise DomainError(_("Enter the time the batch will be ready."), code="invalid")
        batch_editing.batch_schedule_publish(batch=b, ready_at=form.cleaned_data["ready_at"], actor=request.user)
        messages.success(request, _("Batch %(id)s will publish itself at the time you set.") % {"id": b.pk})

    return _batch_action(request, store, batch_id, schedule)


@require_POST
@store_view()
def batch_unpublish(request, store, batch_id: int):
    return _batch_action(request, store, batch_id, lambda b: batch_editing.batch_unpublish(batch=b, actor=request.user))


@require_POST
@store_view()
def batch_discard(request, store, batch_id: int):
    batch = get_object_or_404(Batch, pk=batch_id, store=store)
    try:
        batch_editing.batch_discard(batch=batch, actor=request.user, reason="discarded by associate")
        messages.success(request, _("Batch %(id)s was discarded; its orders are back in the queue.") % {"id": batch.pk})
    except DomainError as exc:
        _domain_error(request, exc)
        return redirect("dashboard:batch", store_id=store.pk, batch_id=batch.pk)
    return _back(request, reverse("dashboard:batches", kwargs={"store_id": store.pk}))


# --- Auto-batching -------------------------------------------------------------------


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
            _domain_error(request, exc)
    messages.success(request, _("%(n)d batches published.") % {"n": done})
    return redirect("dashboard:autobatch_run", store_id=store.pk, run_id=run.pk)


# --- Handoff and returns ---------------------------------------------------------------


@store_view()
def handoff(request, store):
    now = timezone.now()
    rows = []
    for b in order_selectors.batches_awaiting_handoff(store_id=store.pk):
        rows.append(
            {
                "batch": b,
                "driver": b.driver,
                "waiting": (now - b.arrived_at_store_at) if b.arrived_at_store_at else None,
                "form": HandoffForm(prefix=f"b{b.pk}"),
            }
        )
    # Drivers who were coming and no longer are (their batch was withdrawn or sent back to dispatch).
    released = order_selectors.batches_taken_from_drivers(store_id=store.pk, since=now - timedelta(hours=2))
    template = "dashboard/_handoff_list.html" if request.htmx else "dashboard/handoff.html"
    return render(request, template, {"store": store, "rows": rows, "released": released})


@require_POST
@store_view()
def handoff_confirm(request, store, batch_id: int):
    batch = get_object_or_404(Batch, pk=batch_id, store=store)
    form = HandoffForm(request.POST, prefix=f"b{batch.pk}")
    if not form.is_valid():
        for errors in form.errors.values():
            for e in errors:
                messages.error(request, str(e))
        return redirect("dashboard:handoff", store_id=store.pk)
    try:
        batch_handoff(batch=batch, pickup_code=form.cleaned_data["pickup_code"], actor=request.user)
        messages.success(request, _("Batch %(id)s handed over.") % {"id": batch.pk})
    except DomainError as exc:
        _domain_error(request, exc)
    return redirect("dashboard:handoff", store_id=store.pk)


@store_view()
def returns(request, store):
    rows = [
        {"order": o, "form": ReturnForm(prefix=f"o{o.pk}")} for o in order_selectors.returns_expected(store_id=store.pk)
    ]
    return render(request, "dashboard/returns.html", {"store": store, "rows": rows})


@require_POST
@store_view()
def return_check_in(request, store, order_id: int):
    order = get_object_or_404(Order, pk=order_id, store=store)
    form = ReturnForm(request.POST, prefix=f"o{order.pk}")
    if not form.is_valid():
        messages.error(request, _("Pick a return reason from the list."))
        return redirect("dashboard:returns", store_id=store.pk)
    try:
        order_return_check_in(order=order, reason=form.cleaned_data["reason"], actor=request.user)
        messages.success(request, _("Order %(id)s checked in as returned.") % {"id": order.external_id})
    except DomainError as exc:
        _domain_error(request, exc)
    return redirect("dashboard:returns", store_id=store.pk)


# --- Managers: slots, team and API keys ------------------------------------------------

# A posted id that is not an id: a tampered form, or a page from before a change. Nothing is done.
NOT_AN_ID = gettext_lazy("That form sent something we did not understand; reload the page and try again.")


@store_view(manager=True)
def slots(request, store):
    from . import services as store_services
    from .forms import SlotTemplateForm
    from .models import DeliverySlot, SlotTemplate

    form = SlotTemplateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        if action in ("pause", "resume"):
            template_id = parse_id(request.POST.get("template"))
            if template_id is None:
                messages.error(request, NOT_AN_ID)
                form, status = SlotTemplateForm(), 400
            else:
                template = get_object_or_404(SlotTemplate, pk=template_id, store=store)
                store_services.slot_template_set_active(template=template, active=action == "resume")
                return redirect("dashboard:slots", store_id=store.pk)
        elif form.is_valid():
            try:
                store_services.slot_template_create(
                    store=store,
                    weekdays="".join(form.cleaned_data["weekdays"]),
                    start_time=form.cleaned_data["start_time"],
                    end_time=form.cleaned_data["end_time"],
                    capacity=form.cleaned_data["capacity"],
                )
                messages.success(request, _("Template saved; slots for the next 14 days are open."))
                return redirect("dashboard:slots", store_id=store.pk)
            except DomainError as exc:
                _domain_error(request, exc)
    upcoming = DeliverySlot.objects.filter(store=store, ends_at__gte=timezone.now()).order_by("starts_at")[:60]
    return render(
        request,
        "dashboard/slots.html",
        {
            "store": store,
            "form": form,
            "templates": SlotTemplate.objects.filter(store=store),
            "upcoming": upcoming,
        },
        status=status,
    )


@store_view(manager=True)
def team(request, store):
    from . import services as store_services
    from .forms import ApiKeyForm, MembershipForm
    from .models import StoreApiKey, StoreMembership

    member_form = MembershipForm(prefix="m")
    key_form = ApiKeyForm(prefix="k")
    new_key = None
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "add_member":
                member_form = MembershipForm(request.POST, prefix="m")
                if member_form.is_valid():
                    store_services.membership_add(store=store, **member_form.cleaned_data)
                    messages.success(request, _("Added."))
                    return redirect("dashboard:team", store_id=store.pk)
            elif action == "remove_member" and parse_id(request.POST.get("membership")) is None:
                messages.error(request, NOT_AN_ID)
                status = 400
            elif action == "remove_member":
                membership = get_object_or_404(StoreMembership, pk=request.POST.get("membership"), store=store)
                store_services.membership_remove(membership=membership)
                messages.success(request, _("Removed."))
                return redirect("dashboard:team", store_id=store.pk)
            elif action == "create_key":
                key_form = ApiKeyForm(request.POST, prefix="k")
                if key_form.is_valid():
                    _key, new_key = store_services.store_api_key_create(
                        store=store, name=key_form.cleaned_data["name"], created_by=request.user
                    )
            elif action == "revoke_key" and parse_id(request.POST.get("key")) is None:
                messages.error(request, NOT_AN_ID)
                status = 400
            elif action == "revoke_key":
                key = get_object_or_404(StoreApiKey, pk=request.POST.get("key"), store=store)
                store_services.store_api_key_revoke(key=key)
                messages.success(request, _("Key revoked; it stops working now."))
                return redirect("dashboard:team", store_id=store.pk)
        except DomainError as exc:
            _domain_error(request, exc)
    return render(
        request,
        "dashboard/team.html",
        {
            "store": store,
            "members": StoreMembership.objects.filter(store=store)
            .select_related("user")
            .order_by("role", "user__email"),
            "keys": StoreApiKey.objects.filter(store=store),
            "member_form": member_form,
            "key_form": key_form,
            "new_key": new_key,
        },
        status=status,
    )
