"""The driver app: phone-first pages, server-rendered, refreshed with htmx, a little vanilla JS.

Pages read through the selectors; the browser writes through the JSON driver API
(/api/v1/driver/..., session auth + CSRF token) so the app and the API share one code path.
The only writes here are the two a driver makes that have no API of their own: an appeal
(drivers.appeals.driver_appeal_submit) and a Web Push subscription (dispatch.push).

Privacy (DESIGN rule 6): offer, feed and board cards show stop areas only; exact addresses
appear on the Batch page once the batch is the driver's and picked up. Every page is
`Cache-Control: no-store` and the service worker never stores HTML.
"""

import hashlib
import json
import zoneinfo
from datetime import datetime, timedelta
from functools import cache, wraps
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.contrib.staticfiles import finders
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Count, F, Q
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render, resolve_url
from django.templatetags.static import static
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dispatch import feed, push
from dispatch import selectors as dispatch_selectors
from dispatch.models import Offer
from orders import selectors as order_selectors
from orders.models import Batch, Stop
from orders.returns import RETURN_REASONS
from payments.selectors import trip_pay_cents
from spark import geo, roles
from spark.errors import DomainError
from spark.httpkit import safe_next

from . import appeals, selectors
from .api.serializers import DECLINE_REASONS, batch_summary
from .models import Driver, Route

# --- Words the driver reads (the models' labels are English-only) -----------------------

DECLINE_LABELS = {
    "too_far": gettext_lazy("Too far / off my route"),
    "pay_too_low": gettext_lazy("Pay too low"),
    "too_many_stops": gettext_lazy("Too many stops"),
    "heavy": gettext_lazy("Too heavy"),
    "alcohol": gettext_lazy("Alcohol (ID checks)"),
    "no_time": gettext_lazy("Not enough time"),
    "vehicle": gettext_lazy("Does not fit my vehicle"),
    "other": gettext_lazy("Other"),
}
FAIL_LABELS = {
    "refused_alcohol": gettext_lazy("Alcohol refused (no valid ID / under 21)"),
    "no_one_home": gettext_lazy("No one home"),
    "damaged": gettext_lazy("Damaged"),
    "refused": gettext_lazy("Refused by customer"),
    "wrong_address": gettext_lazy("Address not found"),
    "other": gettext_lazy("Other"),
}
REASON_LABELS = {
    "documents_expired": gettext_lazy("License or insurance expired"),
    "screening_failed": gettext_lazy("Background check not passed"),
    "safety": gettext_lazy("Safety report under review"),
    "fraud": gettext_lazy("Suspected fraud"),
    "quality": gettext_lazy("Repeated delivery problems"),
    "inactive": gettext_lazy("Inactive for a long time"),
    "other": gettext_lazy("Other"),
}
STATUS_LABELS = {
    "applicant": gettext_lazy("Applicant"),
    "screening": gettext_lazy("Screening"),
    "active": gettext_lazy("Active"),
    "suspended": gettext_lazy("Suspended"),
    "deactivated": gettext_lazy("Deactivated"),
}
OFFER_KIND_LABELS = {
    "slot": gettext_lazy("Your slot"),
    "route": gettext_lazy("On your route"),
    "board": gettext_lazy("Open board"),
}
OFFER_STATUS_LABELS = {
    "pending": gettext_lazy("Open"),
    "accepted": gettext_lazy("Accepted"),
    "declined": gettext_lazy("Declined"),
    "expired": gettext_lazy("Timed out"),
    "withdrawn": gettext_lazy("Withdrawn"),
    "released": gettext_lazy("Taken back (trip paid)"),
}
STOP_STATUS_LABELS = {
    "pending": gettext_lazy("To deliver"),
    "arrived": gettext_lazy("At the door"),
    "delivered": gettext_lazy("Delivered"),
    "failed": gettext_lazy("Not delivered"),
    "returned": gettext_lazy("Returned to store"),
}
SLOT_CLAIM_LABELS = {
    "claimed": gettext_lazy("Signed up"),
    "checked_in": gettext_lazy("Checked in"),
}

