"""The driver API for the trip itself: my active batch, check-in at the store, each stop
(arrive, deliver with a photo, fail with a reason) and completing the batch.

Active drivers only (IsActiveDriver). Batches and stops are looked up among the driver's own
(another driver's is a 404). Exact customer addresses, names and phone numbers are shown only
for the driver's own batch while it is active or closed less than SPARK_ADDRESS_VISIBLE_HOURS
ago; after that only the area (DESIGN rule 6). Every action answers with the whole batch, so
the app re-renders from one shape.
"""

from datetime import timedelta

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from orders import selectors as order_selectors
from orders import services as order_services
from orders.models import Batch, Stop
from spark.api.fields import CoordinateField
from spark.api.schema import error_responses

from .views import DriverAPIView

# --- payloads -----------------------------------------------------------------------

# Shown only while the driver may see exact addresses; null afterwards.
EXACT_STOP_FIELDS = (
    "customer_name", "customer_phone", "address_line1", "address_line2", "city", "state", "lat", "lng", "notes",
)


class DeliveryStoreSerializer(serializers.Serializer):
    name = serializers.CharField()
    number = serializers.CharField()
    address_line1 = serializers.CharField()
    city = serializers.CharField()
    state = serializers.CharField()
    postal_code = serializers.CharField()
    lat = serializers.FloatField()
    lng = serializers.FloatField()
    pickup_instructions = serializers.CharField()
    store_rules = serializers.CharField()


class DeliveryStopSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sequence = serializers.IntegerField()
    status = serializers.CharField()
    order_id = serializers.IntegerField()
    customer_name = serializers.CharField(source="order.customer_name", allow_null=True)
    customer_phone = serializers.CharField(source="order.customer_phone", allow_null=True)
    address_line1 = serializers.CharField(source="order.address_line1", allow_null=True)
    address_line2 = serializers.CharField(source="order.address_line2", allow_null=True)
    city = serializers.CharField(source="order.city", allow_null=True)
    state = serializers.CharField(source="order.state", allow_null=True)
    postal_code = serializers.CharField(source="order.postal_code")
    lat = serializers.FloatField(source="order.lat", allow_null=True)
    lng = serializers.FloatField(source="order.lng", allow_null=True)
    area_lat = serializers.SerializerMethodField(help_text="The address rounded to about a kilometre.")
    area_lng = serializers.SerializerMethodField()
    notes = serializers.CharField(source="order.notes", allow_null=True)
    totes = serializers.IntegerField(source="order.totes")
    heavy = serializers.BooleanField(source="order.is_heavy")
    alcohol = serializers.BooleanField(source="order.contains_alcohol")
    window_start = serializers.DateTimeField(source="order.window_start")
    window_end = serializers.DateTimeField(source="order.window_end")
    arrived_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    failure_reason = serializers.CharField()
    distance_from_address_m = serializers.IntegerField(allow_null=True)
    has_proof_photo = serializers.SerializerMethodField()

    def get_area_lat(self, stop) -> float:
        return round(float(stop.order.lat), 2)

    def get_area_lng(self, stop) -> float:
        return round(float(stop.order.lng), 2)

    def get_has_proof_photo(self, stop) -> bool:
        return bool(stop.proof_photo)

    def to_representation(self, stop):
        data = super().to_representation(stop)
        if not self.context.get("exact"):
            for name in EXACT_STOP_FIELDS:
                data[name] = None
        return data


class DeliveryBatchSerializer(serializers.Serializer):
    batch_id = serializers.IntegerField(source="pk")
    status = serializers.CharField()
    pickup_code = serializers.CharField(allow_null=True, help_text="Shown to the associate; until pickup.")
    pickup_by = serializers.DateTimeField(allow_null=True)
    assigned_at = serializers.DateTimeField(allow_null=True)
    arrived_at_store_at = serializers.DateTimeField(allow_null=True)
    picked_up_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)
    addresses_visible = serializers.BooleanField(
        help_text="Exact addresses are shown while the batch is active and until "
                  "SPARK_ADDRESS_VISIBLE_HOURS after it closed; areas only afterwards."
    )
    next_stop_id = serializers.IntegerField(allow_null=True, help_text="The stop to work on now, once picked up.")
    store = DeliveryStoreSerializer()
    stops = DeliveryStopSerializer(many=True)


def addresses_visible(batch: Batch, *, now) -> bool:
    """DESIGN rule 6, for the driver who holds the batch (callers have scoped it to them)."""
    if batch.status in Batch.ACTIVE_STATUSES:
        return True
    if batch.status in Batch.CLOSED_STATUSES and batch.closed_at:
        return now - batch.closed_at < timedelta(hours=settings.SPARK_ADDRESS_VISIBLE_HOURS)
    return False


def delivery_payload(batch: Batch) -> dict:
    batch.refresh_from_db()
    exact = addresses_visible(batch, now=timezone.now())
    stops = order_selectors.batch_stops(batch=batch)
    next_stop = None
    if batch.status == Batch.Status.PICKED_UP:
        next_stop = next((s for s in stops if s.status not in order_services.STOP_DONE_STATUSES), None)
    data = {
        "pk": batch.pk,
        "status": batch.status,
        "pickup_code": batch.pickup_code if batch.status in (Batch.Status.ASSIGNED, Batch.Status.AT_STORE) else None,
        "pickup_by": batch.pickup_by,
        "assigned_at": batch.assigned_at,
        "arrived_at_store_at": batch.arrived_at_store_at,
        "picked_up_at": batch.picked_up_at,
        "closed_at": batch.closed_at,
        "addresses_visible": exact,
        "next_stop_id": next_stop.pk if next_stop else None,
        "store": batch.store,
        "stops": stops,
    }
    return DeliveryBatchSerializer(data, context={"exact": exact}).data


