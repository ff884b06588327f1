"""What a customer may see about their order, built once for the tracking page, its JSON and the
order emails: status, timeline, the driver (first name, vehicle), the rounded position and the
ETA. The privacy rules are listed in tracking/__init__.py (the page)."""

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import F
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from orders.models import Batch, Order, Stop
from spark import geo
from spark.money import format_cents

DEFAULT_POSITION_GRID_M = 200  # the driver's position is snapped to a grid of this size


DEFAULT_LOCATION_MAX_AGE_SECONDS = 600  # an older position is neither shown nor used for the ETA


ETA_MIN_SECONDS = 60


ETA_MAX_SECONDS = 3 * 3600  # beyond this the estimate is not believable: show the window instead


POLL_SECONDS = 15


TERMINAL_STATUSES = (
    Order.Status.DELIVERED,
    Order.Status.UNDELIVERABLE,
    Order.Status.RETURNED,
    Order.Status.CANCELLED,
)


def tracking_setting(name: str, default):
    return getattr(settings, name, default)


def zone_tz(store) -> ZoneInfo:
    """The store's zone timezone (every time on the page and in the emails is shown in it)."""
    name = getattr(getattr(store, "zone", None), "timezone", "") or settings.TIME_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.TIME_ZONE)


def format_local(dt: datetime | None, tz: ZoneInfo, now: datetime | None = None) -> str:
    """ "3:05 PM" today (in the zone), "Tue, Mar 4, 3:05 PM" on another day, "" for None."""
    if dt is None:
        return ""
    local = timezone.localtime(dt, tz)
    today = timezone.localtime(now or timezone.now(), tz).date()
    if local.date() == today:
        return formats.date_format(local, "g:i A")
    return formats.date_format(local, "D, M j, g:i A")


def format_window(start: datetime, end: datetime, tz: ZoneInfo, now: datetime | None = None) -> str:
    end_text = formats.date_format(timezone.localtime(end, tz), "g:i A")
    if timezone.localtime(start, tz).date() != timezone.localtime(end, tz).date():
        end_text = format_local(end, tz, now)
    return f"{format_local(start, tz, now)} – {end_text}"


def vehicle_label(driver) -> str:
    """ "Blue Toyota Corolla": color, make, model; never the plate."""
    parts = [driver.vehicle_color, driver.vehicle_make, driver.vehicle_model]
    label = " ".join(p.strip() for p in parts if p and p.strip())
    return label or driver.get_vehicle_type_display()


def driver_first_name(driver) -> str:
    return (driver.user.first_name or "").strip() or _("Your driver")


def approximate_position(lat, lng, grid_m: int | None = None) -> dict:
    """Snap a position to a grid of `grid_m` metres (at most ~0.71 x grid_m off, never exact)."""
    grid_m = grid_m or int(tracking_setting("SPARK_TRACKING_POSITION_GRID_M", DEFAULT_POSITION_GRID_M))
    lat, lng = float(lat), float(lng)
    step_lat = grid_m / 111_320.0
    lat_r = round(lat / step_lat) * step_lat
    step_lng = grid_m / (111_320.0 * max(0.01, math.cos(math.radians(lat_r))))
    lng_r = round(lng / step_lng) * step_lng
    return {"lat": round(lat_r, 5), "lng": round(lng_r, 5), "radius_m": grid_m}


def _fresh_location(driver, now: datetime):
    """The driver's last Location if it is recent enough to mean anything, else None."""
    if driver is None:
        return None
    try:
        loc = driver.location
    except ObjectDoesNotExist:
        return None
    max_age = int(tracking_setting("SPARK_TRACKING_LOCATION_MAX_AGE_SECONDS", DEFAULT_LOCATION_MAX_AGE_SECONDS))
    if loc.recorded_at < now - timedelta(seconds=max_age):
        return None
    return loc


def _live_stop(order: Order) -> Stop | None:
    return (
        Stop.objects.filter(order=order)
        .exclude(status=Stop.Status.REMOVED)
        .select_related("batch", "batch__store", "batch__driver", "batch__driver__user", "batch__driver__location")
        .first()
    )


# Batch statuses in which a driver holds the batch (or held it, for the "delivered by" line).
_DRIVER_SHOWN_BATCH = (
    Batch.Status.ASSIGNED,
    Batch.Status.AT_STORE,
    Batch.Status.PICKED_UP,
    Batch.Status.COMPLETED,
    Batch.Status.RETURNING,
    Batch.Status.RETURNED,
)