# Batch status -> the screen the driver is on.
PHASES: dict[str, str] = {
    Batch.Status.ASSIGNED: "to_store",
    Batch.Status.AT_STORE: "at_store",
    Batch.Status.PICKED_UP: "stops",
    Batch.Status.RETURNING: "returning",
}
OPEN_STOP_STATUSES = (Stop.Status.PENDING, Stop.Status.ARRIVED)
SLOT_CHECK_IN_EARLY = timedelta(minutes=selectors.SLOT_EARLY_MINUTES)
OPEN_SLOTS_SHOWN = 12
DETOUR_CHOICES_KM = (2, 5, 8, 12, 20, 30)
LAST_BATCH_SHOWN_FOR = timedelta(hours=12)

# API paths the browser calls (drivers/api/urls.py; the delivery flow is drivers/api/delivery.py).
API = "/api/v1/driver"


def _js_strings() -> dict:
    """Everything driver.js shows, translated (one JSON script per page, no JS catalog request)."""
    return {
        "offline": _("No connection. We will try again."),
        "error": _("Something went wrong. Try again."),
        "need_location": _("Allow location access to do this."),
        "locating": _("Finding your location…"),
        "online": _("You are online."),
        "offline_done": _("You are offline."),
        "route_saved": _("Route saved. Batches that fit it are below."),
        "route_need_points": _("Tap the map to set where you start and where you are going."),
        "route_origin": _("Start"),
        "route_dest": _("Destination"),
        "declined": _("Declined. Declines never count against you."),
        "pick_reason": _("Pick a reason first."),
        "draw": _("You're in the draw, result at {time}."),
        "draw_lost": _("Another driver got that batch in the draw."),
        "expired": _("Expired"),
        "uploading": _("Sending the photo… it will be retried until it arrives."),
        "upload_retry": _("Upload failed (attempt {n}); trying again in {s} s."),
        "delivered": _("Delivered. Thank you!"),
        "need_photo": _("Take a photo of the delivery first."),
        "need_id": _("Alcohol: enter the date of birth and take a photo of the ID."),
        "under_21": _("The customer is under 21: alcohol cannot be delivered. Use “Can't deliver” → alcohol refused."),
        "uploads_pending": _("Photos are still uploading; keep the app open."),
        "push_on": _("Offer notifications are on."),
        "push_denied": _("Notifications are blocked in the browser settings."),
        "errors": {
            "offer_expired": _("This offer has expired."),
            "offer_closed": _("This offer is no longer open."),
            "batch_taken": _("Another driver already has this batch."),
            "driver_busy": _("You already have an active batch; finish it first."),
            "throttled": _("Too many tries; wait a moment."),
            "slot_full": _("This slot is full."),
            "not_on_duty": _("Go online to share your location."),
        },
    }


# --- Access ---------------------------------------------------------------------------------


def driver_page(view):
    """Logged-in drivers only (others: login, or 403 with a way to apply). Runs the view in
    the driver's zone time and never lets a browser or proxy store the page."""

    @never_cache
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            if getattr(request, "htmx", False):
                # A poll after the session ended: send the whole page to the login, not a
                # login form swapped into a card.
                home = reverse("driver_app:home")
                page = safe_next(request, home, url=urlsplit(request.htmx.current_url or "").path)
                response = HttpResponse(status=204)
                response["HX-Redirect"] = f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': page})}"
                return response
            return redirect_to_login(request.get_full_path())
        driver = roles.driver_of(request.user)
        if driver is None:
            return render(request, "driver/not_driver.html", status=403)
        driver.user = request.user
        request.driver = driver
        with timezone.override(zoneinfo.ZoneInfo(driver.home_zone.timezone)):
            return view(request, driver, *args, **kwargs)

    return wrapper


