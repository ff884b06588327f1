"""Input checks shared by the writes of drivers (drivers.services, drivers.slot_services)."""

from decimal import Decimal

from django.utils.translation import gettext as _

from spark import geo
from spark.errors import DomainError, NotPermitted
from stores.models import Zone

from .models import Driver
from .selectors import driver_work_refusal

MAX_DETOUR_METERS = 50_000


def checked_position(lat, lng, *, prefix: str = "") -> tuple[Decimal, Decimal]:
    """Checked and rounded (half-up, six places) by the one rule in spark.geo."""
    return (
        geo.coordinate(lat, axis="lat", field=f"{prefix}lat"),
        geo.coordinate(lng, axis="lng", field=f"{prefix}lng"),
    )


def check_in_zone(zone: Zone, lat: Decimal, lng: Decimal, *, what, field: str) -> None:
    """`what`: the place checked, in words (translatable: "starting point", "position")."""
    away = geo.haversine_m(geo.Point.of(zone.center_lat, zone.center_lng), geo.Point.of(lat, lng))
    if away > zone.radius_km * 1000:
        # Said in miles like every distance a driver reads (spark.geo.format_distance).
        radius = geo.format_distance(zone.radius_km * 1000)
        words = {"what": what, "away": geo.format_distance(away), "zone": zone.name, "radius": radius}
        raise DomainError(
            _("That %(what)s is %(away)s from the centre of %(zone)s; Spark works within %(radius)s of it.") % words,
            code="outside_zone",
            fields={field: [_("Within %(radius)s of %(zone)s.") % words]},
        )


def check_detour(value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DETOUR_METERS:
        raise DomainError(
            _("How far out of your way must be 0 to %(most)s.") % {"most": geo.format_distance(MAX_DETOUR_METERS)},
            code="bad_detour",
            fields={"max_detour_meters": [f"Whole metres from 0 to {MAX_DETOUR_METERS}."]},
        )


def require_can_work(driver: Driver) -> None:
    reason = driver_work_refusal(driver)
    if reason:
        raise NotPermitted(reason, code="driver_not_eligible")
