"""The customer's tracking page `/t/<token>` (no login: the unguessable token is the credential).

Three views share one lookup, one rate limit and one set of privacy headers:
- `tracking`: the phone-first page;
- `tracking_status`: the same facts as JSON, polled by static/js/tracking.js every 15 s;
- `tracking_photo`: the proof-of-delivery photo, streamed from storage only for the right
  token and only once the order is delivered (never a guessable media URL).

What the customer may see (the page and the JSON follow the same rules, both built from
`tracking_state`): the driver's first name and vehicle once a driver has the batch (never the
last name, phone or plate); the driver's position, rounded to a ~200 m grid, only while the batch
is picked up and this order's stop is the next one in sequence (never at other customers' stops,
never before pickup, never after delivery); nothing about the other stops but how many come first.
"""

import hashlib
import math
import mimetypes
import re
import time
from datetime import datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import F
from django.http import FileResponse, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_safe

from spark import geo
from spark.httpkit import client_ip
from spark.money import format_cents

from .models import Batch, Order, Stop

# --- Settings (all optional; tests lower the rate limit) -------------------------------------

DEFAULT_RATE_LIMIT = 60  # requests per client IP per window, page + JSON + photo together
DEFAULT_RATE_WINDOW_SECONDS = 60
DEFAULT_POSITION_GRID_M = 200  # the driver's position is snapped to a grid of this size
DEFAULT_LOCATION_MAX_AGE_SECONDS = 600  # an older position is neither shown nor used for the ETA
DEFAULT_MAP_TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
ETA_MIN_SECONDS = 60
ETA_MAX_SECONDS = 3 * 3600  # beyond this the estimate is not believable: show the window instead
POLL_SECONDS = 15

# token_urlsafe(32) is 43 characters; anything that cannot be a token is a 404 without a query.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")

TERMINAL_STATUSES = (
    Order.Status.DELIVERED,
    Order.Status.UNDELIVERABLE,
    Order.Status.RETURNED,
    Order.Status.CANCELLED,
)
_R = TypeVar("_R", bound=HttpResponseBase)
PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


def _setting(name: str, default):
    return getattr(settings, name, default)


# --- Time helpers --------------------------------------------------------------------------


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


# --- Who may see what --------------------------------------------------------------------------


def vehicle_label(driver) -> str:
    """ "Blue Toyota Corolla": color, make, model; never the plate."""
    parts = [driver.vehicle_color, driver.vehicle_make, driver.vehicle_model]
    label = " ".join(p.strip() for p in parts if p and p.strip())
    return label or driver.get_vehicle_type_display()


def driver_first_name(driver) -> str:
    return (driver.user.first_name or "").strip() or _("Your driver")


def approximate_position(lat, lng, grid_m: int | None = None) -> dict:
    """Snap a position to a grid of `grid_m` metres (at most ~0.71 x grid_m off, never exact)."""
    grid_m = grid_m or int(_setting("SPARK_TRACKING_POSITION_GRID_M", DEFAULT_POSITION_GRID_M))
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
    max_age = int(_setting("SPARK_TRACKING_LOCATION_MAX_AGE_SECONDS", DEFAULT_LOCATION_MAX_AGE_SECONDS))
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
        "tip": {
            "cents": int(order.tip_cents),
            "text": format_cents(int(order.tip_cents)),
            "note": _("you can add to your tip after delivery"),
        },
        "poll": status not in TERMINAL_STATUSES,
        "poll_seconds": POLL_SECONDS,
        "updated_at": now.isoformat(),
    }


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


# --- Request plumbing --------------------------------------------------------------------------


