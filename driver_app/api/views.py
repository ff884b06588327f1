"""The driver API (token or session auth): offers, the board, claims, route and duty, slots.

Every endpoint is for active drivers only; others get 403 with the reason. Another driver's
offer or slot claim is a 404.
"""

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from dispatch import claim_gate, feed, rounds
from dispatch import selectors as dispatch_selectors
from dispatch import services as dispatch_services
from dispatch.models import Offer
from drivers import selectors, services, slot_services
from drivers.models import SlotClaim
from orders.models import Batch
from spark.api.schema import error_responses
from spark.roles import IsActiveDriver, IsActiveDriverOrFinishing
from stores.models import DeliverySlot

from .serializers import (
    CheckInSerializer,
    DeclineSerializer,
    OfferSerializer,
    PositionSerializer,
    RouteSerializer,
    SlotSerializer,
    StoredLocationSerializer,
    batch_summary,
)

Message = inline_serializer("DriverMessage", {"detail": serializers.CharField(), "status": serializers.CharField()})


class DriverAPIView(APIView):
    permission_classes = [IsActiveDriver]


class OfferListView(DriverAPIView):
    @extend_schema(responses=OfferSerializer(many=True))
    def get(self, request):
        offers = dispatch_selectors.offers_for_driver(driver=request.driver)
        return Response(OfferSerializer(offers, many=True).data)


def _my_offer(request, offer_id) -> Offer:
    return get_object_or_404(Offer.objects.select_related("batch__store", "pay"), pk=offer_id, driver=request.driver)


class OfferAcceptView(DriverAPIView):
    @extend_schema(request=None, responses={200: OfferSerializer, **error_responses(409, 410)})
    def post(self, request, offer_id: int):
        offer = _my_offer(request, offer_id)
        dispatch_services.offer_accept(offer=offer, driver=request.driver, actor=request.user)
        offer.refresh_from_db()
        return Response(OfferSerializer(offer).data)


class OfferDeclineView(DriverAPIView):
    @extend_schema(request=DeclineSerializer, responses={200: OfferSerializer, **error_responses(409)})
    def post(self, request, offer_id: int):
        offer = _my_offer(request, offer_id)
        data = DeclineSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dispatch_services.offer_decline(
            offer=offer, driver=request.driver, reason=data.validated_data["reason"], actor=request.user
        )
        offer.refresh_from_db()
        return Response(OfferSerializer(offer).data)


class BoardView(DriverAPIView):
    """Batches open on the board in my zone, ranked for my route when I stated one."""

    @extend_schema(responses=inline_serializer("BoardItem", {"batch_id": serializers.IntegerField()}, many=True))
    def get(self, request):
        return Response(feed.board_for(request.driver, now=timezone.now()))


class BatchClaimView(DriverAPIView):
    """Claim attempts are limited per driver to the zone's claim_rate_per_minute (429 with
    Retry-After). Bots that hammer the claim button gain nothing: inside the fair window every
    claim is pooled anyway, and past the rate they are refused. Only for drivers online in
    the batch's zone: 403 (code not_online) otherwise."""

    @extend_schema(request=None, responses={200: Message, 202: Message, **error_responses(403, 409, 429)})
    def post(self, request, batch_id: int):
        # One cache round trip: count this attempt and read the batch's taken marker.
        gate = claim_gate.claim_attempt(driver_id=request.driver.pk, batch_id=batch_id)
        if gate.attempts > request.driver.home_zone.claim_rate_per_minute:
            raise exceptions.Throttled(wait=gate.retry_after)
        claim = rounds.board_claim(batch_id=batch_id, driver=request.driver, taken_marker=gate.taken_by)
        if claim.attempt is not None:
            return Response(
                {
                    "status": "pooled",
                    "detail": "Claims in the first seconds are pooled; the winner is drawn when the window closes.",
                    "decides_at": claim.attempt.detail.get("decides_at"),
                },
                status=status.HTTP_202_ACCEPTED,
            )
        # No offer when ops gave the batch directly.
        batch = claim.offer.batch if claim.offer is not None else Batch.objects.select_related("store").get(pk=batch_id)
        return Response({"status": "assigned", "detail": "The batch is yours.", "batch": batch_summary(batch)})


class RouteView(DriverAPIView):
    @extend_schema(request=RouteSerializer, responses={200: RouteSerializer})
    def put(self, request):
        data = RouteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        route = services.route_set(driver=request.driver, **data.validated_data)
        return Response(RouteSerializer(route).data)


class OnlineView(DriverAPIView):
    @extend_schema(request=PositionSerializer, responses={200: Message})
    def post(self, request):
        data = PositionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.driver_go_online(driver=request.driver, lat=data.validated_data["lat"], lng=data.validated_data["lng"])
        return Response({"status": "online", "detail": "You are online."})


class OfflineView(DriverAPIView):
    """Refused with 409 (code batch_in_progress) while the driver holds an active batch."""

    @extend_schema(request=None, responses={200: Message, **error_responses(409)})
    def post(self, request):
        services.driver_go_offline(driver=request.driver)
        return Response({"status": "offline", "detail": "You are offline."})


