"""What every ops admin page shares: read-only and service-owned model admins, the status-change
action that goes through each app's services, and the status event views."""

from typing import TYPE_CHECKING

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.http import Http404
from simple_history.admin import SimpleHistoryAdmin

from spark.errors import DomainError


class ReadOnlyAdminMixin:
    """Rows only services write (events, ledger, pay snapshots): ops can look, never touch."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


if TYPE_CHECKING:
    # The mixin is only ever mixed into a ModelAdmin; mypy needs that base to check super().
    _ModelAdminBase = admin.ModelAdmin
else:
    _ModelAdminBase = object


class SaveChangedFieldsMixin(_ModelAdminBase):
    """Write back only the columns the admin form changed.

    A plain save() writes every column from the copy loaded at the start of the request, so an
    edit that races a service (a status change, a seat claimed on a slot) would silently undo
    it. With update_fields the service-owned columns (all read-only here) are never written.
    """

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        fields = list(form.changed_data)
        if fields:
            fields += [f.name for f in obj._meta.concrete_fields if getattr(f, "auto_now", False)]
            obj.save(update_fields=fields)


class HistoryAdmin(SimpleHistoryAdmin):
    """simple-history's History pages, answering 404 (not a 500) for an id that cannot be a row's
    ("/admin/orders/batch/abc/history/"): simple-history looks the id up without checking it."""

    def _check_ids(self, object_id: str, version_id: str | None = None) -> None:
        try:
            self.model._meta.pk.to_python(unquote(object_id))
            if version_id is not None and not str(version_id).isdigit():
                raise ValidationError("version")
        except ValidationError:
            raise Http404("No such record.") from None

    def history_view(self, request, object_id, extra_context=None):
        self._check_ids(object_id)
        return super().history_view(request, object_id, extra_context=extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self._check_ids(object_id, version_id)
        return super().history_form_view(request, object_id, version_id, extra_context=extra_context)


class ServiceOwnedHistoryAdmin(SaveChangedFieldsMixin, HistoryAdmin):
    """History for models whose status/counters belong to services. "Revert" is hidden:
    restoring an old version would set status or counters without going through a service."""

    def revert_disabled(self, request, obj=None):
        return True


def run_status_change(modeladmin, request, queryset, change) -> None:
    """Call `change(obj)`, a service, for every selected object and report the outcome: how
    many changed status, how many were left as they were (a repeat, or not due), and every
    refusal (DomainError) at level ERROR. Each call is its own transaction, so one refusal
    does not undo the others."""
    changed = unchanged = 0
    for obj in queryset:
        before = obj.status
        try:
            change(obj)
        except DomainError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", level=messages.ERROR)
            continue
        obj.refresh_from_db(fields=["status"])
        if obj.status != before:
            changed += 1
        else:
            unchanged += 1
    if changed:
        modeladmin.message_user(request, f"{changed} changed.", level=messages.SUCCESS)
    if unchanged:
        modeladmin.message_user(request, f"{unchanged} left as they were (already done or not due).")


class ReasonActionForm(ActionForm):
    """The changelist's action bar with a reason that status actions pass to the service."""

    reason = forms.CharField(required=False, max_length=255, label="Reason")


class StatusEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The status timeline of an object (who, when, where, why), oldest first."""

    extra = 0
    fields = ["created_at", "from_status", "to_status", "actor", "reason", "lat", "lng"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


class StatusEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Base of the <Entity>Event admins; subclasses add the parent to list_display."""

    list_filter = ["to_status"]
    search_fields = ["reason", "actor__email"]
    date_hierarchy = "created_at"
