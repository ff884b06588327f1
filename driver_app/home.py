"""The driver app's home screen and its htmx parts: duty (online or offline), the stated route,
slots and the route-matched feed."""

from datetime import timedelta

from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from dispatch import feed
from driver_app.labels import SLOT_CLAIM_LABELS
from driver_app.page import driver_page, miles, page_context, parse_time, stop_areas
from drivers import selectors
from drivers.models import Driver, Route
from spark import geo

SLOT_CHECK_IN_EARLY = timedelta(minutes=selectors.SLOT_EARLY_MINUTES)


OPEN_SLOTS_SHOWN = 12


# How far out of their way a driver will go, in miles (US drivers); the API takes metres.
DETOUR_CHOICES_MILES = (1, 2, 3, 5, 8, 12, 20)
DEFAULT_DETOUR_METERS = Route._meta.get_field("max_detour_meters").get_default()


def _detour_choices(current_meters: int) -> list[dict]:
    """The detour picker: each choice in metres with its label; the one nearest the route's
    own limit is selected."""
    choices = [round(mi * geo.METERS_PER_MILE) for mi in DETOUR_CHOICES_MILES]
    nearest = min(choices, key=lambda m: abs(m - current_meters))
    return [{"meters": m, "label": geo.format_distance(m), "selected": m == nearest} for m in choices]


def feed_card(card: dict) -> dict:
    """A route_feed / board_for entry, ready for the template."""
    return {
        **card,
        "miles": miles(card["distance_m"]),
        "detour": geo.format_distance(card["detour_m"]) if card.get("detour_m") is not None else None,
        "pickup_by": parse_time(card.get("pickup_by")),
        "areas": stop_areas(card["stops"]),
    }


def _route_context(driver: Driver) -> dict:
    route = Route.objects.filter(driver=driver, is_active=True).first()
    zone = driver.home_zone
    return {
        "route": route,
        "route_is_trip": route is not None and route.mode == Route.Mode.TRIP,
        "detour_choices": _detour_choices(route.max_detour_meters if route else DEFAULT_DETOUR_METERS),
        "max_detour": geo.format_distance(route.max_detour_meters if route else DEFAULT_DETOUR_METERS),
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
    released = [
        {"slot": claim.slot, "reason": selectors.slot_release_reason(claim)}
        for claim in selectors.released_slot_claims_for(driver, now=now)
    ]
    return {
        "my_slots": mine,
        "released_slots": released,
        "open_slots": open_slots[:limit],
        "more_slots": len(open_slots) > limit,
    }


def _feed_context(driver: Driver) -> dict:
    return {"feed": [feed_card(c) for c in feed.route_feed(driver, now=timezone.now(), limit=20)]}


@driver_page
def home(request, driver: Driver):
    context = page_context(request, driver, "home")
    if context["can_work"]:
        context.update(_route_context(driver))
        context.update(_slots_context(driver))
        context.update(_feed_context(driver))
    return render(request, "driver/home.html", context)


@require_GET
@driver_page
def duty_partial(request, driver: Driver):
    return render(request, "driver/_duty.html", page_context(request, driver, "home"))


@require_GET
@driver_page
def route_partial(request, driver: Driver):
    return render(
        request, "driver/_route_summary.html", page_context(request, driver, "home", **_route_context(driver))
    )


@require_GET
@driver_page
def slots_partial(request, driver: Driver):
    context = page_context(request, driver, "home")
    if context["can_work"]:
        context.update(_slots_context(driver, more=request.GET.get("more") == "1"))
    return render(request, "driver/_slots.html", context)


@require_GET
@driver_page
def feed_partial(request, driver: Driver):
    context = page_context(request, driver, "home")
    if context["can_work"]:
        context.update(_feed_context(driver))
    return render(request, "driver/_feed.html", context)
