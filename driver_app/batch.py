"""The active batch screen: pickup, stops, addresses once picked up, and what became of a batch taken back."""

from datetime import timedelta

from django.shortcuts import render
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from dispatch.models import Offer
from driver_app.earnings import last_batch_pay
from driver_app.labels import API, FAIL_LABELS, STOP_STATUS_LABELS
from driver_app.page import (
    OPEN_STOP_STATUSES,
    active_batch_of,
    driver_page,
    guaranteed_cents,
    nav_links,
    offer_pay,
    page_context,
    stop_areas,
)
from drivers.models import Driver
from orders import selectors as order_selectors
from orders.contact import notes_ask_for_call
from orders.models import Batch, Stop
from orders.returns import RETURN_REASONS
from payments.selectors import trip_pay_cents

# Batch status -> the screen the driver is on.
PHASES: dict[str, str] = {
    Batch.Status.ASSIGNED: "to_store",
    Batch.Status.AT_STORE: "at_store",
    Batch.Status.PICKED_UP: "stops",
    Batch.Status.RETURNING: "returning",
}


LAST_BATCH_SHOWN_FOR = timedelta(hours=12)


def _batch_context(request, driver: Driver) -> dict:
    batch = active_batch_of(driver)
    context = page_context(request, driver, "batch", active_batch=batch)
    context["server_now_ms"] = int(timezone.now().timestamp() * 1000)
    if batch is None:
        context["phase"] = "none"
        last = (
            Batch.objects.filter(
                driver=driver, status__in=Batch.CLOSED_STATUSES, closed_at__gte=timezone.now() - LAST_BATCH_SHOWN_FOR
            )
            .select_related("store")
            .order_by("-closed_at")
            .first()
        )
        context["last_batch"] = last
        context["last_batch_pay"] = last_batch_pay(driver, last)
        context["taken_back"] = _taken_back(driver, after=last.closed_at if last else None)
        return context
    stops = order_selectors.batch_stops(batch=batch)
    for stop in stops:
        order = stop.order
        stop.nav = nav_links(order.lat, order.lng)
        stop.status_label = STOP_STATUS_LABELS.get(stop.status, stop.status)
        stop.is_open = stop.status in OPEN_STOP_STATUSES
        # Calls and texts go through a masked number (orders.contact); the real one is never shown.
        stop.can_contact = stop.is_open and bool(order.customer_phone)
        stop.wants_call = notes_ask_for_call(order.notes)
        stop.contact_url = f"{API}/stops/{stop.pk}/contact/"
        stop.contact_panel = f"contact-stop-{stop.pk}"
    open_stops = [s for s in stops if s.is_open]
    offer = batch.offers.filter(driver=driver, status=Offer.Status.ACCEPTED).select_related("pay").first()
    policy = getattr(batch.store.zone, "pay_policy", None)
    context.update(
        {
            "batch": batch,
            "phase": PHASES.get(batch.status, "none"),
            "late": batch.is_late(),
            "stops": stops,
            "current_stop": open_stops[0] if open_stops else None,
            "delivered_count": sum(1 for s in stops if s.status == Stop.Status.DELIVERED),
            "return_stops": [s for s in stops if s.status == Stop.Status.FAILED],
            "can_complete": batch.status == Batch.Status.PICKED_UP and not open_stops,
            "pay": offer_pay(offer),
            "pay_guaranteed_cents": guaranteed_cents(offer_pay(offer)),
            "store_nav": nav_links(batch.store.lat, batch.store.lng, batch.store.name),
            "store_contact_url": f"{API}/batches/{batch.pk}/contact-store/",
            "areas": stop_areas(order_selectors.stop_areas(batch=batch))
            if batch.status in (Batch.Status.ASSIGNED, Batch.Status.AT_STORE)
            else [],
            # DESIGN rule 6, decided in one place for the API and this app alike.
            "addresses_visible": order_selectors.batch_addresses_visible_to(batch=batch, driver=driver),
            "wait_grace_minutes": policy.wait_grace_minutes if policy else None,
            "wait_cents_per_minute": policy.wait_cents_per_minute if policy else None,
            "fail_reasons": [(key, FAIL_LABELS.get(key, label)) for key, label in RETURN_REASONS.items()],
            "vehicle": " ".join(v for v in (driver.vehicle_color, driver.vehicle_make, driver.vehicle_model) if v),
        }
    )
    context["offline_snapshot"] = offline_snapshot(context)
    return context


def offline_snapshot(context: dict) -> dict:
    """The active batch as driver.js keeps it for a dead zone (localStorage, shown by the offline
    page; wiped once the batch is no longer active or the driver logs out): the pickup code until
    pickup, the store, and the stops, with names and addresses only when the Batch screen shows
    them (orders.selectors.batch_addresses_visible_to). Text ready to show, in the page's language."""
    batch, phase, visible = context["batch"], context["phase"], context["addresses_visible"]
    store = batch.store
    return {
        "batch_id": batch.pk,
        "saved_at": timezone.now().isoformat(),
        "pickup_code": batch.pickup_code if phase in ("to_store", "at_store") else "",
        "store": f"{store.name} #{store.number}",
        "store_address": f"{store.address_line1}, {store.city}",
        "pickup_instructions": store.pickup_instructions,
        "stops": [_offline_stop(stop, visible=visible) for stop in context["stops"]],
    }


def _offline_stop(stop: Stop, *, visible: bool) -> dict:
    order = stop.order
    address = ""
    if visible:
        street = ", ".join(line for line in (order.address_line1, order.address_line2) if line)
        address = f"{street}, {order.city}, {order.state} {order.postal_code}"
    deliver_by = formats.time_format(timezone.localtime(order.window_end))
    who = order.customer_name if visible else order.postal_code
    status = STOP_STATUS_LABELS.get(stop.status, stop.status)
    return {
        "title": f"{stop.sequence}. {who} · {status}",
        "address": address,
        "detail": _("Deliver by %(time)s") % {"time": deliver_by},
        "notes": order.notes if visible else "",
    }


def _taken_back(driver: Driver, *, after) -> dict | None:
    """The latest batch taken back from the driver before pickup (every order cancelled, or
    sent back to dispatch), if more recent than `after` and within LAST_BATCH_SHOWN_FOR: what
    happened and the trip pay (payments.services.trip_pay_for_released_batch)."""
    since = max(timezone.now() - LAST_BATCH_SHOWN_FOR, after or timezone.now() - LAST_BATCH_SHOWN_FOR)
    offer = (
        Offer.objects.filter(driver=driver, status=Offer.Status.RELEASED, status_changed_at__gte=since)
        .select_related("batch__store")
        .order_by("-status_changed_at")
        .first()
    )
    if offer is None:
        return None
    return {
        "offer": offer,
        "store": offer.batch.store,
        "cancelled": offer.batch.status == Batch.Status.CANCELLED and offer.batch.driver_id == driver.pk,
        "pay_cents": trip_pay_cents(offer=offer),
    }


@driver_page
def batch(request, driver: Driver):
    return render(request, "driver/batch.html", _batch_context(request, driver))


@require_GET
@driver_page
def batch_status(request, driver: Driver):
    """The small partial the Batch page polls every 5 s: when its phase differs from the
    page's (the associate handed the batch over, the store cancelled it), driver.js reloads."""
    return render(request, "driver/_batch_status.html", _batch_context(request, driver))


@require_GET
@driver_page
def batch_stops(request, driver: Driver):
    return render(request, "driver/_stops.html", _batch_context(request, driver))
