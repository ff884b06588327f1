"""Ops admin for orders and batches: their events, stops, and taking a batch back to dispatch."""

from datetime import timedelta

from django.contrib import admin
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.utils import timezone

from dispatch.models import Offer
from dispatch.services import batch_release_to_dispatch
from ops_admin.base import (
    ReadOnlyAdminMixin,
    ReasonActionForm,
    ServiceOwnedHistoryAdmin,
    StatusEventAdmin,
    StatusEventInline,
    run_status_change,
)
from orders.batch_editing import batch_discard, batch_publish, batch_unpublish
from orders.cancellation import order_cancel
from orders.models import (
    Batch,
    BatchEvent,
    BatchingRun,
    DeliveryRating,
    Order,
    OrderEvent,
    Stop,
    StopEvent,
)
from payments.money_trace import batch_money_trace
from spark.money import format_cents

STUCK_UNASSIGNED_AFTER = timedelta(minutes=10)
STUCK_AT_STORE_AFTER = timedelta(minutes=20)


# --- Orders ---------------------------------------------------------------------------


class LateOrderFilter(admin.SimpleListFilter):
    title = "late"
    parameter_name = "late"

    def lookups(self, request, model_admin):
        return [("yes", "Window passed, not delivered")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            open_statuses = [Order.Status.RECEIVED, Order.Status.BATCHED, Order.Status.READY, Order.Status.PICKED_UP]
            return queryset.filter(status__in=open_statuses, window_end__lt=timezone.now())
        return queryset


class OrderEventInline(StatusEventInline):
    model = OrderEvent


@admin.register(Order)
class OrderAdmin(ServiceOwnedHistoryAdmin):
    list_display = ["external_id", "store", "customer_name", "status", "window_start", "window_end", "totes", "tip"]
    list_select_related = ["store"]
    list_filter = ["status", LateOrderFilter, "store__zone", "is_heavy", "contains_alcohol"]
    search_fields = ["external_id", "customer_name", "customer_phone", "customer_email", "address_line1", "postal_code"]
    date_hierarchy = "window_start"
    fieldsets = [
        (None, {"fields": ["store", "external_id", "status", "status_changed_at", "cancel_reason", "return_reason"]}),
        (
            "Customer",
            {
                "fields": [
                    "customer_name",
                    "customer_phone",
                    "customer_email",
                    "address_line1",
                    "address_line2",
                    "city",
                    "state",
                    "postal_code",
                    "lat",
                    "lng",
                    "notes",
                ]
            },
        ),
        (
            "Delivery",
            {
                "fields": [
                    "window_start",
                    "window_end",
                    "totes",
                    "weight_lb",
                    "items_count",
                    "is_heavy",
                    "contains_alcohol",
                    "tip",
                ]
            },
        ),
        ("Intake", {"fields": ["tracking_token", "idempotency_key", "intake_fingerprint", "created_at", "updated_at"]}),
    ]
    # Ops may fix contact and address details; everything else comes from intake or services
    # (the tip changes only through payments, with its adjustment trail).
    readonly_fields = [
        "store",
        "external_id",
        "status",
        "status_changed_at",
        "cancel_reason",
        "return_reason",
        "window_start",
        "window_end",
        "totes",
        "weight_lb",
        "items_count",
        "is_heavy",
        "contains_alcohol",
        "tip",
        "tracking_token",
        "idempotency_key",
        "intake_fingerprint",
        "created_at",
        "updated_at",
    ]
    inlines = [OrderEventInline]
    action_form = ReasonActionForm
    actions = ["cancel"]

    def has_add_permission(self, request):
        return False  # orders arrive through the intake API

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Tip", ordering="tip_cents")
    def tip(self, obj):
        return format_cents(obj.tip_cents)

    @admin.action(description="Cancel (until pickup; leaves its batch)", permissions=["change"])
    def cancel(self, request, queryset):
        reason = request.POST.get("reason", "") or "cancelled by ops"
        run_status_change(
            self, request, queryset, lambda order: order_cancel(order=order, reason=reason, actor=request.user)
        )


@admin.register(OrderEvent)
class OrderEventAdmin(StatusEventAdmin):
    list_display = ["created_at", "order", "from_status", "to_status", "actor", "reason"]
    list_select_related = ["order__store", "actor"]
    search_fields = [*StatusEventAdmin.search_fields, "order__external_id"]


# --- Batches --------------------------------------------------------------------------


class StuckBatchFilter(admin.SimpleListFilter):
    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [
            ("unassigned", "Published, not assigned for > 10 min"),
            ("at_store", "Driver at store for > 20 min"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "unassigned":
            # published_at is stamped again every time the batch goes back on offer, so this is
            # "on the board unclaimed since"; (status, published_at) is indexed for this query.
            return queryset.filter(status=Batch.Status.PUBLISHED, published_at__lte=now - STUCK_UNASSIGNED_AFTER)
        if self.value() == "at_store":
            return queryset.filter(status=Batch.Status.AT_STORE, arrived_at_store_at__lte=now - STUCK_AT_STORE_AFTER)
        return queryset


class StopInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Stop
    extra = 0
    fields = ["sequence", "order", "status", "arrived_at", "delivered_at", "failure_reason", "id_checked"]
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("order__store")


class BatchEventInline(StatusEventInline):
    model = BatchEvent


class OfferInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Offer
    extra = 0
    fields = ["created_at", "driver", "round", "kind", "status", "expires_at", "decline_reason", "rank_reason"]
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("driver__user")


@admin.register(Batch)
class BatchAdmin(ServiceOwnedHistoryAdmin):
    list_display = [
        "id",
        "store",
        "status",
        "driver",
        "num_stops",
        "offer_round",
        "incentive",
        "published_at",
        "pickup_by",
        "status_changed_at",
    ]
    list_select_related = ["store", "driver__user"]
    list_filter = ["status", StuckBatchFilter, "store__zone"]
    search_fields = ["=id", "store__number", "store__name", "driver__user__email", "stops__order__external_id"]
    date_hierarchy = "created_at"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "store",
                    "status",
                    "status_changed_at",
                    "driver",
                    "finish_first_at",
                    "slot",
                    "pickup_code",
                ]
            },
        ),
        (
            "Timing",
            {
                "fields": [
                    "ready_at",
                    "pickup_by",
                    "published_at",
                    "assigned_at",
                    "arrived_at_store_at",
                    "picked_up_at",
                    "closed_at",
                ]
            },
        ),
        ("Route and pay", {"fields": ["route_meters", "route_seconds", "offer_round", "incentive", "batching_run"]}),
        (None, {"fields": ["created_by", "created_at"]}),
        ("Money", {"fields": ["money"], "classes": ["wide"]}),
    ]
    # All of it belongs to the services (stops and scheduling are edited on the store
    # dashboard); ops change a batch through the actions below.
    readonly_fields = [
        "store",
        "status",
        "status_changed_at",
        "driver",
        "finish_first_at",
        "slot",
        "pickup_code",
        "ready_at",
        "pickup_by",
        "published_at",
        "assigned_at",
        "arrived_at_store_at",
        "picked_up_at",
        "closed_at",
        "route_meters",
        "route_seconds",
        "offer_round",
        "incentive",
        "batching_run",
        "created_by",
        "created_at",
        "money",
    ]
    inlines = [StopInline, BatchEventInline, OfferInline]
    action_form = ReasonActionForm
    actions = ["publish", "back_to_draft", "back_to_dispatch", "cancel"]

    def has_add_permission(self, request):
        return False  # batches are built by auto-batching or on the store dashboard

    @admin.display(description="Every cent of this batch")
    def money(self, obj):
        """Read-only: its offer's pay snapshot, its pay with parts and adjustments, its orders'
        tips and every ledger transaction behind them (payments.money_trace)."""
        if obj is None or obj.pk is None:
            return "-"
        return render_to_string("admin/orders/batch_money.html", {"trace": batch_money_trace(obj)})

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        # A correlated subquery rather than Count("stops"): Django leaves it out of the list's
        # COUNT(*) and date-hierarchy queries, where a JOIN + GROUP BY over every stop would
        # make the whole page slow on a big table. It runs only for the rows on the page.
        live_stops = (
            Stop.objects.filter(batch=OuterRef("pk"))
            .exclude(status=Stop.Status.REMOVED)
            .order_by()
            .values("batch")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_queryset(request).annotate(num_stops=Coalesce(Subquery(live_stops), 0))

    @admin.display(description="Stops", ordering="num_stops")
    def num_stops(self, obj):
        return obj.num_stops

    @admin.display(description="Incentive", ordering="incentive_cents")
    def incentive(self, obj):
        return format_cents(obj.incentive_cents)

    @admin.action(description="Publish now (draft batches)", permissions=["change"])
    def publish(self, request, queryset):
        run_status_change(self, request, queryset, lambda batch: batch_publish(batch=batch, actor=request.user))

    @admin.action(description="Pull back to draft (published, not yet taken)", permissions=["change"])
    def back_to_draft(self, request, queryset):
        run_status_change(self, request, queryset, lambda batch: batch_unpublish(batch=batch, actor=request.user))

    @admin.action(
        description="Send back to dispatch (taken from its driver before pickup; trip paid)", permissions=["change"]
    )
    def back_to_dispatch(self, request, queryset):
        reason = request.POST.get("reason", "") or "sent back by ops"
        run_status_change(
            self,
            request,
            queryset,
            lambda batch: batch_release_to_dispatch(batch=batch, actor=request.user, reason=reason),
        )

    @admin.action(description="Cancel (orders go back to the queue)", permissions=["change"])
    def cancel(self, request, queryset):
        reason = request.POST.get("reason", "") or "cancelled by ops"
        run_status_change(
            self, request, queryset, lambda batch: batch_discard(batch=batch, actor=request.user, reason=reason)
        )


@admin.register(BatchEvent)
class BatchEventAdmin(StatusEventAdmin):
    list_display = ["created_at", "batch", "from_status", "to_status", "actor", "reason"]
    list_select_related = ["batch__store", "actor"]
    search_fields = [*StatusEventAdmin.search_fields, "=batch__id"]


class RunBatchInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Batch
    extra = 0
    readonly_fields = fields = ("status", "driver", "route_meters", "pickup_by", "created_at")
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("store", "driver__user")


@admin.register(BatchingRun)
class BatchingRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Auto-batching jobs, started from the store dashboard; here to see what they proposed and why one failed."""

    list_display = [
        "id",
        "store",
        "status",
        "window_from",
        "window_to",
        "orders_considered",
        "batches_proposed",
        "total_meters",
        "created_at",
        "finished_at",
    ]
    list_select_related = ["store"]
    list_filter = ["status", "store__zone"]
    search_fields = ["=id", "store__number", "store__name", "error"]
    date_hierarchy = "created_at"
    inlines = [RunBatchInline]


# --- Stops ----------------------------------------------------------------------------


class StopEventInline(StatusEventInline):
    model = StopEvent


@admin.register(Stop)
class StopAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Stops change only in the driver app and on the dashboard."""

    list_display = ["__str__", "order", "status", "arrived_at", "delivered_at", "failure_reason", "id_checked"]
    list_select_related = ["order__store"]
    list_filter = ["status", "id_checked", "batch__store__zone"]
    search_fields = ["=batch__id", "order__external_id", "order__customer_name"]
    inlines = [StopEventInline]


@admin.register(StopEvent)
class StopEventAdmin(StatusEventAdmin):
    list_display = ["created_at", "stop", "from_status", "to_status", "actor", "reason"]
    list_select_related = ["stop", "actor"]
    search_fields = [*StatusEventAdmin.search_fields, "stop__order__external_id"]


@admin.register(DeliveryRating)
class DeliveryRatingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Customers' ratings from the tracking page (orders.ratings); they feed the driver's standing."""

    list_display = ["created_at", "order", "driver", "stars", "note"]
    list_select_related = ["order__store", "driver__user"]
    list_filter = ["stars"]
    search_fields = ["order__external_id", "driver__user__email", "note"]
    date_hierarchy = "created_at"
    readonly_fields = fields = ("order", "driver", "stars", "note", "created_at")