# --- requests -----------------------------------------------------------------------

class _Position(serializers.Serializer):
    # Optional: location may be off on the phone.
    lat = CoordinateField(limit=90, coerce_to_string=False, required=False, allow_null=True)
    lng = CoordinateField(limit=180, coerce_to_string=False, required=False, allow_null=True)

    def validate(self, attrs):
        if (attrs.get("lat") is None) != (attrs.get("lng") is None):
            raise serializers.ValidationError("Send both lat and lng, or neither.")
        return attrs


class PositionInSerializer(_Position):
    """The phone's position when the driver taps; optional (location may be off)."""


class DeliverSerializer(_Position):
    photo = serializers.FileField(
        help_text="Photo of the groceries at the door (JPEG, PNG or WebP). EXIF and GPS are removed.",
        error_messages={"required": "Take a photo of the groceries at the door.",
                        "empty": "The photo is empty; take it again."},
    )
    id_birth_date = serializers.DateField(required=False, allow_null=True,
                                          help_text="Alcohol orders: the date of birth on the customer's ID.")
    id_photo = serializers.FileField(required=False, allow_null=True,
                                     help_text="Alcohol orders: a photo of the customer's ID.")


class FailSerializer(_Position):
    reason = serializers.ChoiceField(choices=list(order_services.RETURN_REASONS.items()))


# --- views --------------------------------------------------------------------------


def _my_batch(request, batch_id: int) -> Batch:
    return get_object_or_404(Batch.objects.select_related("store"), pk=batch_id, driver=request.driver)


def _my_stop(request, stop_id: int) -> Stop:
    return get_object_or_404(
        Stop.objects.select_related("batch__store", "order").exclude(status=Stop.Status.REMOVED),
        pk=stop_id, batch__driver=request.driver,
    )


def _position(serializer_class, request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


BATCH_RESPONSES = {200: DeliveryBatchSerializer, **error_responses(400, 401, 403, 404, 409)}


class ActiveBatchView(DriverAPIView):
    """My batch in progress (assigned, at the store, picked up, or returning), with exact stops."""

    @extend_schema(responses={200: DeliveryBatchSerializer, **error_responses(401, 403, 404)})
    def get(self, request):
        batch = (
            Batch.objects.filter(driver=request.driver, status__in=Batch.ACTIVE_STATUSES)
            .select_related("store").first()
        )
        if batch is None:
            raise NotFound("You have no active batch.")
        return Response(delivery_payload(batch))


class BatchDetailView(DriverAPIView):
    """One of my batches; exact addresses only while active or recently closed."""

    @extend_schema(responses={200: DeliveryBatchSerializer, **error_responses(401, 403, 404)})
    def get(self, request, batch_id: int):
        return Response(delivery_payload(_my_batch(request, batch_id)))


class BatchArriveView(DriverAPIView):
    """Check in at the store (assigned -> at_store). The handoff itself is the associate's."""

    @extend_schema(request=PositionInSerializer, responses=BATCH_RESPONSES)
    def post(self, request, batch_id: int):
        batch = _my_batch(request, batch_id)
        pos = _position(PositionInSerializer, request)
        order_services.batch_check_in(batch=batch, driver=request.driver, lat=pos.get("lat"), lng=pos.get("lng"))
        return Response(delivery_payload(batch))


class BatchCompleteView(DriverAPIView):
    """Every stop delivered or undeliverable: completed, or returning with orders to bring back."""

    @extend_schema(request=None, responses=BATCH_RESPONSES)
    def post(self, request, batch_id: int):
        batch = _my_batch(request, batch_id)
        order_services.batch_complete(batch=batch, driver=request.driver)
        return Response(delivery_payload(batch))


class StopArriveView(DriverAPIView):
    """At the door of the next stop (after pickup, in sequence)."""

    @extend_schema(request=PositionInSerializer, responses=BATCH_RESPONSES)
    def post(self, request, stop_id: int):
        stop = _my_stop(request, stop_id)
        pos = _position(PositionInSerializer, request)
        order_services.stop_arrive(stop=stop, driver=request.driver, lat=pos.get("lat"), lng=pos.get("lng"))
        return Response(delivery_payload(stop.batch))


class StopDeliverView(DriverAPIView):
    """Deliver with a photo; alcohol orders need the ID's date of birth (21+) and a photo of it.
    A delivery far from the address is accepted and recorded with the distance."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": DeliverSerializer}, responses=BATCH_RESPONSES)
    def post(self, request, stop_id: int):
        stop = _my_stop(request, stop_id)
        data = _position(DeliverSerializer, request)
        order_services.stop_deliver(
            stop=stop, driver=request.driver, photo=data["photo"], lat=data.get("lat"), lng=data.get("lng"),
            id_birth_date=data.get("id_birth_date"), id_photo=data.get("id_photo"),
        )
        return Response(delivery_payload(stop.batch))


class StopFailView(DriverAPIView):
    """The stop cannot be delivered; the order goes back to the store with the reason."""

    @extend_schema(request=FailSerializer, responses=BATCH_RESPONSES)
    def post(self, request, stop_id: int):
        stop = _my_stop(request, stop_id)
        data = _position(FailSerializer, request)
        order_services.stop_fail(stop=stop, driver=request.driver, reason=data["reason"],
                                 lat=data.get("lat"), lng=data.get("lng"))
        return Response(delivery_payload(stop.batch))
