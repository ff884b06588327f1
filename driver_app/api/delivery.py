"""The driver API for the trip itself: my active batch, check-in at the store, each stop
(arrive, deliver with a photo, fail with a reason) and completing the batch.

Active drivers (IsActiveDriverOrFinishing), and a driver taken off work who was let finish the
batch they hold: that batch only. Batches and stops are looked up among the driver's own
(another driver's is a 404). The customer's phone number is never shown: the driver calls or
texts them through a masked number (driver_app/api/contact.py). Exact customer addresses and
names are shown only while orders.selectors.batch_addresses_visible_to says so (DESIGN rule
6: the driver's own batch, from the claim until SPARK_ADDRESS_VISIBLE_HOURS after it closed);
otherwise the area.
Every action answers with the whole batch, so the app re-renders from one shape.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from orders import selectors as order_selectors
from orders.delivery import STOP_DONE_STATUSES, batch_check_in, batch_complete, stop_arrive, stop_deliver, stop_fail
from orders.models import Batch, Stop
from orders.returns import RETURN_REASONS
from spark import geo
from spark.api.fields import CoordinateField
from spark.api.parsers import PhotoMultiPartParser
from spark.api.schema import error_responses
from spark.roles import IsActiveDriverOrFinishing

from .views import DriverAPIView

# --- payloads -----------------------------------------------------------------------

# Shown only while the driver may see exact addresses; null afterwards.
EXACT_STOP_FIELDS = (
    "customer_name",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "lat",
    "lng",
    "notes",
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
        return geo.area_coordinate(stop.order.lat)

    def get_area_lng(self, stop) -> float:
        return geo.area_coordinate(stop.order.lng)

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
    late = serializers.BooleanField(help_text="The pickup time has passed and the batch is not picked up yet.")
    assigned_at = serializers.DateTimeField(allow_null=True)
    arrived_at_store_at = serializers.DateTimeField(allow_null=True)
    picked_up_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)
    addresses_visible = serializers.BooleanField(
        help_text="Exact addresses are shown from the claim on and until "
        "SPARK_ADDRESS_VISIBLE_HOURS after it closed; areas only afterwards."
    )
    next_stop_id = serializers.IntegerField(allow_null=True, help_text="The stop to work on now, once picked up.")
    store = DeliveryStoreSerializer()
    stops = DeliveryStopSerializer(many=True)


def delivery_payload(batch: Batch, *, driver) -> dict:
    batch.refresh_from_db()
    exact = order_selectors.batch_addresses_visible_to(batch=batch, driver=driver)
    stops = order_selectors.batch_stops(batch=batch)
    next_stop = None
    if batch.status == Batch.Status.PICKED_UP:
        next_stop = next((s for s in stops if s.status not in STOP_DONE_STATUSES), None)
    data = {
        "pk": batch.pk,
        "status": batch.status,
        "pickup_code": batch.pickup_code if batch.status in (Batch.Status.ASSIGNED, Batch.Status.AT_STORE) else None,
        "pickup_by": batch.pickup_by,
        "late": batch.is_late(),
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
    # Optional (location may be off); numbers in the schema, as the phone sends them.
    lat = CoordinateField(axis="lat", coerce_to_string=False, required=False, allow_null=True)
    lng = CoordinateField(axis="lng", coerce_to_string=False, required=False, allow_null=True)

    def validate(self, attrs):
        if (attrs.get("lat") is None) != (attrs.get("lng") is None):
            raise serializers.ValidationError("Send both lat and lng, or neither.")
        return attrs


class PositionInSerializer(_Position):
    """The phone's position when the driver taps; optional (location may be off)."""


class DeliverSerializer(_Position):
    photo = serializers.FileField(
        help_text="Photo of the groceries at the door (JPEG, PNG or WebP). EXIF and GPS are removed.",
        error_messages={
            "required": "Take a photo of the groceries at the door.",
            "empty": "The photo is empty; take it again.",
        },
    )
    id_birth_date = serializers.DateField(
        required=False, allow_null=True, help_text="Alcohol orders: the date of birth on the customer's ID."
    )
    id_photo = serializers.FileField(
        required=False, allow_null=True, help_text="Alcohol orders: a photo of the customer's ID."
    )


class FailSerializer(_Position):
    reason = serializers.ChoiceField(choices=list(RETURN_REASONS.items()))


# --- views --------------------------------------------------------------------------


