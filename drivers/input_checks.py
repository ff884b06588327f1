"""Input checks shared by the writes of drivers (drivers.services, drivers.slot_services)."""

from decimal import Decimal

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


def check_in_zone(zone: Zone, lat: Decimal, lng: Decimal, *, what: str, field: str) -> None:
    away = geo.haversine_m(geo.Point.of(zone.center_lat, zone.center_lng), geo.Point.of(lat, lng))
    if away > zone.radius_km * 1000:
        raise DomainError(
            f"That {what} is {away / 1000:.1f} km from the centre of {zone.name}; Spark works within "
            f"{zone.radius_km} km of it.",
            code="outside_zone",
            fields={field: [f"Within {zone.radius_km} km of {zone.name}."]},
        )


def check_detour(value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DETOUR_METERS:
        raise DomainError(
            f"How far out of your way must be 0 to {MAX_DETOUR_METERS // 1000} km.",
            code="bad_detour",
            fields={"max_detour_meters": [f"Whole metres from 0 to {MAX_DETOUR_METERS}."]},
        )


def require_can_work(driver: Driver) -> None:
    reason = driver_work_refusal(driver)
    if reason:
        raise NotPermitted(reason, code="driver_not_eligible")