def _cannot_work_text(driver: Driver, reason: str | None) -> str:
    """drivers.selectors.driver_can_work decides; this says it in the driver's language."""
    if not reason:
        return ""
    status = Driver.Status
    if driver.status in (status.SUSPENDED, status.DEACTIVATED):
        why = REASON_LABELS.get(driver.reason_code) or _("no reason recorded")
        if driver.status == status.SUSPENDED:
            return _("Your account is suspended: %(why)s.") % {"why": why}
        return _("Your account is deactivated: %(why)s.") % {"why": why}
    if driver.status != status.ACTIVE:
        return _("Your application is not approved yet; you can take work once screening is complete.")
    today = timezone.localdate(timezone.now(), zoneinfo.ZoneInfo(driver.home_zone.timezone))
    for label, expires in (
        (_("driver's license"), driver.license_expires_on),
        (_("insurance"), driver.insurance_expires_on),
    ):
        if expires is None:
            return _("We have no %(doc)s on file; add it to take work.") % {"doc": label}
        if expires < today:
            return _("Your %(doc)s expired on %(date)s; upload the renewed one to take work again.") % {
                "doc": label,
                "date": formats.date_format(expires, "DATE_FORMAT"),
            }
    return reason


def _active_batch(driver: Driver) -> Batch | None:
    return Batch.objects.filter(driver=driver, status__in=Batch.ACTIVE_STATUSES).select_related("store__zone").first()


def _context(request, driver: Driver, tab: str, **extra) -> dict:
    reason = selectors.driver_can_work(driver)
    active = extra.pop("active_batch", None) or _active_batch(driver)
    context = {
        "driver": driver,
        "tab": tab,
        "can_work": reason is None,
        "cannot_work": _cannot_work_text(driver, reason),
        "status_label": STATUS_LABELS.get(driver.status, driver.status),
        "active_batch": active,
        "on_duty": driver.is_online or active is not None,
        "offers_count": dispatch_selectors.offers_for_driver(driver=driver).count() if reason is None else 0,
        "vapid_public_key": getattr(settings, "SPARK_VAPID_PUBLIC_KEY", "") or "",
        "js_strings": _js_strings(),
        "api": API,
    }
    context.update(extra)
    return context


# --- Cards ------------------------------------------------------------------------------------


def _parse(value):
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _miles(meters) -> str:
    return str(geo.meters_to_miles(int(meters or 0)))


def _areas(stops: list[dict]) -> list[dict]:
    """Stop areas for a card: ZIP code, distance from the store, the window; never an address."""
    return [
        {
            "sequence": s["sequence"],
            "postal_code": s["postal_code"],
            "miles_from_store": _miles(s["distance_from_store_m"]),
            "window_end": _parse(s["window_end"]),
            "totes": s["totes"],
            "heavy": s["heavy"],
            "alcohol": s["alcohol"],
        }
        for s in stops
    ]


def _feed_card(card: dict) -> dict:
    """A route_feed / board_for entry, ready for the template."""
    return {
        **card,
        "miles": _miles(card["distance_m"]),
        "detour_km": round(card["detour_m"] / 1000, 1) if card.get("detour_m") is not None else None,
        "pickup_by": _parse(card.get("pickup_by")),
        "areas": _areas(card["stops"]),
    }


def _pay(offer):
    try:
        return offer.pay if offer is not None else None
    except ObjectDoesNotExist:
        return None


def _offer_cards(driver: Driver) -> list[dict]:
    cards = []
    for offer in dispatch_selectors.offers_for_driver(driver=driver):
        summary = batch_summary(offer.batch)
        cards.append(
            {
                "offer": offer,
                "pay": _pay(offer),
                "kind_label": OFFER_KIND_LABELS.get(offer.kind, offer.kind),
                "seconds_left": max(0, int((offer.expires_at - timezone.now()).total_seconds())),
                "store": summary["store"],
                "stops_count": summary["stops_count"],
                "miles": summary["miles"],
                "drive_minutes": summary["drive_minutes"],
                "totes": summary["totes"],
                "heavy": summary["heavy"],
                "alcohol": summary["alcohol"],
                "pickup_by": _parse(summary["pickup_by"]),
                "areas": _areas(summary["stops"]),
            }
        )
    return cards


