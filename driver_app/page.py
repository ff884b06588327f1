"""What every driver app page shares: the driver_page decorator (login, driver, zone time,
no-store), the common page context and small formatting helpers."""

import zoneinfo
from datetime import datetime
from functools import wraps
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ObjectDoesNotExist
from django.http import HttpResponse
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from dispatch import selectors as dispatch_selectors
from driver_app.labels import API, REASON_LABELS, STATUS_LABELS, js_strings
from drivers import selectors
from drivers.models import Driver
from orders.models import Batch, Stop
from spark import geo, roles
from spark.httpkit import safe_next

OPEN_STOP_STATUSES = (Stop.Status.PENDING, Stop.Status.ARRIVED)


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


def cannot_work_text(driver: Driver, reason: str | None) -> str:
    """drivers.selectors.driver_work_refusal decides; this says it in the driver's language."""
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


def active_batch_of(driver: Driver) -> Batch | None:
    return Batch.objects.filter(driver=driver, status__in=Batch.ACTIVE_STATUSES).select_related("store__zone").first()


def page_context(request, driver: Driver, tab: str, **extra) -> dict:
    reason = selectors.driver_work_refusal(driver)
    active = extra.pop("active_batch", None) or active_batch_of(driver)
    # The badge carries the ids of the pending offers: driver.js rings and vibrates for an id it
    # has not seen while the app is open.
    offer_ids = (
        list(dispatch_selectors.offers_for_driver(driver=driver).values_list("pk", flat=True)) if reason is None else []
    )
    context = {
        "driver": driver,
        "tab": tab,
        "can_work": reason is None,
        "cannot_work": cannot_work_text(driver, reason),
        "status_label": STATUS_LABELS.get(driver.status, driver.status),
        "active_batch": active,
        "on_duty": driver.is_online or active is not None,
        "offer_ids": offer_ids,
        "offers_count": len(offer_ids),
        "vapid_public_key": getattr(settings, "SPARK_VAPID_PUBLIC_KEY", "") or "",
        "js_strings": js_strings(),
        "api": API,
    }
    context.update(extra)
    return context


def parse_time(value):
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def miles(meters) -> str:
    return str(geo.meters_to_miles(int(meters or 0)))


def stop_areas(stops: list[dict]) -> list[dict]:
    """Stop areas for a card: ZIP code, distance from the store, the window; never an address."""
    return [
        {
            "sequence": s["sequence"],
            "postal_code": s["postal_code"],
            "from_store": geo.format_distance(s["distance_from_store_m"]),
            "window_end": parse_time(s["window_end"]),
            "totes": s["totes"],
            "heavy": s["heavy"],
            "alcohol": s["alcohol"],
        }
        for s in stops
    ]


def offer_pay(offer):
    try:
        return offer.pay if offer is not None else None
    except ObjectDoesNotExist:
        return None


def guaranteed_cents(pay) -> int | None:
    """The least a batch pays, from its offer's pay snapshot: the total without the customers'
    tips (payments.models.BatchPay.snapshot_cents). Tips are paid as the customers leave them."""
    return None if pay is None else pay.total_cents - pay.tip_cents


def nav_links(lat, lng, label: str = "") -> dict:
    """The phone's maps app: Google Maps directions (opens the app on Android and iOS), and
    a geo: URI for other map apps."""
    point = f"{float(lat):.6f},{float(lng):.6f}"
    geo_uri = f"geo:{point}?q={point}"
    if label:
        geo_uri += f"({label})"
    return {"google": f"https://www.google.com/maps/dir/?api=1&destination={point}", "geo": geo_uri}
