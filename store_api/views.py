from typing import cast

from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from orders import selectors, time_rules
from orders.cancellation import order_cancel
from orders.intake import order_intake
from orders.models import Order
from payments.tips import tip_change_by_store, tip_intake
from spark.api.schema import error_responses
from spark.roles import IsStoreIntegration
from stores.models import StoreApiKey

from .serializers import OrderCancelSerializer, OrderIntakeSerializer, OrderSerializer, OrderTipSerializer


class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Orders of the API key's store. Another store's order is a 404."""

    permission_classes = [IsStoreIntegration]
    serializer_class = OrderSerializer
    lookup_value_converter = "int"  # /orders/abc/cancel/ is a 404, not a ValueError in the lookup

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no API key
            return Order.objects.none()
        params = self.request.query_params
        window_from = self._datetime_param("window_from")
        window_to = self._datetime_param("window_to")
        status_filter = params.get("status")
        if status_filter and status_filter not in Order.Status.values:
            from rest_framework.exceptions import ValidationError

            raise ValidationError({"status": [f"Unknown status; use one of {', '.join(Order.Status.values)}."]})
        key = cast(StoreApiKey, self.request.auth)  # IsStoreIntegration let it in: the store's API key
        orders = selectors.orders_for_store(
            store_id=key.store_id, status=status_filter, window_from=window_from, window_to=window_to
        )
        if self._boolean_param("waiting_for_batch"):
            # The same rule as the dashboard's flag above its queue.
            waiting = time_rules.orders_window_started_unbatched(store_id=key.store_id, now=timezone.now())
            orders = orders.filter(pk__in=waiting.values("pk"))
        return orders

    def _boolean_param(self, name: str) -> bool:
        from rest_framework.exceptions import ValidationError

        raw = (self.request.query_params.get(name) or "").lower()
        if raw not in ("", "true", "false"):
            raise ValidationError({name: ["Use true or false."]})
        return raw == "true"

    def _datetime_param(self, name: str):
        from rest_framework.exceptions import ValidationError
        from rest_framework.fields import DateTimeField

        raw = self.request.query_params.get(name)
        if not raw:
            return None
        try:
            return DateTimeField().to_internal_value(raw)
        except ValidationError:
            raise ValidationError({name: ["Use an ISO 8601 date-time with an offset."]}) from None

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=Order.Status.values),
            OpenApiParameter("window_from", OpenApiTypes.DATETIME, description="Windows ending after this"),
            OpenApiParameter("window_to", OpenApiTypes.DATETIME, description="Windows starting before this"),
            OpenApiParameter(
                "waiting_for_batch",
                OpenApiTypes.BOOL,
                description="true: only orders whose delivery window has started while they are in no batch",
            ),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=OrderIntakeSerializer,
        # 404: `store` is not the API key's store; 409: a repeat with another body or key.
        responses={201: OrderSerializer, 200: OrderSerializer, **error_responses(404, 409)},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        description="Create an order. Repeating the same external_id (or Idempotency-Key) with the same body "
        "returns 200 and the same order; with a different body, 409.",
    )
    def create(self, request):
        store = request.auth.store
        incoming = OrderIntakeSerializer(data=request.data, context={"store": store})
        incoming.is_valid(raise_exception=True)
        if incoming.validated_data["store"] != store.number:
            raise NotFound("No such store for this API key.")
        key = request.headers.get("Idempotency-Key", "").strip()[:128] or None
        # The order and its tip (payments.Tip, the tip's one source of truth) commit together; a
        # card tip's authorisation is queued for after the commit (payments.tips).
        with transaction.atomic():
            result = order_intake(store=store, data=incoming.to_model_fields(), idempotency_key=key)
            tip_intake(order=result.order, **incoming.tip_fields())
        result.order.refresh_from_db()
        body = OrderSerializer(result.order, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)

    @extend_schema(request=OrderCancelSerializer, responses={200: OrderSerializer, **error_responses(409)})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        order = get_object_or_404(self.get_queryset(), pk=pk)
        data = OrderCancelSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        order_cancel(order=order, reason=data.validated_data["reason"])
        order.refresh_from_db()
        return Response(OrderSerializer(order, context={"request": request}).data)

    @extend_schema(
        request=OrderTipSerializer,
        responses={200: OrderSerializer, **error_responses(409)},
        description="Change the tip before a driver has the order's batch (409 `tip_claimed` after: from then on "
        "only the customer can raise it, from the tracking page; 409 `tip_closed` once it is settled or released).",
    )
    @action(detail=True, methods=["post"])
    def tip(self, request, pk=None):
        order = get_object_or_404(self.get_queryset(), pk=pk)
        data = OrderTipSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tip_change_by_store(order=order, amount_cents=data.validated_data["tip_cents"])
        order.refresh_from_db()
        return Response(OrderSerializer(order, context={"request": request}).data)
