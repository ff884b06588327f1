"""The Offers screen: offers waiting for this driver, live-refreshed."""

from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from dispatch import feed
from dispatch import selectors as dispatch_selectors
from driver_app.api.serializers import DECLINE_REASONS, batch_summary
from driver_app.home import feed_card
from driver_app.labels import DECLINE_LABELS, OFFER_KIND_LABELS
from driver_app.page import driver_page, guaranteed_cents, offer_pay, page_context, parse_time, stop_areas
from drivers.models import Driver


def _offer_cards(driver: Driver) -> list[dict]:
    cards = []
    for offer in dispatch_selectors.offers_for_driver(driver=driver):
        summary = batch_summary(offer.batch)
        cards.append(
            {
                "offer": offer,
                "pay": offer_pay(offer),
                "guaranteed_cents": guaranteed_cents(offer_pay(offer)),
                "kind_label": OFFER_KIND_LABELS.get(offer.kind, offer.kind),
                "seconds_left": max(0, int((offer.expires_at - timezone.now()).total_seconds())),
                "store": summary["store"],
                "stops_count": summary["stops_count"],
                "miles": summary["miles"],
                "drive_minutes": summary["drive_minutes"],
                "totes": summary["totes"],
                "heavy": summary["heavy"],
                "alcohol": summary["alcohol"],
                "pickup_by": parse_time(summary["pickup_by"]),
                "late": summary["late"],
                "areas": stop_areas(summary["stops"]),
            }
        )
    return cards


def _offers_context(request, driver: Driver) -> dict:
    context = page_context(request, driver, "offers")
    if context["can_work"]:
        context["offer_cards"] = _offer_cards(driver)
        context["board"] = [feed_card(c) for c in feed.board_for(driver, now=timezone.now(), limit=30)]
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


@require_GET
@driver_page
def offers_badge(request, driver: Driver):
    """The tab bar's offers badge, polled on every screen but Offers (whose list brings it along):
    a new offer is heard and felt wherever the driver is in the app."""
    return render(request, "driver/_offers_badge.html", {**page_context(request, driver, "offers"), "poll": True})