def _scope(request) -> dict:
    """The driver's own batches; only the one they finish when they can no longer take work."""
    finishing = getattr(request, "finishing_batch_id", None)
    return {"driver": request.driver, **({"pk": finishing} if finishing else {})}


def my_batch(request, batch_id: int) -> Batch:
    return get_object_or_404(Batch.objects.select_related("store").filter(**_scope(request)), pk=batch_id)


def my_stop(request, stop_id: int) -> Stop:
    batches = Batch.objects.filter(**_scope(request))
    return get_object_or_404(
        Stop.objects.select_related("batch__store", "order").exclude(status=Stop.Status.REMOVED),
        pk=stop_id,
        batch__in=batches,
    )


class TripAPIView(DriverAPIView):
    permission_classes = [IsActiveDriverOrFinishing]


def _position(serializer_class, request) -> dict:
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


BATCH_RESPONSES = {200: DeliveryBatchSerializer, **error_responses(400, 401, 403, 404, 409)}


class ActiveBatchView(TripAPIView):
    """My batch in progress (assigned, at the store, picked up, or returning), with exact stops."""

    @extend_schema(responses={200: DeliveryBatchSerializer, **error_responses(401, 403, 404)})
    def get(self, request):
        batch = (
            Batch.objects.filter(driver=request.driver, status__in=Batch.ACTIVE_STATUSES)
            .select_related("store")
            .first()
        )
        if batch is None:
            raise NotFound("You have no active batch.")
        return Response(delivery_payload(batch, driver=request.driver))


class BatchDetailView(TripAPIView):
    """One of my batches; exact addresses only while active or recently closed."""

    @extend_schema(responses={200: DeliveryBatchSerializer, **error_responses(401, 403, 404)})
    def get(self, request, batch_id: int):
        return Response(delivery_payload(my_batch(request, batch_id), driver=request.driver))


class BatchArriveView(TripAPIView):
    """Check in at the store (assigned -> at_store). The handoff itself is the associate's."""

    @extend_schema(request=PositionInSerializer, responses=BATCH_RESPONSES)
    def post(self, request, batch_id: int):
        batch = my_batch(request, batch_id)
        pos = _position(PositionInSerializer, request)
        batch_check_in(batch=batch, driver=request.driver, lat=pos.get("lat"), lng=pos.get("lng"))
        return Response(delivery_payload(batch, driver=request.driver))


class BatchCompleteView(TripAPIView):
    """Every stop delivered or undeliverable: completed, or returning with orders to bring back."""

    @extend_schema(request=None, responses=BATCH_RESPONSES)
    def post(self, request, batch_id: int):
        batch = my_batch(request, batch_id)
        batch_complete(batch=batch, driver=request.driver)
        return Response(delivery_payload(batch, driver=request.driver))


class StopArriveView(TripAPIView):
    """At the door of the next stop (after pickup, in sequence)."""

    @extend_schema(request=PositionInSerializer, responses=BATCH_RESPONSES)
    def post(self, request, stop_id: int):
        stop = my_stop(request, stop_id)
        pos = _position(PositionInSerializer, request)
        stop_arrive(stop=stop, driver=request.driver, lat=pos.get("lat"), lng=pos.get("lng"))
        return Response(delivery_payload(stop.batch, driver=request.driver))


class StopDeliverView(TripAPIView):
    """Deliver with a photo; alcohol orders need the ID's date of birth (21+) and a photo of it.
    A delivery far from the address is accepted and recorded with the distance."""

    parser_classes = [PhotoMultiPartParser]

    @extend_schema(request={"multipart/form-data": DeliverSerializer}, responses=BATCH_RESPONSES)
    def post(self, request, stop_id: int):
        stop = my_stop(request, stop_id)
        data = _position(DeliverSerializer, request)
        stop_deliver(
            stop=stop,
            driver=request.driver,
            photo=data["photo"],
            lat=data.get("lat"),
            lng=data.get("lng"),
            id_birth_date=data.get("id_birth_date"),
            id_photo=data.get("id_photo"),
        )
        return Response(delivery_payload(stop.batch, driver=request.driver))


class StopFailView(TripAPIView):
    """The stop cannot be delivered; the order goes back to the store with the reason."""

    @extend_schema(request=FailSerializer, responses=BATCH_RESPONSES)
    def post(self, request, stop_id: int):
        stop = my_stop(request, stop_id)
        data = _position(FailSerializer, request)
        stop_fail(stop=stop, driver=request.driver, reason=data["reason"], lat=data.get("lat"), lng=data.get("lng"))
        return Response(delivery_payload(stop.batch, driver=request.driver))
