"""Is the driver at the store? The one rule behind every check-in at a store (a slot's, a
batch's "I'm here", the associate's "Confirm driver is here"): the phone within the zone's
check-in radius of the store, or an associate of that store confirming the driver in person.

drivers.slot_services and orders.delivery both call store_presence_verify; whichever check-in
the driver makes, the other fact follows from the same StorePresence (issue 12: being at the
store is one fact).
"""

from dataclasses import dataclass
from decimal import Decimal

from django.utils.translation import gettext as _

from spark import geo
from spark.errors import DomainError, NotPermitted

from .models import Store, StoreMembership


@dataclass(frozen=True)
class StorePresence:
    """How we know the driver is at the store: their phone's position and its distance from
    the store, or the associate who confirmed them (then no position)."""

    lat: Decimal | None = None
    lng: Decimal | None = None
    distance_m: int | None = None
    confirmed_by: object | None = None  # accounts.User, an associate of the store


def store_presence_verify(*, store: Store, lat=None, lng=None, confirmed_by=None) -> StorePresence:
    """The driver is at `store`, or a DomainError says why not and changes nothing:
    not_store_member (403) when `confirmed_by` is no member of the store, location_required
    without a position, too_far (with the distance in feet or miles) outside the radius."""
    if confirmed_by is not None:
        if not StoreMembership.objects.filter(user=confirmed_by, store=store).exists():
            raise NotPermitted(
                _("Only an associate of this store can confirm a driver's check-in."), code="not_store_member"
            )
        return StorePresence(confirmed_by=confirmed_by)
    if lat in (None, "") or lng in (None, ""):
        raise DomainError(
            _("Share your location to check in, or ask an associate to confirm you are here."),
            code="location_required",
        )
    lat, lng = geo.coordinate(lat, axis="lat", field="lat"), geo.coordinate(lng, axis="lng", field="lng")
    away = round(geo.haversine_m(geo.Point.of(lat, lng), geo.Point.of(store.lat, store.lng)))
    radius = store.zone.checkin_radius_m
    if away > radius:
        raise DomainError(
            _(
                "You are %(away)s from the store; check in within %(radius)s of it, "
                "or ask an associate to confirm you are here."
            )
            % {"away": geo.format_distance(away, words=True), "radius": geo.feet_text(radius)},
            code="too_far",
        )
    return StorePresence(lat=lat, lng=lng, distance_m=away)
