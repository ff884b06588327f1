"""Ops admin for zones, stores, their staff, API keys and delivery slots."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, F

from ops_admin.base import ServiceOwnedHistoryAdmin
from stores.models import DeliverySlot, SlotTemplate, Store, StoreApiKey, StoreMembership, Zone
from stores.services import store_api_key_revoke


@admin.register(Zone)
class ZoneAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "timezone",
        "offer_ttl_seconds",
        "claim_pool_seconds",
        "delivers_alcohol",
        "num_stores",
        "is_active",
    ]
    list_filter = ["is_active", "delivers_alcohol"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(num_stores=Count("stores"))

    @admin.display(description="Stores", ordering="num_stores")
    def num_stores(self, obj):
        return obj.num_stores


class StoreMembershipInline(admin.TabularInline):
    model = StoreMembership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ["number", "name", "zone", "city", "state", "is_active", "created_at"]
    list_select_related = ["zone"]
    list_filter = ["zone", "is_active"]
    search_fields = ["number", "name", "city", "postal_code", "address_line1"]
    readonly_fields = ["created_at"]
    inlines = [StoreMembershipInline]


@admin.register(StoreMembership)
class StoreMembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "store", "role", "created_at"]
    list_select_related = ["user", "store"]
    list_filter = ["role", "store__zone"]
    search_fields = ["user__email", "user__first_name", "user__last_name", "store__number", "store__name"]
    autocomplete_fields = ["user", "store"]
    readonly_fields = ["created_at"]


class ApiKeyStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(StoreApiKey)
class StoreApiKeyAdmin(admin.ModelAdmin):
    # The hash is left out entirely: it is useless to read and must never be edited. Keys are
    # issued (and shown once) by the store dashboard, so there is no add page here.
    fields = ["store", "name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["store", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    list_display = ["prefix", "name", "store", "is_active", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["store"]
    list_filter = [ApiKeyStateFilter, "store__zone"]
    search_fields = ["prefix", "name", "store__number", "store__name"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.display(boolean=True, description="Active")
    def is_active(self, obj):
        return obj.is_active

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        # Idempotent: a key revoked already keeps its first revocation time.
        keys = list(queryset.filter(revoked_at__isnull=True))
        for key in keys:
            store_api_key_revoke(key=key)
        self.message_user(request, f"{len(keys)} key(s) revoked.", level=messages.SUCCESS)


class SlotSeatsFilter(admin.SimpleListFilter):
    title = "seats"
    parameter_name = "seats"

    def lookups(self, request, model_admin):
        return [("free", "Has free seats"), ("full", "Full")]

    def queryset(self, request, queryset):
        if self.value() == "free":
            return queryset.filter(claimed__lt=F("capacity"))
        if self.value() == "full":
            return queryset.filter(claimed__gte=F("capacity"))
        return queryset


class DeliverySlotForm(forms.ModelForm):
    def clean_capacity(self):
        capacity = self.cleaned_data["capacity"]
        # `claimed` is read-only here, so Django skips the CHECK (claimed <= capacity) in
        # validation; say it clearly instead of letting the database refuse with a 500.
        if self.instance.pk and capacity < self.instance.claimed:
            raise forms.ValidationError(f"{self.instance.claimed} seats are already claimed.")
        return capacity


@admin.register(DeliverySlot)
class DeliverySlotAdmin(ServiceOwnedHistoryAdmin):
    form = DeliverySlotForm
    list_display = ["store", "starts_at", "ends_at", "capacity", "claimed", "seats_free"]
    list_select_related = ["store"]
    list_filter = [SlotSeatsFilter, "store__zone", "store"]
    search_fields = ["store__number", "store__name"]
    date_hierarchy = "starts_at"
    # `claimed` is a guarded counter only the slot-claim services move.
    readonly_fields = ["claimed", "created_at"]
    autocomplete_fields = ["store"]

    @admin.display(description="Free")
    def seats_free(self, obj):
        return obj.seats_free


@admin.register(SlotTemplate)
class SlotTemplateAdmin(admin.ModelAdmin):
    list_display = ["store", "days", "start_time", "end_time", "capacity", "is_active", "created_at"]
    list_select_related = ["store"]
    list_filter = ["is_active", "store__zone"]
    search_fields = ["store__number", "store__name"]
    autocomplete_fields = ["store"]
    readonly_fields = ["created_at"]

    @admin.display(description="Days", ordering="weekdays")
    def days(self, obj):
        return obj.weekday_names
