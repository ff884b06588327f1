"""Building batches by hand: the batch list, a batch's page and every edit to it (add, move,
reorder, remove a stop; publish, ready-at, unpublish, discard)."""

from dataclasses import dataclass, field

from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from dashboard.forms import ReadyAtForm
from dashboard.page import back_to, confirm_first, htmx_error, show_domain_error, store_view
from orders import batch_editing
from orders import selectors as order_selectors
from orders.models import Batch, Order, Stop
from orders.time_rules import LateOrder, NeedsConfirmation
from payments.services import pay_quote
from spark import geo
from spark.errors import DomainError, NotFound
from spark.ids import parse_ids


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
        show_domain_error(request, exc)
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
    template = "dashboard/_batch_rows.html" if request.htmx else "dashboard/batches.html"
    return render(request, template, {"store": store, "batches": rows})


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


@dataclass(frozen=True)
class ConfirmStep:
    """A question put to the associate before a change that would hurt delivery times: what
    would happen (`title`, the `late` orders), and the form that goes ahead (`yes` posts
    `fields` to `action`); answering no leaves the batch as it is."""

    title: str
    yes: str
    action: str
    fields: list[tuple[str, object]] = field(default_factory=list)
    late: list[LateOrder] = field(default_factory=list)


def _render_editor(request, store, batch, *, confirm: ConfirmStep | None = None, status: int = 200):
    context = {**_batch_context(store, batch), "confirm": confirm}
    template = "dashboard/_batch_editor.html" if request.htmx else "dashboard/batch.html"
    return render(request, template, context, status=status)


@store_view()
def batch_detail(request, store, batch_id: int):
    batch = get_object_or_404(Batch, pk=batch_id, store=store)
    return _render_editor(request, store, batch)


def _batch_action(request, store, batch_id: int, action, ask=None):
    """Run `action` on the batch and show the editor again. `ask(batch, exc)` turns the service's
    NeedsConfirmation into the ConfirmStep shown instead (a question, not an error: 200)."""
    batch = get_object_or_404(Batch, pk=batch_id, store=store)
    try:
        action(batch)
    except DomainError as exc:
        if ask is not None and isinstance(exc, NeedsConfirmation):
            return _render_editor(request, store, batch, confirm=ask(batch, exc))
        if request.htmx:
            return htmx_error(exc)
        show_domain_error(request, exc)
    batch.refresh_from_db()
    if request.htmx:
        return _render_editor(request, store, batch)
    return redirect("dashboard:batch", store_id=store.pk, batch_id=batch.pk)


def _confirmed(request) -> bool:
    return request.POST.get("confirm") == "1"


def _ask(url_name: str, yes, *, confirm: bool = True):
    """For _batch_action: the ConfirmStep whose "yes" posts to `url_name` again, with the stop
    sequence proposed (a reorder) and confirm=1. Without `confirm` ("publish now instead" of a
    past ready-at) the publish may still ask its own question."""

    def step(batch, exc: NeedsConfirmation) -> ConfirmStep:
        fields: list[tuple[str, object]] = [("stop", i) for i in exc.proposal]
        if confirm:
            fields.append(("confirm", "1"))
        url = reverse(url_name, kwargs={"store_id": batch.store_id, "batch_id": batch.pk})
        return ConfirmStep(title=exc.message, yes=str(yes), action=url, fields=fields, late=exc.late)

    return step


_ask_reorder = _ask("dashboard:batch_reorder", gettext_lazy("Use this order anyway"))
_ask_publish = _ask("dashboard:batch_publish", gettext_lazy("Publish anyway"))
_ask_publish_instead = _ask("dashboard:batch_publish", gettext_lazy("Publish now"), confirm=False)


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
        lambda b: batch_editing.batch_move_stop(
            stop=_stop_of(b, stop_id), offset=offset, actor=request.user, confirmed=_confirmed(request)
        ),
        ask=_ask_reorder,
    )


@require_POST
@store_view()
def batch_reorder(request, store, batch_id: int):
    # A value that is not an id leaves the list short of a stop: the service refuses it.
    ids = parse_ids(request.POST.getlist("stop")) or []
    return _batch_action(
        request,
        store,
        batch_id,
        lambda b: batch_editing.batch_set_order(
            batch=b, stop_ids=ids, actor=request.user, confirmed=_confirmed(request)
        ),
        ask=_ask_reorder,
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
        batch_editing.batch_publish_now(batch=b, actor=request.user, confirmed=_confirmed(request))
        # Dispatch runs after the commit (a task, or the beat sweeper if the broker is down).
        messages.success(request, _("Batch %(id)s is published; offers to drivers will follow.") % {"id": b.pk})

    return _batch_action(request, store, batch_id, publish, ask=_ask_publish)


@require_POST
@store_view()
def batch_ready_at(request, store, batch_id: int):
    form = ReadyAtForm(request.POST)

    def schedule(b):
        if not form.is_valid():
            raise DomainError(_("Enter the time the batch will be ready."), code="invalid")
        batch_editing.batch_schedule_publish(batch=b, ready_at=form.cleaned_data["ready_at"], actor=request.user)
        messages.success(request, _("Batch %(id)s will publish itself at the time you set.") % {"id": b.pk})

    return _batch_action(request, store, batch_id, schedule, ask=_ask_publish_instead)


@require_POST
@store_view()
def batch_unpublish(request, store, batch_id: int):
    return _batch_action(request, store, batch_id, lambda b: batch_editing.batch_unpublish(batch=b, actor=request.user))


@require_POST
@store_view()
def batch_discard(request, store, batch_id: int):
    batch = get_object_or_404(Batch, pk=batch_id, store=store)
    here = reverse("dashboard:batch", kwargs={"store_id": store.pk, "batch_id": batch.pk})
    question = (
        _("Cancel batch %(id)s? Drivers can no longer take it and its orders go back to the queue.")
        if batch.status == Batch.Status.PUBLISHED
        else _("Discard batch %(id)s? Its orders go back to the queue.")
    )
    asked = confirm_first(request, question % {"id": batch.pk}, back=here)
    if asked:
        return asked
    try:
        batch_editing.batch_discard(batch=batch, actor=request.user, reason="discarded by associate")
        messages.success(request, _("Batch %(id)s was discarded; its orders are back in the queue.") % {"id": batch.pk})
    except DomainError as exc:
        show_domain_error(request, exc)
        return redirect("dashboard:batch", store_id=store.pk, batch_id=batch.pk)
    return back_to(request, reverse("dashboard:batches", kwargs={"store_id": store.pk}))