def _nav_links(lat, lng, label: str = "") -> dict:
    """The phone's maps app: Google Maps directions (opens the app on Android and iOS), and
    a geo: URI for other map apps."""
    point = f"{float(lat):.6f},{float(lng):.6f}"
    geo_uri = f"geo:{point}?q={point}"
    if label:
        geo_uri += f"({label})"
    return {"google": f"https://www.google.com/maps/dir/?api=1&destination={point}", "geo": geo_uri}


# --- Home -------------------------------------------------------------------------------------


def _route_context(driver: Driver) -> dict:
    route = Route.objects.filter(driver=driver, is_active=True).first()
    zone = driver.home_zone
    return {
        "route": route,
        "route_is_trip": route is not None and route.mode == Route.Mode.TRIP,
        "detour_choices": DETOUR_CHOICES_KM,
        "detour_km": round((route.max_detour_meters if route else 8000) / 1000),
        "map_center": {"lat": float(zone.center_lat), "lng": float(zone.center_lng)},
        "map_route": {
            "origin": [float(route.origin_lat), float(route.origin_lng)],
            "dest": [float(route.dest_lat), float(route.dest_lng)]
            if route.dest_lat is not None and route.dest_lng is not None
            else None,
        }
        if route
        else None,
    }


def _slots_context(driver: Driver, *, more: bool = False) -> dict:
    now = timezone.now()
    slots = selectors.upcoming_slots_for(driver, now=now)
    cutoff = timedelta(minutes=driver.home_zone.slot_cancel_cutoff_minutes)
    mine, open_slots = [], []
    for slot in slots:
        claim = getattr(slot, "my_claim", None)  # set by upcoming_slots_for
        if claim:
            free_until = slot.starts_at - cutoff
            mine.append(
                {
                    "slot": slot,
                    "claim_label": SLOT_CLAIM_LABELS.get(claim.status, claim.status),
                    "can_check_in": claim.status == "claimed" and slot.starts_at - SLOT_CHECK_IN_EARLY <= now,
                    "can_cancel": claim.status == "claimed" and now < slot.starts_at,
                    "cancel_free_until": free_until,
                    "late_cancel": now > free_until,
                }
            )
        elif slot.seats_free > 0 and slot.starts_at > now:
            open_slots.append(slot)
    limit = 100 if more else OPEN_SLOTS_SHOWN
    return {"my_slots": mine, "open_slots": open_slots[:limit], "more_slots": len(open_slots) > limit}


def _feed_context(driver: Driver) -> dict:
    return {"feed": [_feed_card(c) for c in feed.route_feed(driver, now=timezone.now(), limit=20)]}


@driver_page
def home(request, driver: Driver):
    context = _context(request, driver, "home")
    if context["can_work"]:
        context.update(_route_context(driver))
        context.update(_slots_context(driver))
        context.update(_feed_context(driver))
    return render(request, "driver/home.html", context)


@require_GET
@driver_page
def duty_partial(request, driver: Driver):
    return render(request, "driver/_duty.html", _context(request, driver, "home"))


@require_GET
@driver_page
def route_partial(request, driver: Driver):
    return render(request, "driver/_route_summary.html", _context(request, driver, "home", **_route_context(driver)))


@require_GET
@driver_page
def slots_partial(request, driver: Driver):
    context = _context(request, driver, "home")
    if context["can_work"]:
        context.update(_slots_context(driver, more=request.GET.get("more") == "1"))
    return render(request, "driver/_slots.html", context)


