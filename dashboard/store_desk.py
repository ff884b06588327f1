"""The store's desk: confirming a driver is here (for their batch or their slot, when the
phone cannot check them in), handing batches to drivers (pickup code) and checking returned
orders back in."""

from datetime import timedelta
from functools import partial

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from dashboard.forms import HandoffForm, ReturnForm
from dashboard.page import show_domain_error, store_view
from drivers import selectors as driver_selectors
from drivers import slot_services
from drivers.models import SlotClaim
from orders import selectors as order_selectors
from orders.delivery import batch_check_in, batch_handoff
from orders.handoff_guard import handoff_locked_until
from orders.models import Batch, Order
from orders.returns import order_return_check_in
from spark.errors import DomainError


def _handoff_form(batch, data=None) -> HandoffForm:
    return HandoffForm(data, prefix=f"b{batch.pk}", has_photo=bool(batch.driver and batch.driver.photo))


@store_view()
def handoff(request, store):
    return _handoff_page(request, store)


def _handoff_page(request, store, *, refused: HandoffForm | None = None, status: int = 200):
    """The drivers waiting at the desk, a card each. A refused handoff (`refused`, bound, with
    its errors) is shown in its own card, where the associate is looking, not at the page top."""
    now = timezone.now()
    rows = []
    for b in order_selectors.batches_awaiting_handoff(store_id=store.pk):
        stops = order_selectors.batch_stops(batch=b)
        form = refused if refused is not None and refused.prefix == f"b{b.pk}" else _handoff_form(b)
        rows.append(
            {
                "batch": b,
                "driver": b.driver,
                "waiting": (now - b.arrived_at_store_at) if b.arrived_at_store_at else None,
                "form": form,
                "stops": stops,
                "totes": sum(s.order.totes for s in stops),
                "locked_until": handoff_locked_until(batch_id=b.pk),
            }
        )
    # Drivers who were coming and no longer are (their batch was withdrawn or sent back to dispatch).
    released = order_selectors.batches_taken_from_drivers(store_id=store.pk, since=now - timedelta(hours=2))
    slot_claims = driver_selectors.slot_claims_awaiting_check_in(store_id=store.pk, now=now)
    template = "dashboard/_handoff_list.html" if request.htmx else "dashboard/handoff.html"
    context = {"store": store, "rows": rows, "released": released, "slot_claims": slot_claims}
    return render(request, template, context, status=status)


def _confirm_here(request, check_in, driver) -> None:
    """The associate's "Confirm driver is here": check_in(confirmed_by=...) by the one rule of
    stores.presence, which checks the driver's batch and slot seat at this store in together."""
    try:
        check_in(confirmed_by=request.user)
        name = driver.user.first_name or _("The driver")
        messages.success(request, _("%(name)s is checked in at the store.") % {"name": name})
    except DomainError as exc:
        show_domain_error(request, exc)


@require_POST
@store_view()
def batch_confirm_here(request, store, batch_id: int):
    batch = get_object_or_404(Batch.objects.select_related("driver__user"), pk=batch_id, store=store)
    if batch.driver is None:
        messages.error(request, _("No driver is on the way for this batch."))
    else:
        _confirm_here(request, partial(batch_check_in, batch=batch), batch.driver)
    return redirect("dashboard:handoff", store_id=store.pk)


@require_POST
@store_view()
def slot_confirm_here(request, store, claim_id: int):
    claim = get_object_or_404(SlotClaim.objects.select_related("driver__user"), pk=claim_id, slot__store=store)
    _confirm_here(request, partial(slot_services.slot_check_in, claim=claim), claim.driver)
    return redirect("dashboard:handoff", store_id=store.pk)


@require_POST
@store_view()
def handoff_confirm(request, store, batch_id: int):
    batch = get_object_or_404(Batch, pk=batch_id, store=store)
    form = _handoff_form(batch, request.POST)
    if not form.is_valid():
        return _refused(request, store, form, 400)
    try:
        batch_handoff(batch=batch, pickup_code=form.cleaned_data["pickup_code"], actor=request.user)
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _refused(request, store, form, exc.status_code)
    messages.success(request, _("Batch %(id)s handed over.") % {"id": batch.pk})
    return redirect("dashboard:handoff", store_id=store.pk)


def _refused(request, store, form: HandoffForm, status: int):
    form.fields["pickup_code"].widget.attrs["autofocus"] = True  # the browser brings the card into view
    return _handoff_page(request, store, refused=form, status=status)


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
        show_domain_error(request, exc)
    return redirect("dashboard:returns", store_id=store.pk)