def tracking_state(order: Order, *, now: datetime | None = None) -> dict:
    """Everything the customer may know about `order`, JSON-serialisable.

    The page renders it, status.json returns it and the emails quote it: one place decides what
    is shown. Nothing here names another customer or the driver's last name, phone or plate.
    """
    now = now or timezone.now()
    tz = zone_tz(order.store)
    status = order.status
    stop = _live_stop(order) if status not in (Order.Status.RECEIVED, Order.Status.CANCELLED) else None
    batch = stop.batch if stop else None
    driver = batch.driver if batch and batch.driver_id and batch.status in _DRIVER_SHOWN_BATCH else None

    # The stops of the trip still to be visited before this one (counts and drive time only).
    live_stops: list[Stop] = []
    ahead: list[Stop] = []
    on_trip = batch is not None and batch.status == Batch.Status.PICKED_UP and status == Order.Status.PICKED_UP
    if stop is not None and on_trip:
        live_stops = list(
            Stop.objects.filter(batch=batch)
            .exclude(status=Stop.Status.REMOVED)
            .select_related("order")
            .order_by("sequence")
        )
        ahead = [
            s
            for s in live_stops
            if s.sequence < stop.sequence and s.status in (Stop.Status.PENDING, Stop.Status.ARRIVED)
        ]
    heading_here = (
        stop is not None and on_trip and stop.status in (Stop.Status.PENDING, Stop.Status.ARRIVED) and not ahead
    )
    location = _fresh_location(driver, now) if status == Order.Status.PICKED_UP else None

    eta = _eta(order, stop, batch, ahead, live_stops, location, tz, now)
    position = None
    if heading_here and driver is not None and location is not None:
        position = approximate_position(location.lat, location.lng)
        position["updated"] = format_local(location.recorded_at, tz, now)

    delivered = None
    if status == Order.Status.DELIVERED:
        at = (stop.delivered_at if stop else None) or order.status_changed_at
        delivered = {
            "at": at.isoformat(),
            "time": format_local(at, tz, now),
            "photo_url": (
                reverse("tracking-photo", args=[order.tracking_token])
                if stop is not None and stop.status == Stop.Status.DELIVERED and stop.proof_photo
                else None
            ),
        }

    driver_info = None
    if driver is not None and status not in (Order.Status.CANCELLED, Order.Status.RECEIVED):
        name = driver_first_name(driver)
        if status in (Order.Status.BATCHED, Order.Status.READY):
            text = _("%(name)s will pick up your order at the store.") % {"name": name}
        elif status == Order.Status.PICKED_UP:
            text = _("%(name)s is delivering your order.") % {"name": name}
        elif status == Order.Status.DELIVERED:
            text = _("Delivered by %(name)s.") % {"name": name}
        else:
            text = _("Your driver was %(name)s.") % {"name": name}
        driver_info = {"first_name": name, "vehicle": vehicle_label(driver), "text": text}

    return {
        "status": status,
        "status_label": _status_label(status),
        "headline": _headline(order, stop, ahead, heading_here, delivered),
        "timeline": _timeline(order, batch, stop, tz, now),
        "eta": eta,
        "driver": driver_info,
        "stops_before": len(ahead),
        "position": position,
        "delivered": delivered,
        # The shown tip; the tracking page replaces it with the customer's view of payments.Tip.
        "tip": {"cents": int(order.tip_cents), "text": format_cents(int(order.tip_cents)), "note": ""},
        "next_step": _next_step(order),
        "poll": status not in TERMINAL_STATUSES,
        "poll_seconds": POLL_SECONDS,
        "updated_at": now.isoformat(),
    }


def _next_step(order: Order) -> str:
    """What happens next to an order that did not reach the customer."""
    if order.status in (Order.Status.UNDELIVERABLE, Order.Status.RETURNED):
        return _(
            "%(store)s will refund you for this order. Contact the store if you have questions or want it again."
        ) % {"store": order.store.name}
    return ""


def _status_label(status: str) -> str:
    labels: dict[str, str] = {
        Order.Status.RECEIVED: _("Order received"),
        Order.Status.BATCHED: _("Preparing"),
        Order.Status.READY: _("Preparing"),
        Order.Status.PICKED_UP: _("On the way"),
        Order.Status.DELIVERED: _("Delivered"),
        Order.Status.UNDELIVERABLE: _("Could not be delivered"),
        Order.Status.RETURNED: _("Returned to the store"),
        Order.Status.CANCELLED: _("Cancelled"),
    }
    return labels.get(status, status)


def _headline(order: Order, stop, ahead: list, heading_here: bool, delivered) -> str:
    status = order.status
    if status == Order.Status.RECEIVED:
        return _("We have your order")
    if status in (Order.Status.BATCHED, Order.Status.READY):
        return _("The store is preparing your order")
    if status == Order.Status.PICKED_UP:
        if heading_here and stop.status == Stop.Status.ARRIVED:
            return _("Your driver has arrived")
        if heading_here:
            return _("Your driver is heading to you")
        if ahead:
            n = len(ahead)
            return ngettext("On the way: %(n)d stop before yours", "On the way: %(n)d stops before yours", n) % {"n": n}
        return _("Your order is on the way")
    if status == Order.Status.DELIVERED:
        return _("Delivered at %(time)s") % {"time": delivered["time"]} if delivered else _("Delivered")
    if status == Order.Status.UNDELIVERABLE:
        return _("We could not deliver your order; it is going back to the store")
    if status == Order.Status.RETURNED:
        return _("Your order was returned to the store")
    return _("This order was cancelled")


