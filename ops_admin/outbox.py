"""Ops admin for the outbox: every outgoing message, its attempts, and a resend."""

from django.contrib import admin, messages

from outbox import services
from outbox.models import Message


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Every message Spark owed someone: when it went out, or why not yet."""

    list_display = ["created_at", "kind", "key", "sent_at", "skipped", "attempts", "due_at", "last_error"]
    list_filter = ["kind", ("sent_at", admin.EmptyFieldListFilter)]
    search_fields = ["key"]
    date_hierarchy = "created_at"
    actions = ["send_now"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Send now (unsent messages)", permissions=["view"])
    def send_now(self, request, queryset):
        ids = queryset.filter(sent_at__isnull=True).values_list("pk", flat=True)
        sent = sum(services.message_send(message_id=pk, force=True) for pk in ids)
        self.message_user(request, f"{sent} sent.", level=messages.SUCCESS if sent else messages.WARNING)