class LocationView(DriverAPIView):
    """Coordinates with more than six decimals are rounded half-up. At most one position is
    stored every SPARK_LOCATION_MIN_INTERVAL_SECONDS: a quicker ping is answered 200 with
    status "kept" and the stored position. Past SPARK_LOCATION_MAX_PER_MINUTE a minute: 429."""

    # A driver let finish their batch after being taken off work still shares their position
    # for that trip (the customer's tracking); location_record refuses anyone off duty.
    permission_classes = [IsActiveDriverOrFinishing]

    @extend_schema(
        request=PositionSerializer,
        responses={
            200: inline_serializer(
                "LocationAnswer",
                {
                    "status": serializers.ChoiceField(choices=["recorded", "kept"]),
                    "detail": serializers.CharField(),
                    "location": StoredLocationSerializer(),
                },
            ),
            **error_responses(400, 401, 403, 429),
        },
    )
    def post(self, request):
        data = PositionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ping = services.location_record(driver=request.driver, **data.validated_data)
        location = StoredLocationSerializer(ping.location).data
        if ping.stored:
            return Response({"status": "recorded", "detail": "Location recorded.", "location": location})
        return Response(
            {
                "status": "kept",
                "detail": "Not stored: your last position is less than "
                f"{settings.SPARK_LOCATION_MIN_INTERVAL_SECONDS} seconds old.",
                "location": location,
            }
        )


class SlotListView(DriverAPIView):
    @extend_schema(responses=SlotSerializer(many=True))
    def get(self, request):
        slots = selectors.upcoming_slots_for(request.driver, now=timezone.now())
        return Response(SlotSerializer(slots, many=True).data)


def _slot_in_my_zone(request, slot_id) -> DeliverySlot:
    return get_object_or_404(
        DeliverySlot.objects.select_related("store__zone"), pk=slot_id, store__zone=request.driver.home_zone
    )


def _my_live_claim(request, slot_id) -> SlotClaim:
    return get_object_or_404(
        SlotClaim.objects.select_related("slot__store__zone"),
        slot_id=slot_id,
        driver=request.driver,
        status__in=SlotClaim.ACTIVE_STATUSES,
    )


class SlotClaimView(DriverAPIView):
    @extend_schema(request=None, responses={200: Message, **error_responses(400, 409, 410)})
    def post(self, request, slot_id: int):
        claim = slot_services.slot_claim(driver=request.driver, slot=_slot_in_my_zone(request, slot_id))
        return Response({"status": claim.status, "detail": "You have a seat in this slot.", "claim_id": claim.pk})


class SlotCancelView(DriverAPIView):
    @extend_schema(request=None, responses={200: Message, **error_responses(400, 409)})
    def post(self, request, slot_id: int):
        claim = slot_services.slot_cancel(claim=_my_live_claim(request, slot_id), driver=request.driver)
        late = claim.status == SlotClaim.Status.LATE_CANCELLED
        return Response(
            {"status": claim.status, "detail": "Cancelled late; it is recorded." if late else "Cancelled, no penalty."}
        )


class SlotCheckInView(DriverAPIView):
    @extend_schema(request=CheckInSerializer, responses={200: Message, **error_responses(400, 403, 409, 410)})
    def post(self, request, slot_id: int):
        claim = _my_live_claim(request, slot_id)  # an unknown slot is a 404 whatever the body says
        data = CheckInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        claim = slot_services.slot_check_in(claim=claim, driver=request.driver, **data.validated_data)
        return Response({"status": claim.status, "detail": "Checked in."})


class DispatchLogView(DriverAPIView):
    """My own dispatch log: every offer I got, why I got it, and how it ended. Declines are
    listed as such and never count against me; timeouts are shown apart."""

    @extend_schema(
        responses=inline_serializer(
            "DispatchLogEntry",
            {
                "offer_id": serializers.IntegerField(),
                "batch_id": serializers.IntegerField(),
                "kind": serializers.CharField(),
                "round": serializers.IntegerField(),
                "status": serializers.CharField(),
                "why": serializers.CharField(),
                "decline_reason": serializers.CharField(),
                "pay_total_cents": serializers.IntegerField(allow_null=True),
                "offered_at": serializers.DateTimeField(),
                "ended_at": serializers.DateTimeField(allow_null=True, help_text="Null while the offer is pending."),
            },
            many=True,
        )
    )
    def get(self, request):
        offers = Offer.objects.filter(driver=request.driver).select_related("pay").order_by("-created_at")[:100]
        return Response(
            [
                {
                    "offer_id": o.pk,
                    "batch_id": o.batch_id,
                    "kind": o.kind,
                    "round": o.round,
                    "status": o.status,
                    "why": o.rank_reason,
                    "decline_reason": o.decline_reason,
                    "pay_total_cents": getattr(getattr(o, "pay", None), "total_cents", None),
                    "offered_at": o.created_at,
                    "ended_at": None if o.status == "pending" else o.status_changed_at,
                }
                for o in offers
            ]
        )
