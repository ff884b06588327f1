"""Distances and drive times behind one interface, so a routing engine (e.g. OSRM) can
replace the straight-line estimate by configuration (settings.SPARK_GEO_BACKEND).

The default estimate: great-circle (haversine) distance times a road factor, driven at an
average urban speed. Good enough to rank and price; replaceable where it is not.
"""

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Literal, Protocol

from django.conf import settings
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from spark.errors import DomainError

EARTH_RADIUS_M = 6_371_000.0
METERS_PER_MILE = 1609.344
# Time at each door (parking, walking the totes up, the photo), added to the drive time wherever
# a trip is estimated: batch routes, the batcher's time windows, the tracking ETA.
STOP_SERVICE_SECONDS = 240
# What a driver sees of a stop before the batch is theirs: its point rounded to two decimal
# places, about a kilometre (DESIGN rule 6).
AREA_DECIMALS = 2

Number = float | Decimal | int

# --- Coordinates coming in ------------------------------------------------------------------
# Every latitude/longitude column is Decimal(9, 6): six places, about 10 cm. Phones send as many
# decimals as the GPS gives, so extra digits are rounded (half-up, as people round), never
# refused. One rule for every way coordinates come in (location pings, going online, routes,
# slot check-in, delivery steps, order intake).

COORDINATE_PLACES = Decimal("0.000001")
COORDINATE_LIMITS = {"lat": 90, "lng": 180}
Axis = Literal["lat", "lng"]


def round_coordinate(value) -> Decimal:
    """`value` (a number or its text) rounded half-up to six places. ValueError when it is not
    a finite number."""
    if isinstance(value, bool) or value is None:
        raise ValueError(value)
    try:
        number = Decimal(str(value).strip())
        if not number.is_finite():
            raise ValueError(value)
        return number.quantize(COORDINATE_PLACES, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ArithmeticError) as exc:  # not a number, or far too large to quantize
        raise ValueError(value) from exc


def coordinate(value, *, axis: Axis, field: str | None = None) -> Decimal:
    """A latitude (axis "lat", -90..90) or longitude ("lng", -180..180) as the columns store it;
    anything else is a DomainError on `field` (default: the axis name)."""
    limit, field = COORDINATE_LIMITS[axis], field or axis
    try:
        number = round_coordinate(value)
    except ValueError:
        number = None
    if number is None or not -limit <= number <= limit:
        raise DomainError(
            f"{field} must be a number between -{limit} and {limit}.",
            code="invalid_coordinate",
            fields={field: [f"A number between -{limit} and {limit}."]},
        )
    return number


@dataclass(frozen=True)
class Point:
    lat: float
    lng: float

    @classmethod
    def of(cls, lat: Number, lng: Number) -> "Point":
        return cls(float(lat), float(lng))


def haversine_m(a: Point, b: Point) -> float:
    """Great-circle distance in metres."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat = lat2 - lat1
    dlng = math.radians(b.lng - a.lng)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlng / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


class GeoBackend(Protocol):
    def distance_m(self, a: Point, b: Point) -> int: ...
    def duration_s(self, a: Point, b: Point) -> int: ...


class StraightLineGeo:
    """Haversine x road factor; duration at an average speed."""

    def __init__(self, road_factor: float = 1.3, speed_kmh: float = 40.0):
        self.road_factor = road_factor
        self.speed_ms = speed_kmh * 1000 / 3600

    def distance_m(self, a: Point, b: Point) -> int:
        return round(haversine_m(a, b) * self.road_factor)

    def duration_s(self, a: Point, b: Point) -> int:
        return round(self.distance_m(a, b) / self.speed_ms)


@lru_cache(maxsize=1)
def backend() -> GeoBackend:
    path = getattr(settings, "SPARK_GEO_BACKEND", "spark.geo.StraightLineGeo")
    return import_string(path)()


def distance_m(a: Point, b: Point) -> int:
    return backend().distance_m(a, b)


def duration_s(a: Point, b: Point) -> int:
    return backend().duration_s(a, b)


def route_m(points: list[Point]) -> int:
    """Length of a path visiting `points` in order."""
    return sum(distance_m(p, q) for p, q in zip(points, points[1:], strict=False))


def route_s(points: list[Point]) -> int:
    return sum(duration_s(p, q) for p, q in zip(points, points[1:], strict=False))


def insertion_detour_m(a: Point, b: Point, via: Point) -> int:
    """Extra distance of going a -> via -> b instead of a -> b."""
    return distance_m(a, via) + distance_m(via, b) - distance_m(a, b)


def meters_to_miles(meters: int) -> Decimal:
    """Miles to one decimal, as every surface shows them (the dashboard, the driver app, push)."""
    return (Decimal(meters) / Decimal(str(METERS_PER_MILE))).quantize(Decimal("0.1"))


# --- Distances as a driver reads them ------------------------------------------------------
# US drivers: miles and feet. Below a tenth of a mile a distance reads in feet (to the nearest
# 10 ft), as US road signs and map apps say it; above it in miles to one decimal.

FEET_PER_METER = Decimal("3.28084")
FEET_BELOW_METERS = METERS_PER_MILE / 10


def _feet(meters: float) -> int:
    return int((Decimal(str(meters)) * FEET_PER_METER / 10).quantize(Decimal("1"), rounding=ROUND_HALF_UP)) * 10


def format_distance(meters: Number, *, words: bool = False) -> str:
    """The one way a driver is told a distance: "450 ft" / "2.3 mi" ("5 mi" when whole) on
    cards and labels, or with `words` "450 feet" / "2.3 miles" inside a sentence (the
    check-in refusal). The template filter `distance` (spark.templatetags.spark) is this."""
    meters = max(0.0, float(meters or 0))
    if meters < FEET_BELOW_METERS:
        return feet_text(meters) if words else _("%(feet)s ft") % {"feet": f"{_feet(meters):,}"}
    miles = f"{meters_to_miles(round(meters)):,}".removesuffix(".0")
    return _("%(miles)s miles") % {"miles": miles} if words else _("%(miles)s mi") % {"miles": miles}


def feet_text(meters: Number) -> str:
    """ "820 feet" whatever the distance (a check-in radius reads better in feet)."""
    return _("%(feet)s feet") % {"feet": f"{_feet(max(0.0, float(meters or 0))):,}"}


def area_coordinate(value: Number) -> float:
    """A latitude or longitude blurred to the area a driver may see before the claim."""
    return round(float(value), AREA_DECIMALS)
