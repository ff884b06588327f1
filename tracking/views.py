"""The tracking views: the page, its JSON and the delivery photo, behind one token lookup, one
rate limit per client IP and one set of privacy headers."""

import hashlib
import logging
import math
import mimetypes
import re
import secrets
import time
from functools import wraps
from typing import TypeVar

import stripe
from django.core.cache import cache
from django.http import FileResponse, HttpResponse, HttpResponseBase, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from orders.models import Order, Stop
from orders.ratings import delivery_rate, delivery_rating_of
from orders.tracking import tracking_setting, tracking_state
from payments.tips import tip_charge_authorize, tip_raise_by_customer
from payments.tips_selectors import customer_tip
from spark.errors import DomainError
from spark.httpkit import client_ip

from .forms import RatingForm, TipRaiseForm

logger = logging.getLogger(__name__)

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
    # The token is in the URL: never pass it on to another site. "same-origin" rather than
    # "no-referrer": under no-referrer a browser posts the page's forms (tip, rating) with
    # `Origin: null`, which Django's CSRF check rightly refuses; our own origin has the token.
    response["Referrer-Policy"] = "same-origin"
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


def tracked_order(*, as_json: bool = False):
    """Every tracking view starts the same way: the per-IP rate limit, then the order of the
    token (a 404 without it). The view gets the order instead of the token."""

    def decorate(view):
        @wraps(view)
        def wrapper(request, token: str):
            wait = rate_limit_wait(request)
            if wait is not None:
                return _too_many(request, wait, as_json=as_json)
            order = _find_order(token)
            if order is None:
                return _not_found(request, as_json=as_json)
            return view(request, order)

        return wrapper

    return decorate


def _map_context() -> dict:
    return {"tile_url": tracking_setting("SPARK_MAP_TILE_URL", DEFAULT_MAP_TILE_URL)}


def _state(order: Order) -> dict:
    """tracking_state, with the tip as the customer sees it (payments.Tip, not the shown copy)."""
    state = tracking_state(order)
    state["tip"] = customer_tip(order)
    return state


# What the page says after a POST (?done=...): the raise went through, was declined, or is being
# confirmed (Stripe did not answer in time; the sweeper finishes it), or the rating was saved.
DONE_MESSAGES = {
    "raised": lambda: _("Thank you! Your tip was raised; all of it goes to your driver."),
    "declined": lambda: _("Your card declined the raise; your tip stays as it was."),
    "confirming": lambda: _("We are confirming the raise with your card; this page will show it."),
    "rated": lambda: _("Thank you for rating your delivery."),
}


def _page(request, order: Order, *, tip_form=None, rating_form=None, status: int = 200) -> HttpResponse:
    state = _state(order)
    rating = delivery_rating_of(order) if order.status == Order.Status.DELIVERED else None
    done = DONE_MESSAGES.get(request.GET.get("done", ""))
    context = {
        "order": order,
        "store_name": order.store.name,
        "state": state,
        "status_url": reverse("tracking-status", args=[order.tracking_token]),
        # The customer's own address is the map's reference point; never another stop.
        "destination": {"lat": float(order.lat), "lng": float(order.lng)},
        "tip_form": tip_form or TipRaiseForm(initial={"request_key": secrets.token_urlsafe(24)}),
        "tip_url": reverse("tracking-tip", args=[order.tracking_token]),
        "rating": rating,
        "can_rate": order.status == Order.Status.DELIVERED and rating is None and state["driver"] is not None,
        "rating_form": rating_form or RatingForm(),
        "rate_url": reverse("tracking-rate", args=[order.tracking_token]),
        "done": done() if done else "",
        **_map_context(),
    }
    return _private(render(request, "tracking/order.html", context, status=status))


@require_safe
@tracked_order(as_json=False)
def tracking(request, order: Order):
    """The customer's tracking page (no login; the unguessable token is the credential)."""
    return _page(request, order)


def _back(order: Order, done: str) -> HttpResponseRedirect:
    url = reverse("tracking", args=[order.tracking_token]) + f"?done={done}"
    return _private(HttpResponseRedirect(url, status=303))


def _form_error(exc: DomainError) -> str:
    words = {
        "tip_closed": _("This tip can no longer be raised here."),
        "not_a_raise": _("Enter an amount higher than your current tip."),
        "invalid_amount": _("Enter an amount in dollars, like 7.50."),
        "already_rated": _("You rated this delivery already."),
        "not_delivered": _("You can rate your delivery once it was delivered."),
    }
    return words.get(exc.code, _("That did not work; nothing was changed."))


@require_POST
@tracked_order(as_json=False)
def tracking_tip(request, order: Order):
    """The customer raises their tip (CSRF-checked form; `request_key` makes a double submit
    one raise). The difference is authorised on their saved card right away, outside any
    transaction; when Stripe does not answer, the beat sweeper finishes it."""
    form = TipRaiseForm(request.POST)
    if not form.is_valid():
        return _page(request, order, tip_form=form, status=400)
    try:
        charge = tip_raise_by_customer(
            order=order, new_amount_cents=form.cleaned_data["amount"], request_key=form.cleaned_data["request_key"]
        )
    except DomainError as exc:
        form.add_error("amount", _form_error(exc))
        return _page(request, order, tip_form=form, status=exc.status_code if exc.status_code < 500 else 400)
    try:
        outcome = tip_charge_authorize(charge_id=charge.pk)
    except stripe.StripeError:
        logger.warning("tip charge %s: Stripe did not answer; the sweeper retries", charge.pk, exc_info=True)
        outcome = "pending"
    done = {"authorized": "raised", "captured": "raised", "failed": "declined"}.get(outcome, "confirming")
    return _back(order, done)


@require_POST
@tracked_order(as_json=False)
def tracking_rate(request, order: Order):
    """The customer rates the delivery, once (CSRF-checked form)."""
    form = RatingForm(request.POST)
    if not form.is_valid():
        return _page(request, order, rating_form=form, status=400)
    try:
        delivery_rate(order=order, stars=form.cleaned_data["stars"], note=form.cleaned_data["note"])
    except DomainError as exc:
        form.add_error(None, _form_error(exc))
        return _page(request, order, rating_form=form, status=exc.status_code if exc.status_code < 500 else 400)
    return _back(order, "rated")


@require_safe
@tracked_order(as_json=True)
def tracking_status(request, order: Order):
    """The page's facts as JSON (polled every 15 s); same privacy rules as the page."""
    return _private(JsonResponse(_state(order)))


@require_safe
@tracked_order()
def tracking_photo(request, order: Order):
    """The proof-of-delivery photo: only for this order's token and only once it is delivered."""
    if order.status != Order.Status.DELIVERED:
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
