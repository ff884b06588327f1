"""Order intake: the store's e-commerce system posts customer orders here."""

import re
from datetime import timedelta
from decimal import Decimal

from django.core.validators import RegexValidator
from django.urls import reverse
from django.utils import timezone
from rest_framework import serializers

from orders.models import Order
from spark import geo
from spark.api.fields import CoordinateField, RoundedDecimalField

# One rule for the server and the schema (RegexValidator becomes the field's `pattern`): 10 to
# 15 digits, a leading + if any, and spaces, dots, dashes or brackets between them.
PHONE_RE = re.compile(r"^\+?[ ().-]*(?:[0-9][ ().-]*){10,15}$")
MIN_WINDOW = timedelta(minutes=15)
MAX_WINDOW = timedelta(hours=6)
MAX_AHEAD = timedelta(days=14)
HEAVY_LB = Decimal("50")
STRIPE_CUSTOMER_RE = r"^cus_[A-Za-z0-9]{1,64}$"
STRIPE_PAYMENT_METHOD_RE = r"^pm_[A-Za-z0-9_]{1,64}$"


class StrictIntegerField(serializers.IntegerField):
    """Money and counts must be JSON integers: "5", 5.0 and true are refused, not coerced."""

    default_error_messages = {"invalid": "Must be a whole number (an integer, not text or a decimal)."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class CustomerSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    phone = serializers.CharField(
        max_length=20,
        validators=[RegexValidator(PHONE_RE, "Enter a phone number with 10 to 15 digits, e.g. +1 615 555 0100.")],
    )
    email = serializers.EmailField(required=False, allow_blank=True, default="")


class AddressSerializer(serializers.Serializer):
    line1 = serializers.CharField(max_length=200)
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    city = serializers.CharField(max_length=80)
    state = serializers.RegexField(r"^[A-Za-z]{2}$", error_messages={"invalid": "Use the two-letter state code."})
    postal_code = serializers.RegexField(
        r"^\d{5}(-\d{4})?$", error_messages={"invalid": "Use a 5-digit ZIP code (or ZIP+4)."}
    )
    lat = CoordinateField(axis="lat")
    lng = CoordinateField(axis="lng")


class WindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()

    def validate(self, attrs):
        start, end = attrs["start"], attrs["end"]
        now = timezone.now()
        if end <= start:
            raise serializers.ValidationError({"end": "The window must end after it starts."})
        if start <= now:
            raise serializers.ValidationError({"start": "The delivery window must start in the future."})
        if start > now + MAX_AHEAD:
            raise serializers.ValidationError({"start": "The delivery window must start within 14 days."})
        if not MIN_WINDOW <= end - start <= MAX_WINDOW:
            raise serializers.ValidationError({"end": "A delivery window lasts between 15 minutes and 6 hours."})
        return attrs


class OrderIntakeSerializer(serializers.Serializer):
    store = serializers.CharField(max_length=16, help_text="Store number; must be the API key's store.")
    external_id = serializers.RegexField(
        r"^[A-Za-z0-9._:-]{1,64}$",
        error_messages={"invalid": "Use 1-64 letters, digits, dots, dashes, underscores or colons."},
    )
    customer = CustomerSerializer()
    address = AddressSerializer()
    delivery_window = WindowSerializer()
    totes = StrictIntegerField(min_value=1, max_value=30)
    weight_lb = RoundedDecimalField(
        max_digits=6,
        decimal_places=1,
        min_value=Decimal("0.1"),
        max_value=Decimal("500"),
        help_text="Pounds, 0.1 to 500; kept to one decimal.",
    )
    items_count = StrictIntegerField(min_value=1, max_value=500)
    contains_alcohol = serializers.BooleanField(default=False)
    is_heavy = serializers.BooleanField(required=False, help_text="Defaults to weight over 50 lb.")
    tip_cents = StrictIntegerField(min_value=0, max_value=100_000, default=0)
    stripe_customer = serializers.RegexField(
        STRIPE_CUSTOMER_RE,
        required=False,
        default="",
        error_messages={"invalid": "A Stripe customer id (cus_...)."},
        help_text="With stripe_payment_method: the tip is authorised on this saved card (off session) and "
        "captured after delivery. Without: the store collected the tip itself.",
    )
    stripe_payment_method = serializers.RegexField(
        STRIPE_PAYMENT_METHOD_RE,
        required=False,
        default="",
        error_messages={"invalid": "A Stripe payment method id (pm_...) saved to stripe_customer."},
    )
    notes = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if bool(attrs.get("stripe_customer")) != bool(attrs.get("stripe_payment_method")):
            raise serializers.ValidationError(
                {"stripe_payment_method": ["Send stripe_customer and stripe_payment_method together, or neither."]}
            )
        store = self.context["store"]
        zone = store.zone
        point = geo.Point.of(attrs["address"]["lat"], attrs["address"]["lng"])
        center = geo.Point.of(zone.center_lat, zone.center_lng)
        if geo.haversine_m(point, center) > zone.radius_km * 1000:
            raise serializers.ValidationError(
                {"address": {"lat": [f"The address is outside the {zone.name} service area."]}}
            )
        return attrs

    def to_model_fields(self) -> dict:
        d = self.validated_data
        c, a, w = d["customer"], d["address"], d["delivery_window"]
        return {
            "external_id": d["external_id"],
            "customer_name": c["name"],
            "customer_phone": c["phone"],
            "customer_email": c["email"],
            "address_line1": a["line1"],
            "address_line2": a["line2"],
            "city": a["city"],
            "state": a["state"].upper(),
            "postal_code": a["postal_code"],
            "lat": a["lat"],
            "lng": a["lng"],
            "window_start": w["start"],
            "window_end": w["end"],
            "totes": d["totes"],
            "weight_lb": d["weight_lb"],
            "items_count": d["items_count"],
            "contains_alcohol": d["contains_alcohol"],
            "is_heavy": d.get("is_heavy", d["weight_lb"] > HEAVY_LB),
            "notes": d["notes"],
        }

    def tip_fields(self) -> dict:
        """The tip, for payments.tips.tip_intake (the order's tip_cents is written from it)."""
        d = self.validated_data
        return {
            "amount_cents": d["tip_cents"],
            "stripe_customer": d["stripe_customer"],
            "stripe_payment_method": d["stripe_payment_method"],
        }


class OrderSerializer(serializers.ModelSerializer):
    store = serializers.CharField(source="store.number")
    tracking_url = serializers.SerializerMethodField()
    customer = serializers.SerializerMethodField()
    address = serializers.SerializerMethodField()
    delivery_window = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id",
            "store",
            "external_id",
            "status",
            "tracking_url",
            "customer",
            "address",
            "delivery_window",
            "totes",
            "weight_lb",
            "items_count",
            "is_heavy",
            "contains_alcohol",
            "tip_cents",
            "notes",
            "cancel_reason",
            "created_at",
            "status_changed_at",
        ]

    def get_tracking_url(self, order: Order) -> str:
        path = reverse("tracking", kwargs={"token": order.tracking_token})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_customer(self, order: Order) -> dict:
        return {"name": order.customer_name, "phone": order.customer_phone, "email": order.customer_email}

    def get_address(self, order: Order) -> dict:
        return {
            "line1": order.address_line1,
            "line2": order.address_line2,
            "city": order.city,
            "state": order.state,
            "postal_code": order.postal_code,
            "lat": str(order.lat),
            "lng": str(order.lng),
        }

    def get_delivery_window(self, order: Order) -> dict:
        return {"start": order.window_start.isoformat(), "end": order.window_end.isoformat()}


class OrderTipSerializer(serializers.Serializer):
    tip_cents = StrictIntegerField(
        min_value=0,
        max_value=100_000,
        help_text="The tip's new amount, up or down, until a driver has the order's batch. A raise of a card "
        "tip is authorised on the saved card for the difference and shows once authorised.",
    )


class OrderCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="cancelled by store")
