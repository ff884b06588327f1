"""The driver's standing (status, reason, appeal) and their dispatch log."""

from django.contrib import messages
from django.db.models import Count, F, Q
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from dispatch.models import Offer
from driver_app.labels import DECLINE_LABELS, OFFER_KIND_LABELS, OFFER_STATUS_LABELS, REASON_LABELS
from driver_app.page import driver_page, offer_pay, page_context
from drivers import appeals
from drivers.models import Driver
from orders.models import Batch, Stop
from orders.ratings import driver_rating
from spark import geo
from spark.errors import DomainError


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
        # Customers rate deliveries on the tracking page (orders.ratings); None until one did.
        "rating": driver_rating(driver),
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
    context = page_context(request, driver, "standing")
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


def offer_why(offer: Offer) -> str:
    """Why the driver got the offer, in their language, from what dispatch recorded with it
    (rank_detail); rank_reason stays the English line for ops."""
    detail = offer.rank_detail or {}
    if offer.kind == Offer.Kind.SLOT:
        return _("You hold a slot at this store (#%(rank)s by fairness).") % {"rank": detail.get("rank", 1)}
    if offer.kind == Offer.Kind.ROUTE:
        return _("On your route: %(detour)s out of your way.") % {
            "detour": geo.format_distance(detail.get("detour_m") or 0)
        }
    if "pool_size" in detail:
        return _("Won the fair draw among the first claims.")
    return _("Claimed on the board.")


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
            "pay": offer_pay(offer),
            "status_label": OFFER_STATUS_LABELS.get(offer.status, offer.status),
            "kind_label": OFFER_KIND_LABELS.get(offer.kind, offer.kind),
            "decline_label": DECLINE_LABELS.get(offer.decline_reason, offer.decline_reason),
            "why": offer_why(offer),
        }
        for offer in offers
    ]
    return render(request, "driver/_dispatch_log.html", {"rows": rows, "driver": driver})
