"""Admin for ops: offers, their events and the board's pooled claims. An offer is a record of
what dispatch did; its only changes are actions that call dispatch.services."""

from django.contrib import admin
from django.utils import timezone

from dispatch.models import ClaimAttempt, Offer, OfferEvent
from dispatch.services import offer_expire, offer_set_status
from ops_admin.base import (
    ReadOnlyAdminMixin,
    ReasonActionForm,
    SaveChangedFieldsMixin,
    StatusEventAdmin,
    StatusEventInline,
    run_status_change,
)

# --- Offers ---------------------------------------------------------------------------


class OfferExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request, model_admin):
        return [("overdue", "Pending past expiry")]

    def queryset(self, request, queryset):
        if self.value() == "overdue":
            # Should stay empty: the countdown task and the sweeper expire these. Rows here
            # mean the worker or beat is down. Uses the (status, expires_at) index.
            return queryset.filter(status=Offer.Status.PENDING, expires_at__lt=timezone.now())
        return queryset


class OfferEventInline(StatusEventInline):
    model = OfferEvent


@admin.register(Offer)
class OfferAdmin(SaveChangedFieldsMixin, admin.ModelAdmin):
    list_display = ["id", "batch", "driver", "round", "kind", "status", "expires_at", "decline_reason", "created_at"]
    list_select_related = ["batch__store", "driver__user"]
    list_filter = ["status", OfferExpiryFilter, "kind", "batch__store__zone"]
    search_fields = ["=id", "=batch__id", "driver__user__email", "rank_reason"]
    date_hierarchy = "created_at"
    # An offer is a record of what dispatch did; its only changes are the actions below.
    readonly_fields = [
        "batch",
        "driver",
        "round",
        "kind",
        "status",
        "status_changed_at",
        "expires_at",
        "decline_reason",
        "rank_reason",
        "created_at",
    ]
    inlines = [OfferEventInline]
    action_form = ReasonActionForm
    actions = ["withdraw", "expire_overdue"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Withdraw (pending offers)", permissions=["change"])
    def withdraw(self, request, queryset):
        reason = request.POST.get("reason", "") or "withdrawn by ops"
        run_status_change(
            self,
            request,
            queryset,
            lambda offer: offer_set_status(offer=offer, to=Offer.Status.WITHDRAWN, actor=request.user, reason=reason),
        )

    @admin.action(description="Expire now if past their deadline", permissions=["change"])
    def expire_overdue(self, request, queryset):
        # The same idempotent service the countdown task and the sweeper run.
        run_status_change(self, request, queryset, lambda offer: offer_expire(offer_id=offer.pk))


@admin.register(OfferEvent)
class OfferEventAdmin(StatusEventAdmin):
    list_display = ["created_at", "offer", "from_status", "to_status", "actor", "reason"]
    list_select_related = ["offer", "actor"]
    search_fields = [*StatusEventAdmin.search_fields, "=offer__id"]


@admin.register(ClaimAttempt)
class ClaimAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Board claims pooled in the fair window, with the draw weight and its inputs."""

    list_display = ["id", "batch", "driver", "outcome", "score", "created_at", "decided_at"]
    list_select_related = ["batch", "driver__user"]
    list_filter = ["outcome"]
    search_fields = ["=batch__id", "driver__user__email"]
    date_hierarchy = "created_at"
