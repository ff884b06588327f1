"""Ops admin for drivers: profiles, status changes with reason codes (and what becomes of a
held batch), events, slot claims and routes."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME, ActionForm
from django.db.models import Q
from django.template.response import TemplateResponse
from django.utils import timezone

from drivers.models import Driver, DriverEvent, Location, PushSubscription, Route, SlotClaim
from drivers.services import driver_set_status
from ops_admin.base import (
    ReadOnlyAdminMixin,
    ServiceOwnedHistoryAdmin,
    StatusEventAdmin,
    StatusEventInline,
    run_status_change,
)
from orders.held_batches import (
    HELD_BATCH_DISPATCH,
    HELD_BATCH_FINISH,
    held_batch_choices,
    held_batch_default,
    held_batch_of,
)
from payments.contractor.payout_setup import payout_account_summary

DOCUMENTS_WARNING = timedelta(days=14)


class DocumentsFilter(admin.SimpleListFilter):
    title = "documents"
    parameter_name = "documents"

    def lookups(self, request, model_admin):
        return [("expiring", "License or insurance expiring within 14 days"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        today = timezone.localdate()
        if self.value() == "expiring":
            window = (today, today + DOCUMENTS_WARNING)
            return queryset.filter(Q(license_expires_on__range=window) | Q(insurance_expires_on__range=window))
        if self.value() == "expired":
            return queryset.filter(Q(license_expires_on__lt=today) | Q(insurance_expires_on__lt=today))
        return queryset


class DriverActionForm(ActionForm):
    """The action bar of the driver list: suspending or deactivating needs a reason code,
    which the driver sees; the note is for ops."""

    reason_code = forms.ChoiceField(choices=Driver.ReasonCode.choices, required=False, label="Reason")
    note = forms.CharField(required=False, label="Note")


class DriverEventInline(StatusEventInline):
    model = DriverEvent
    fields = ["created_at", "from_status", "to_status", "reason_code", "actor", "reason"]


# A seat's story, as the driver's page (inline) and the seats list show it.
SLOT_CLAIM_FIELDS = [
    "slot",
    "status",
    "claimed_at",
    "checked_in_at",
    "checked_in_by",
    "cancelled_at",
    "release_at",
    "released_at",
]


class SlotClaimInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = SlotClaim
    extra = 0
    fields = tuple(SLOT_CLAIM_FIELDS)
    ordering = ["-claimed_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("slot__store")


@admin.register(Driver)
class DriverAdmin(ServiceOwnedHistoryAdmin):
    list_display = [
        "name",
        "email",
        "status",
        "reason_code",
        "home_zone",
        "vehicle_type",
        "license_expires_on",
        "insurance_expires_on",
        "is_online",
        "payouts",
        "status_changed_at",
    ]
    list_display_links = ["name", "email"]  # the name may be blank
    list_select_related = ["user", "home_zone", "payout_account"]
    list_filter = ["status", DocumentsFilter, "home_zone", "is_online", "vehicle_type", "reason_code"]
    search_fields = [
        "user__email",
        "user__first_name",
        "user__last_name",
        "phone",
        "vehicle_plate",
        "license_number",
        "contractor_id",
    ]
    date_hierarchy = "created_at"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "user",
                    "status",
                    "status_changed_at",
                    "reason_code",
                    "reason_note",
                    "appeal_text",
                    "appeal_submitted_at",
                ]
            },
        ),
        ("Contact", {"fields": ["home_zone", "phone", "phone_verified_at", "photo"]}),
        (
            "Vehicle",
            {
                "fields": [
                    "vehicle_type",
                    "vehicle_make",
                    "vehicle_model",
                    "vehicle_color",
                    "vehicle_plate",
                    "vehicle_tote_capacity",
                ]
            },
        ),
        (
            "Documents and screening",
            {
                "fields": [
                    "license_number",
                    "license_state",
                    "license_expires_on",
                    "license_document",
                    "insurance_expires_on",
                    "insurance_document",
                    "birth_date",
                    "background_check_consent_at",
                    "contractor_id",
                    "payouts",
                ]
            },
        ),
        ("Availability", {"fields": ["is_online", "online_since", "created_at"]}),
    ]
    # Status, its reason and being online change only through driver_set_status (actions below).
    readonly_fields = [
        "user",
        "status",
        "status_changed_at",
        "reason_code",
        "reason_note",
        "appeal_text",
        "appeal_submitted_at",
        "phone_verified_at",
        "birth_date",  # checked against the zone's minimum age at sign-up (onboarding_save_birth_date)
        "background_check_consent_at",
        "contractor_id",
        "payouts",
        "is_online",
        "online_since",
        "created_at",
    ]
    inlines = [DriverEventInline, SlotClaimInline]
    action_form = DriverActionForm
    actions = ["move_to_screening", "activate", "suspend", "deactivate"]

    def has_add_permission(self, request):
        return False  # drivers sign up in the driver app

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Name", ordering="user__last_name")
    def name(self, obj):
        return obj.user.get_full_name()

    @admin.display(description="Email", ordering="user__email")
    def email(self, obj):
        return obj.user.email

    @admin.display(description="Payouts", ordering="payout_account__payouts_enabled")
    def payouts(self, obj):
        """The driver's Stripe Connect payout set-up as Stripe last told us (payments.PayoutAccount)."""
        return payout_account_summary(obj)

    def _set_status(self, request, queryset, to):
        reason_code = request.POST.get("reason_code", "")
        note = request.POST.get("note", "")
        run_status_change(
            self,
            request,
            queryset,
            lambda driver: driver_set_status(
                driver=driver, to=to, actor=request.user, reason_code=reason_code, note=note
            ),
        )

    HELD_BATCH_LABELS = {
        HELD_BATCH_FINISH: "Let them finish this batch first (no new work; the suspension stands)",
        HELD_BATCH_DISPATCH: "Send the batch back to dispatch now (offered again from round 1; the trip is paid)",
    }

    def _take_off_work(self, request, queryset, to, *, title: str):
        """Suspend or deactivate. A driver holding a batch is never left with it undecided: the
        first POST shows a confirmation page asking, per batch, whether the driver finishes it
        first or it goes back to dispatch; its POST (confirm_batches) carries the choices."""
        held = [(driver, batch) for driver in queryset.select_related("user") if (batch := held_batch_of(driver))]
        reason_code = request.POST.get("reason_code", "")
        # Without a reason code the service refuses anyway: say so at once, not after a second page.
        if held and reason_code and not request.POST.get("confirm_batches"):
            rows = [
                {
                    "driver": driver,
                    "batch": batch,
                    "field": f"batch_{driver.pk}",
                    "default": held_batch_default(batch),
                    "choices": [(c, self.HELD_BATCH_LABELS[c]) for c in held_batch_choices(batch)],
                }
                for driver, batch in held
            ]
            context = {
                **self.admin_site.each_context(request),
                "title": title,
                "opts": self.model._meta,
                "rows": rows,
                "others": [d for d in queryset.select_related("user") if d.pk not in {r["driver"].pk for r in rows}],
                "action": request.POST.get("action", ""),
                "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
                "reason_code": reason_code,
                "reason_label": dict(Driver.ReasonCode.choices).get(reason_code, reason_code),
                "note": request.POST.get("note", ""),
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/drivers/driver/held_batches.html", context)
        decisions = {driver.pk: request.POST.get(f"batch_{driver.pk}", "") for driver, _batch in held}
        undecided = [driver for driver, _batch in held if reason_code and not decisions[driver.pk]]
        for driver in undecided:
            self.message_user(
                request,
                f"{driver}: choose what happens to the batch they hold; nothing was changed.",
                level=messages.ERROR,
            )
        note = request.POST.get("note", "")
        run_status_change(
            self,
            request,
            queryset.exclude(pk__in=[d.pk for d in undecided]),
            lambda driver: driver_set_status(
                driver=driver,
                to=to,
                actor=request.user,
                reason_code=reason_code,
                note=note,
                batch_decision=decisions.get(driver.pk) or None,
            ),
        )
        return None

    @admin.action(description="Move to screening", permissions=["change"])
    def move_to_screening(self, request, queryset):
        self._set_status(request, queryset, Driver.Status.SCREENING)

    @admin.action(description="Activate (screened, reinstated or appeal upheld)", permissions=["change"])
    def activate(self, request, queryset):
        self._set_status(request, queryset, Driver.Status.ACTIVE)

    @admin.action(description="Suspend (pick a reason)", permissions=["change"])
    def suspend(self, request, queryset):
        return self._take_off_work(request, queryset, Driver.Status.SUSPENDED, title="Suspend drivers")

    @admin.action(description="Deactivate (pick a reason)", permissions=["change"])
    def deactivate(self, request, queryset):
        return self._take_off_work(request, queryset, Driver.Status.DEACTIVATED, title="Deactivate drivers")


@admin.register(DriverEvent)
class DriverEventAdmin(StatusEventAdmin):
    list_display = ["created_at", "driver", "from_status", "to_status", "reason_code", "actor", "reason"]
    list_select_related = ["driver__user", "actor"]
    list_filter = ["to_status", "reason_code"]
    search_fields = [*StatusEventAdmin.search_fields, "driver__user__email"]


@admin.register(Route)
class RouteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Drivers set their routes in the driver app; ops only look."""

    list_display = [
        "driver",
        "zone",
        "mode",
        "leave_after",
        "arrive_by",
        "max_detour_meters",
        "is_active",
        "created_at",
    ]
    list_select_related = ["driver__user", "zone"]
    list_filter = ["is_active", "mode", "zone"]
    search_fields = ["driver__user__email", "driver__user__last_name"]


class NoShowFilter(admin.SimpleListFilter):
    title = "no-show"
    parameter_name = "no_show"

    def lookups(self, request, model_admin):
        return [("unreleased", "Past release time, still signed up")]

    def queryset(self, request, queryset):
        if self.value() == "unreleased":
            # Should stay empty: the release countdown and the sweeper release these seats.
            return queryset.filter(status=SlotClaim.Status.CLAIMED, release_at__lt=timezone.now())
        return queryset


@admin.register(SlotClaim)
class SlotClaimAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Seats are counted on DeliverySlot.claimed by the claim services; editing a claim here
    would put the count out of step, so the admin only shows them."""

    list_display = ["driver", *SLOT_CLAIM_FIELDS]
    list_select_related = ["driver__user", "slot__store", "checked_in_by"]
    list_filter = ["status", NoShowFilter, "slot__store__zone"]
    search_fields = ["driver__user__email", "driver__user__last_name", "slot__store__number"]
    date_hierarchy = "claimed_at"


@admin.register(Location)
class LocationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["driver", "lat", "lng", "accuracy_m", "recorded_at"]
    list_select_related = ["driver__user"]
    search_fields = ["driver__user__email", "driver__user__last_name"]
    date_hierarchy = "recorded_at"


@admin.register(PushSubscription)
class PushSubscriptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "driver", "created_at", "last_success_at", "failures"]
    list_select_related = ["driver__user"]
    search_fields = ["driver__user__email"]
