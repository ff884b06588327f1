"""Driver API payloads. Before a batch is theirs a driver sees areas, never addresses."""

from django.utils import timezone
from rest_framework import serializers

from dispatch.models import Offer
from orders import selectors as order_selectors
from spark import geo
from spark.api.fields import CoordinateField
from spark.money import format_cents

DECLINE_REASONS = {
    "too_far": "Too far / off my route",
    "pay_too_low": "Pay too low",
    "too_many_stops": "Too many stops",
    "heavy": "Too heavy",
    "alcohol": "Alcohol (ID checks)",
    "no_time": "Not enough time",
    "vehicle": "Does not fit my vehicle",
    "other": "Other",
}


class PaySerializer(serializers.Serializer):
    base_cents = serializers.IntegerField()
    stops_cents = serializers.IntegerField()
    miles_cents = serializers.IntegerField()
    heavy_cents = serializers.IntegerField()
    incentive_cents = serializers.IntegerField()
    tip_cents = serializers.IntegerField()
    total_cents = serializers.IntegerField()
    total = serializers.SerializerMethodField()

    def get_total(self, pay) -> str:
        return format_cents(pay.total_cents)


class StopAreaSerializer(serializers.Serializer):
    sequence = serializers.IntegerField()
    postal_code = serializers.CharField()
    area_lat = serializers.FloatField()
    area_lng = serializers.FloatField()
    distance_from_store_m = serializers.IntegerField()
    totes = serializers.IntegerField()
    heavy = serializers.BooleanField()
    alcohol = serializers.BooleanField()
    window_end = serializers.CharField()


def batch_summary(batch) -> dict:
    areas = order_selectors.stop_areas(batch=batch)
    return {
        "batch_id": batch.pk,
        "store": {
            "name": batch.store.name,
            "number": batch.store.number,
            "address": batch.store.address_line1,
            "lat": float(batch.store.lat),
            "lng": float(batch.store.lng),
            "pickup_instructions": batch.store.pickup_instructions,
            "store_rules": batch.store.store_rules,
        },
        "stops_count": len(areas),
        "miles": float(geo.meters_to_miles(batch.route_meters)),
        "drive_minutes": round(batch.route_seconds / 60),
        "totes": sum(a["totes"] for a in areas),
        "heavy": any(a["heavy"] for a in areas),
        "alcohol": any(a["alcohol"] for a in areas),
        "pickup_by": batch.pickup_by.isoformat() if batch.pickup_by else None,
        "late": batch.is_late(),  # its pickup time has passed (orders.models.batch_is_late)
        "stops": areas,
    }


class OfferSerializer(serializers.ModelSerializer):
    pay = PaySerializer()
    seconds_left = serializers.SerializerMethodField()
    batch = serializers.SerializerMethodField()

    class Meta:
        model = Offer
        fields = ["id", "kind", "round", "status", "expires_at", "seconds_left", "rank_reason", "pay", "batch"]

    def get_seconds_left(self, offer) -> int:
        return max(0, int((offer.expires_at - timezone.now()).total_seconds()))

    def get_batch(self, offer) -> dict:
        return batch_summary(offer.batch)


class DeclineSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(choices=list(DECLINE_REASONS.items()))


class RouteSerializer(serializers.Serializer):
    origin_lat = CoordinateField(axis="lat")
    origin_lng = CoordinateField(axis="lng")
    dest_lat = CoordinateField(axis="lat")
    dest_lng = CoordinateField(axis="lng")
    leave_after = serializers.DateTimeField(required=False, allow_null=True)
    arrive_by = serializers.DateTimeField(required=False, allow_null=True)
    max_detour_meters = serializers.IntegerField(min_value=0, max_value=50_000, default=8000)


class PositionSerializer(serializers.Serializer):
    lat = CoordinateField(axis="lat")
    lng = CoordinateField(axis="lng")
    accuracy_m = serializers.IntegerField(required=False, min_value=0, max_value=100_000)


class StoredLocationSerializer(serializers.Serializer):
    lat = serializers.FloatField()
    lng = serializers.FloatField()
    accuracy_m = serializers.IntegerField(allow_null=True)
    recorded_at = serializers.DateTimeField()


class CheckInSerializer(serializers.Serializer):
    """The phone's position; without one the service answers location_required with the way
    out (ask an associate to confirm)."""

    lat = CoordinateField(axis="lat", required=False)
    lng = CoordinateField(axis="lng", required=False)


class SlotSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    store = serializers.CharField(source="store.name")
    store_id = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    capacity = serializers.IntegerField()
    seats_free = serializers.IntegerField()
    my_claim = serializers.SerializerMethodField()

    def get_my_claim(self, slot) -> dict | None:
        claim = getattr(slot, "my_claim", None)
        if not claim:
            return None
        return {"id": claim.pk, "status": claim.status, "checked_in_at": claim.checked_in_at}
