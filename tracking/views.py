"""The tracking views: the page, its JSON and the delivery photo, behind one token lookup, one
rate limit per client IP and one set of privacy headers."""

import hashlib
import math
import mimetypes
import re
import time
from typing import TypeVar

from django.core.cache import cache
from django.http import FileResponse, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from orders.models import Order, Stop
from orders.tracking import tracking_setting, tracking_state
from spark.httpkit import client_ip

DEFAULT_RATE_LIMIT = 60  # requests per client IP per window, page + JSON + photo together


DEFAULT_RATE_WINDOW_SECONDS = 60


DEFAULT_MAP_TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"


# token_urlsafe(32) is 43 characters; anything that cannot be a token is a 404 without a query.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


_R = TypeVar("_R", bound=HttpResponseBase)


PHOTO_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}


def rate_limit_wait(request) -> int | None:
    """Count this request against the client IP's fixed window in Django's cache. Returns the
    seconds until the window resets when the client is over the limit, else None."""
    limit = int(tracking_setting("SPARK_TRACKING_RATE_LIMIT", DEFAULT_RATE_LIMIT))
    window = int(tracking_setting("SPARK_TRACKING_RATE_WINDOW_SECONDS", DEFAULT_RATE_WINDOW_SECONDS))
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
    return {"tile_url": tracking_setting("SPARK_MAP_TILE_URL", DEFAULT_MAP_TILE_URL)}


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
