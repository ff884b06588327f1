"""Ops admin for drivers' help requests (orders.support): the queue, open ones first, filtered
by status and topic, and a "resolve" action through the service. What the driver wrote is
read-only here."""

from django.contrib import admin, messages
from django.db.models import Case, Value, When
from django.utils.text import Truncator

from ops_admin.base import ReadOnlyAdminMixin
from orders.models import SupportRequest
from orders.support import support_request_resolve


@admin.register(SupportRequest)
class SupportRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "topic", "summary", "driver", "batch", "status"]
    list_filter = ["status", "topic", "created_at"]
    search_fields = ["text", "driver__user__email", "driver__user__last_name", "batch__pk"]
    list_select_related = ["driver__user", "batch__store", "resolved_by"]
    date_hierarchy = "created_at"
    fields = ("driver", "batch", "topic", "text", "status", "created_at", "resolved_at", "resolved_by")
    readonly_fields = ("driver", "batch", "topic", "text", "status", "created_at", "resolved_at", "resolved_by")
    actions = ["resolve"]

    def get_queryset(self, request):
        # The queue: open requests first, oldest first among them; then the resolved ones.
        open_first = Case(When(status=SupportRequest.Status.OPEN, then=Value(0)), default=Value(1))
        return super().get_queryset(request).annotate(open_first=open_first).order_by("open_first", "created_at", "pk")

    def has_change_permission(self, request, obj=None):
        # Needed for the changelist's actions; the fields themselves stay read-only.
        return request.user.has_perm("orders.change_supportrequest")

    @admin.display(description="What happened")
    def summary(self, obj):
        return Truncator(obj.text).chars(80)

    @admin.action(description="Resolve the selected help requests", permissions=["change"])
    def resolve(self, request, queryset):
        resolved = sum(support_request_resolve(support_request=r, by=request.user) for r in queryset)
        if resolved:
            self.message_user(request, f"{resolved} resolved.", level=messages.SUCCESS)
        if unchanged := queryset.count() - resolved:
            self.message_user(request, f"{unchanged} were already resolved.")