def rate_limit_wait(request) -> int | None:
    """Count this request against the client IP's fixed window in Django's cache. Returns the
    seconds until the window resets when the client is over the limit, else None."""
    limit = int(_setting("SPARK_TRACKING_RATE_LIMIT", DEFAULT_RATE_LIMIT))
    window = int(_setting("SPARK_TRACKING_RATE_WINDOW_SECONDS", DEFAULT_RATE_WINDOW_SECONDS))
    now = time.time()
    bucket = int(now // window)
    ident = hashlib.sha256(client_ip(request).encode()).hexdigest()[:32]  # no raw IPs in the cache
    key = f"tracking:rl:{ident}:{bucket}"
    cache.add(key, 0, timeout=window + 5)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=window + 5)
        count = 1
    if count > limit:
        return max(1, math.ceil((bucket + 1) * window - now))
    return None


def _private(response: _R, *, cache_control: str = "no-store") -> _R:
    response["Referrer-Policy"] = "no-referrer"  # the token is in the URL: never pass it on
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Cache-Control"] = cache_control
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _find_order(token: str) -> Order | None:
    if not TOKEN_RE.match(token or ""):
        return None
    return Order.objects.select_related("store", "store__zone").filter(tracking_token=token).first()


def _too_many(request, wait: int, *, as_json: bool) -> HttpResponse:
    response: HttpResponse
    if as_json:
        response = JsonResponse(
            {"detail": _("Too many requests; try again in a minute."), "code": "rate_limited"}, status=429
        )
    else:
        response = render(request, "tracking/rate_limited.html", {"retry_after": wait}, status=429)
    response["Retry-After"] = str(wait)
    return _private(response)


def _not_found(request, *, as_json: bool) -> HttpResponse:
    if as_json:
        return _private(JsonResponse({"detail": _("Not found."), "code": "not_found"}, status=404))
    return _private(render(request, "tracking/not_found.html", status=404))


def _map_context() -> dict:
    return {"tile_url": _setting("SPARK_MAP_TILE_URL", DEFAULT_MAP_TILE_URL)}


# --- Views -------------------------------------------------------------------------------------


@require_safe
def tracking(request, token: str):
    """The customer's tracking page (no login; the unguessable token is the credential)."""
    wait = rate_limit_wait(request)
    if wait is not None:
        return _too_many(request, wait, as_json=False)
    order = _find_order(token)
    if order is None:
        return _not_found(request, as_json=False)
    state = tracking_state(order)
    context = {
        "order": order,
        "store_name": order.store.name,
        "state": state,
        "status_url": reverse("tracking-status", args=[order.tracking_token]),
        # The customer's own address is the map's reference point; never another stop.
        "destination": {"lat": float(order.lat), "lng": float(order.lng)},
        **_map_context(),
    }
    return _private(render(request, "tracking/order.html", context))


@require_safe
def tracking_status(request, token: str):
    """The page's facts as JSON (polled every 15 s); same privacy rules as the page."""
    wait = rate_limit_wait(request)
    if wait is not None:
        return _too_many(request, wait, as_json=True)
    order = _find_order(token)
    if order is None:
        return _not_found(request, as_json=True)
    return _private(JsonResponse(tracking_state(order)))


@require_safe
def tracking_photo(request, token: str):
    """The proof-of-delivery photo: only for this order's token and only once it is delivered."""
    wait = rate_limit_wait(request)
    if wait is not None:
        return _too_many(request, wait, as_json=False)
    order = _find_order(token)
    if order is None or order.status != Order.Status.DELIVERED:
        return _not_found(request, as_json=False)
    stop = (
        Stop.objects.filter(order=order, status=Stop.Status.DELIVERED)
        .exclude(proof_photo="")
        .exclude(proof_photo__isnull=True)
        .first()
    )
    if stop is None:
        return _not_found(request, as_json=False)
    name = stop.proof_photo.name
    ext = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    content_type = PHOTO_TYPES.get(ext) or mimetypes.guess_type(name)[0] or ""
    if not content_type.startswith("image/"):
        content_type = "application/octet-stream"
    try:
        handle = stop.proof_photo.storage.open(name, "rb")
    except (FileNotFoundError, OSError):
        return _not_found(request, as_json=False)
    response = FileResponse(handle, content_type=content_type)
    response["Content-Disposition"] = f'inline; filename="delivery{ext or ".jpg"}"'
    return _private(response, cache_control="private, max-age=300")