def _timeline(order: Order, batch, stop, tz: ZoneInfo, now: datetime) -> list[dict]:
    """Received, Preparing, On the way, then how it ended; times in the store's zone."""
    # Marker rows (from_status == to_status, e.g. "email:on_the_way") are not status changes.
    last_at: dict[str, datetime] = {}
    for to_status, at in (
        order.events.exclude(from_status=F("to_status"))
        .order_by("created_at", "pk")
        .values_list("to_status", "created_at")
    ):
        last_at[to_status] = at
    status = order.status
    preparing_at = last_at.get(Order.Status.BATCHED) or last_at.get(Order.Status.READY)
    on_the_way_at = last_at.get(Order.Status.PICKED_UP) or (batch.picked_up_at if batch else None)

    steps: list[tuple[str, str, datetime | None]] = [("received", _("Order received"), order.created_at)]
    if status == Order.Status.CANCELLED:
        steps.append(("cancelled", _("Cancelled"), last_at.get(Order.Status.CANCELLED) or order.status_changed_at))
        current = 1
    else:
        steps += [("preparing", _("Preparing"), preparing_at), ("on_the_way", _("On the way"), on_the_way_at)]
        if status in (Order.Status.UNDELIVERABLE, Order.Status.RETURNED):
            steps.append(("undeliverable", _("Could not be delivered"), last_at.get(Order.Status.UNDELIVERABLE)))
            if status == Order.Status.RETURNED:
                steps.append(("returned", _("Returned to the store"), last_at.get(Order.Status.RETURNED)))
            current = len(steps) - 1
        else:
            delivered_at: datetime | None = None
            if status == Order.Status.DELIVERED:
                delivered_at = (stop.delivered_at if stop else None) or last_at.get(Order.Status.DELIVERED)
            steps.append(("delivered", _("Delivered"), delivered_at))
            stage: dict[str, int] = {
                Order.Status.RECEIVED: 0,
                Order.Status.BATCHED: 1,
                Order.Status.READY: 1,
                Order.Status.PICKED_UP: 2,
                Order.Status.DELIVERED: 3,
            }
            current = stage.get(status, 0)
    out = []
    for i, (key, label, step_at) in enumerate(steps):
        state = "done" if i < current else "current" if i == current else "todo"
        out.append(
            {
                "key": key,
                "label": label,
                "state": state,
                "time": format_local(step_at, tz, now) if step_at and i <= current else "",
            }
        )
    return out


def _eta(order: Order, stop, batch, ahead: list, live_stops: list, location, tz, now) -> dict | None:
    """Before pickup: the delivery window. On the way: now + drive time from the driver's last
    position through the stops before this one (+4 min at each), clamped to 1 min..3 h."""
    window = {
        "kind": "window",
        "label": _("Delivery window"),
        "text": format_window(order.window_start, order.window_end, tz, now),
        "at": None,
        "minutes": None,
    }
    status = order.status
    if status in (Order.Status.RECEIVED, Order.Status.BATCHED, Order.Status.READY):
        return window
    if status != Order.Status.PICKED_UP or stop is None or batch is None or batch.status != Batch.Status.PICKED_UP:
        return None
    if stop.status == Stop.Status.ARRIVED:
        return {
            "kind": "arrived",
            "label": _("Estimated arrival"),
            "text": _("Now"),
            "at": now.isoformat(),
            "minutes": 0,
        }
    if stop.status != Stop.Status.PENDING:
        return None
    if location is not None:
        origin = geo.Point.of(location.lat, location.lng)
    else:
        # No recent position: assume the driver is at the last stop done so far, or the store.
        visited = [s for s in live_stops if s.sequence < stop.sequence and s not in ahead]
        last = visited[-1].order if visited else None
        origin = geo.Point.of(last.lat, last.lng) if last else geo.Point.of(batch.store.lat, batch.store.lng)
    points = [origin] + [geo.Point.of(s.order.lat, s.order.lng) for s in ahead]
    points.append(geo.Point.of(order.lat, order.lng))
    seconds = geo.route_s(points) + geo.STOP_SERVICE_SECONDS * len(ahead)
    if seconds > ETA_MAX_SECONDS:
        return window  # a position far away or a bad fix: the window is the honest answer
    seconds = max(ETA_MIN_SECONDS, seconds)
    at = now + timedelta(seconds=seconds)
    if at.second or at.microsecond:  # round up to the minute shown
        at = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    minutes = math.ceil((at - now).total_seconds() / 60)
    return {
        "kind": "estimate",
        "label": _("Estimated arrival"),
        "text": _("Around %(time)s") % {"time": format_local(at, tz, now)},
        "at": at.isoformat(),
        "minutes": minutes,
    }