@require_GET
@driver_page
def feed_partial(request, driver: Driver):
    context = _context(request, driver, "home")
    if context["can_work"]:
        context.update(_feed_context(driver))
    return render(request, "driver/_feed.html", context)


# --- Offers -----------------------------------------------------------------------------------


def _offers_context(request, driver: Driver) -> dict:
    context = _context(request, driver, "offers")
    if context["can_work"]:
        context["offer_cards"] = _offer_cards(driver)
        context["board"] = [_feed_card(c) for c in feed.board_for(driver, now=timezone.now(), limit=30)]
    context["decline_reasons"] = [(key, DECLINE_LABELS.get(key, label)) for key, label in DECLINE_REASONS.items()]
    context["server_now_ms"] = int(timezone.now().timestamp() * 1000)
    return context


@driver_page
def offers(request, driver: Driver):
    return render(request, "driver/offers.html", _offers_context(request, driver))


@require_GET
@driver_page
def offers_live(request, driver: Driver):
    return render(request, "driver/_offers_live.html", _offers_context(request, driver))


# --- Batch ------------------------------------------------------------------------------------


def _batch_context(request, driver: Driver) -> dict:
    batch = _active_batch(driver)
    context = _context(request, driver, "batch", active_batch=batch)
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
        context["taken_back"] = _taken_back(driver, after=last.closed_at if last else None)
        return context
    stops = order_selectors.batch_stops(batch=batch)
    for stop in stops:
        order = stop.order
        stop.nav = _nav_links(order.lat, order.lng)
        stop.status_label = STOP_STATUS_LABELS.get(stop.status, stop.status)
        stop.is_open = stop.status in OPEN_STOP_STATUSES
    open_stops = [s for s in stops if s.is_open]
    offer = batch.offers.filter(driver=driver, status=Offer.Status.ACCEPTED).select_related("pay").first()
    policy = getattr(batch.store.zone, "pay_policy", None)
    context.update(
        {
            "batch": batch,
            "phase": PHASES.get(batch.status, "none"),
            "stops": stops,
            "current_stop": open_stops[0] if open_stops else None,
            "delivered_count": sum(1 for s in stops if s.status == Stop.Status.DELIVERED),
            "return_stops": [s for s in stops if s.status == Stop.Status.FAILED],
            "can_complete": batch.status == Batch.Status.PICKED_UP and not open_stops,
            "pay": _pay(offer),
            "store_nav": _nav_links(batch.store.lat, batch.store.lng, batch.store.name),
            "areas": _areas(order_selectors.stop_areas(batch=batch))
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
    return context


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


# --- Standing ---------------------------------------------------------------------------------


def _standing(driver: Driver) -> dict:
    """The driver's record: on-time deliveries, completed batches, how offers ended."""
    delivered = Stop.objects.filter(batch__driver=driver, status=Stop.Status.DELIVERED).aggregate(
        n=Count("pk"), on_time=Count("pk", filter=Q(delivered_at__lte=F("order__window_end")))
    )
    offers = Offer.objects.filter(driver=driver).aggregate(
        accepted=Count("pk", filter=Q(status=Offer.Status.ACCEPTED)),
        declined=Count("pk", filter=Q(status=Offer.Status.DECLINED)),
        expired=Count("pk", filter=Q(status=Offer.Status.EXPIRED)),
    )
    return {
        "delivered": delivered["n"],
        "on_time": delivered["on_time"],
        "on_time_pct": round(100 * delivered["on_time"] / delivered["n"]) if delivered["n"] else None,
        "completed_batches": Batch.objects.filter(driver=driver, status=Batch.Status.COMPLETED).count(),
        "offers_accepted": offers["accepted"],
        "declines": offers["declined"],
        "timeouts": offers["expired"],
        # Customers cannot rate drivers yet; the page says so rather than showing a made-up score.
        "rating": None,
    }


@require_http_methods(["GET", "POST"])
@driver_page
def standing(request, driver: Driver):
    appeal_error = ""
    if request.method == "POST":
        try:
            appeals.driver_appeal_submit(driver=driver, text=request.POST.get("text", ""))
        except DomainError as exc:
            appeal_error = _appeal_error_text(exc)
        else:
            messages.success(request, _("Your appeal was sent. Ops will review it and tell you the outcome."))
            return redirect("driver_app:standing")
    context = _context(request, driver, "standing")
    context.update(
        {
            "standing": _standing(driver),
            "reason_label": REASON_LABELS.get(driver.reason_code, ""),
            "can_appeal": driver.status in appeals.APPEALABLE and not appeals.appeal_pending(driver),
            "appeal_pending": appeals.appeal_pending(driver),
            "appeal_error": appeal_error,
            "appeal_text": request.POST.get("text", "") if appeal_error else "",
            "appeal_min": appeals.APPEAL_MIN_CHARS,
            "appeal_max": appeals.APPEAL_MAX_CHARS,
        }
    )
    return render(request, "driver/standing.html", context, status=400 if appeal_error else 200)


def _appeal_error_text(exc: DomainError) -> str:
    words = {
        "appeal_too_short": _("Tell us in a few words (at least %(n)s characters) why the decision should change.")
        % {"n": appeals.APPEAL_MIN_CHARS},
        "appeal_too_long": _("Keep the appeal under %(n)s characters.") % {"n": appeals.APPEAL_MAX_CHARS},
        "appeal_pending": _("You already appealed this decision; ops will get back to you."),
        "not_appealable": _("Your account is not suspended; there is nothing to appeal."),
    }
    return words.get(exc.code, exc.message)


@require_GET
@driver_page
def dispatch_log(request, driver: Driver):
    """The driver's own dispatch log as HTML (the same rows as GET /api/v1/driver/dispatch-log/)."""
    offers = list(
        Offer.objects.filter(driver=driver).select_related("batch__store", "pay").order_by("-created_at")[:50]
    )
    rows = [
        {
            "offer": offer,
            "pay": _pay(offer),
            "status_label": OFFER_STATUS_LABELS.get(offer.status, offer.status),
            "kind_label": OFFER_KIND_LABELS.get(offer.kind, offer.kind),
            "decline_label": DECLINE_LABELS.get(offer.decline_reason, offer.decline_reason),
        }
        for offer in offers
    ]
    return render(request, "driver/_dispatch_log.html", {"rows": rows, "driver": driver})


# --- Web Push subscription ------------------------------------------------------------------


def _json_body(request) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested ~1,000 levels deep
        return {}
    return data if isinstance(data, dict) else {}


def _error(message: str, code: str, status: int, fields: dict | None = None) -> JsonResponse:
    return JsonResponse({"detail": message, "code": code, "fields": fields or {}}, status=status)


def _driver_for_json(request) -> Driver | None:
    return roles.driver_of(request.user) if request.user.is_authenticated else None


@require_POST
@never_cache
def push_subscribe(request):
    """Store this browser's push subscription (the JSON of PushSubscription.toJSON())."""
    driver = _driver_for_json(request)
    if driver is None:
        return _error("This endpoint is for drivers.", "forbidden", 403)
    data = _json_body(request)
    keys = data.get("keys")
    if not isinstance(keys, dict):
        keys = {}
    try:
        push.push_subscription_save(
            driver=driver,
            endpoint=str(data.get("endpoint") or ""),
            p256dh=str(keys.get("p256dh") or ""),
            auth=str(keys.get("auth") or ""),
        )
    except DomainError as exc:
        return _error(exc.message, exc.code, exc.status_code, exc.fields)
    return JsonResponse({"status": "subscribed", "detail": "Offer notifications are on."}, status=201)


@require_POST
@never_cache
def push_unsubscribe(request):
    driver = _driver_for_json(request)
    if driver is None:
        return _error("This endpoint is for drivers.", "forbidden", 403)
    deleted = push.push_subscription_delete(driver=driver, endpoint=str(_json_body(request).get("endpoint") or ""))
    return JsonResponse({"status": "unsubscribed", "deleted": deleted})


# --- PWA: offline page, manifest, service worker --------------------------------------------


@require_GET
def offline(request):
    """The service worker's fallback when a page cannot load. No login and no personal data:
    it is stored in the browser's cache."""
    return render(request, "driver/offline.html")


def _static_source(name: str) -> str:
    """A file of static/ by its static path: from the source folders (finders), else from the
    collected files (a deploy that ships only STATIC_ROOT)."""
    found = finders.find(name)
    if found:
        return Path(found).read_text(encoding="utf-8")
    from django.contrib.staticfiles.storage import staticfiles_storage

    with staticfiles_storage.open(name) as f:
        return f.read().decode("utf-8")


# The app shell: what the service worker keeps so the app opens on a weak or no signal.
SHELL_ASSETS = (
    "css/driver.css",
    "js/driver.js",
    "vendor/htmx/htmx.min.js",
    "vendor/leaflet/leaflet.js",
    "vendor/leaflet/leaflet.css",
    "vendor/leaflet/images/marker-icon.png",
    "vendor/leaflet/images/marker-icon-2x.png",
    "vendor/leaflet/images/marker-shadow.png",
    "icons/icon-192.png",
    "icons/badge-72.png",
)


def _manifest_data() -> dict:
    data = json.loads(_static_source("manifest.webmanifest"))
    prefix = "/static/"
    for icon in data.get("icons", []):
        if icon.get("src", "").startswith(prefix):
            icon["src"] = static(icon["src"][len(prefix) :])  # hashed names in production
    return data


def _service_worker_source() -> tuple[str, str]:
    """(script, etag). The script is static/sw.js behind a one-line config with the shell's
    URLs; its version is a hash of sw.js and the shell (URLs and contents), so a deploy that
    changes any of them installs a new worker, which drops the old cache."""
    shell = [static(name) for name in SHELL_ASSETS]
    offline_url = reverse("driver_app:offline")
    source = _static_source("sw.js")
    digest = hashlib.sha256(json.dumps([shell, offline_url, source]).encode())
    for name in SHELL_ASSETS:  # unhashed static URLs (DEBUG, tests): the contents decide
        found = finders.find(name)
        if found:
            digest.update(Path(found).read_bytes())
    version = digest.hexdigest()[:12]
    config = {
        "version": version,
        "shell": shell,
        "offline": offline_url,
        "icon": static("icons/icon-192.png"),
        "badge": static("icons/badge-72.png"),
    }
    script = f"self.SPARK_SW = {json.dumps(config)};\n{source}"
    return script, version


if not settings.DEBUG:
    # Files do not change under a running production process; in DEBUG edits show at once.
    _manifest_data = cache(_manifest_data)
    _service_worker_source = cache(_service_worker_source)


@require_GET
def manifest(request):
    data = dict(_manifest_data())
    data["lang"] = getattr(request, "LANGUAGE_CODE", settings.LANGUAGE_CODE)
    data["description"] = _("Spark for drivers: offers on your route, delivery slots and your pay.")
    response = HttpResponse(json.dumps(data, ensure_ascii=False), content_type="application/manifest+json")
    response["Cache-Control"] = "public, max-age=3600"
    return response


@require_GET
def service_worker(request):
    """/sw.js at the site root. The app registers it for /driver/; Service-Worker-Allowed: /
    lets a later registration widen the scope without moving the script."""
    script, version = _service_worker_source()
    etag = f'"{version}"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(script, content_type="application/javascript; charset=utf-8")
    response["Service-Worker-Allowed"] = "/"
    response["ETag"] = etag
    # Browsers re-check a worker at least daily anyway; no-cache makes every check a revalidation.
    response["Cache-Control"] = "no-cache"
    return response
