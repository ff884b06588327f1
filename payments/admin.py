from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from spark.money import format_cents
from stores.admin import (
    ReadOnlyAdminMixin,
    SaveChangedFieldsMixin,
    StatusEventAdmin,
    StatusEventInline,
    run_status_change,
)

from .contractor.notices import notice_send
from .contractor.selectors import screening_cases_awaiting_decision
from .contractor.services import screening_final_decision, screening_record_result, screening_request_documents
from .models import (
    Account,
    DriverNotice,
    Entry,
    LedgerTransaction,
    OfferPaySnapshot,
    Payout,
    PayPolicy,
    ScreeningCase,
    ScreeningEvent,
    Tip,
    TipAdjustment,
    WebhookEvent,
)

PAYOUT_STUCK_AFTER = timedelta(hours=1)


def money(field: str, description: str):
    """A column showing integer cents `field` as dollars, for list_display and readonly_fields
    (a plain function, not a method: the admin calls it with the object only)."""

    @admin.display(description=description, ordering=field)
    def column(obj):
        return format_cents(getattr(obj, field))

    column.__name__ = f"{field}_display"
    return column


# --- Pay policy and offer pay ---------------------------------------------------------


@admin.register(PayPolicy)
class PayPolicyAdmin(SimpleHistoryAdmin):
    # Editable money settings with full history (and revert: no status is involved here).
    list_display = [
        "zone",
        money("base_cents", "Base"),
        money("per_stop_cents", "Per stop"),
        money("per_mile_cents", "Per mile"),
        money("heavy_order_cents", "Heavy order"),
        "wait_grace_minutes",
        money("wait_cents_per_minute", "Wait / min"),
        money("incentive_step_cents", "Incentive step"),
        money("incentive_cap_cents", "Incentive cap"),
        "updated_at",
    ]
    list_select_related = ["zone"]
    search_fields = ["zone__name"]
    readonly_fields = ["updated_at"]


SNAPSHOT_MONEY = [
    money("total_cents", "Total"),
    money("base_cents", "Base"),
    money("stops_cents", "Stops"),
    money("miles_cents", "Miles"),
    money("heavy_cents", "Heavy"),
    money("incentive_cents", "Incentive"),
    money("tip_cents", "Tip"),
]


@admin.register(OfferPaySnapshot)
class OfferPaySnapshotAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Frozen when the offer was made; a floor on the driver's pay (DESIGN rule 8)."""

    list_display = ["offer", "batch", "driver", *SNAPSHOT_MONEY, "routed_meters", "created_at"]
    list_select_related = ["offer__driver__user"]
    search_fields = ["=offer__id", "=offer__batch__id", "offer__driver__user__email"]
    date_hierarchy = "created_at"
    fields = readonly_fields = ("offer", "batch", "driver", *SNAPSHOT_MONEY, "routed_meters", "created_at")

    @admin.display(description="Batch", ordering="offer__batch_id")
    def batch(self, obj):
        return obj.offer.batch_id

    @admin.display(description="Driver")
    def driver(self, obj):
        return obj.offer.driver


# --- Ledger: never edited or deleted here ---------------------------------------------


def entries_sum(parent: str, **filters):
    """Sum of the row's entries (`parent` is "account" or "transaction") as a correlated
    subquery. Unlike a JOIN + GROUP BY it stays out of the changelist's COUNT(*), which would
    otherwise read the whole entries table (our biggest), and runs only for the rows shown."""
    entries = Entry.objects.filter(**{parent: OuterRef("pk")}, **filters).order_by().values(parent)
    return Coalesce(Subquery(entries.annotate(total=Sum("amount_cents")).values("total")), 0)


@admin.register(Account)
class AccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "kind", "driver", "balance", "created_at"]
    list_select_related = ["driver__user"]
    list_filter = ["kind"]
    search_fields = ["name", "driver__user__email"]
    readonly_fields = fields = ("name", "kind", "driver", "balance", "created_at")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(balance_cents=entries_sum("account"))

    @admin.display(description="Balance (sum of entries)", ordering="balance_cents")
    def balance(self, obj):
        return format_cents(obj.balance_cents)


class EntryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Entry
    extra = 0
    readonly_fields = fields = ("account", "amount")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("account")

    @admin.display(description="Amount")
    def amount(self, obj):
        return format_cents(obj.amount_cents)


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "kind", "idempotency_key", "batch", "amount", "memo", "created_by"]
    list_select_related = ["batch__store", "created_by"]
    list_filter = ["kind"]
    search_fields = ["idempotency_key", "memo", "=batch__id"]
    date_hierarchy = "created_at"
    readonly_fields = fields = ("idempotency_key", "kind", "memo", "batch", "created_by", "created_at", "amount")
    inlines = [EntryInline]

    def get_queryset(self, request):
        # Entries sum to zero, so the size of a transaction is the sum of its positive side.
        moved = entries_sum("transaction", amount_cents__gt=0)
        return super().get_queryset(request).annotate(amount_cents=moved)

    @admin.display(description="Amount", ordering="amount_cents")
    def amount(self, obj):
        return format_cents(obj.amount_cents)


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["transaction", "account", "amount", "created_at"]
    list_select_related = ["transaction", "account"]
    list_filter = ["account__kind"]
    search_fields = ["transaction__idempotency_key", "account__name"]
    readonly_fields = fields = ("transaction", "account", "amount")

    @admin.display(description="Amount", ordering="amount_cents")
    def amount(self, obj):
        return format_cents(obj.amount_cents)

    @admin.display(description="Posted", ordering="transaction__created_at")
    def created_at(self, obj):
        return obj.transaction.created_at


# --- Tips and payouts: read-only until their services exist ---------------------------


class CaptureDueFilter(admin.SimpleListFilter):
    title = "capture"
    parameter_name = "capture"

    def lookups(self, request, model_admin):
        return [("overdue", "Authorised, adjust window closed")]

    def queryset(self, request, queryset):
        if self.value() == "overdue":
            return queryset.filter(status=Tip.Status.AUTHORIZED, adjust_window_closes_at__lt=timezone.now())
        return queryset


class TipAdjustmentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = TipAdjustment
    extra = 0
    readonly_fields = fields = (
        "created_at",
        money("old_cents", "Old"),
        money("new_cents", "New"),
        "reason",
        "decided_by",
        "driver_notified_at",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("decided_by")


@admin.register(Tip)
class TipAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = [
        "order",
        "status",
        money("amount_cents", "Amount"),
        money("authorized_cents", "Authorised"),
        "adjust_window_closes_at",
        "captured_at",
        "created_at",
    ]
    list_select_related = ["order__store"]
    list_filter = ["status", CaptureDueFilter]
    search_fields = ["order__external_id", "stripe_payment_intent_id"]
    date_hierarchy = "created_at"
    readonly_fields = fields = (
        "order",
        "status",
        money("amount_cents", "Amount"),
        money("authorized_cents", "Authorised"),
        "stripe_payment_intent_id",
        "adjust_window_closes_at",
        "captured_at",
        "created_at",
    )
    inlines = [TipAdjustmentInline]


@admin.register(TipAdjustment)
class TipAdjustmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "tip",
        money("old_cents", "Old"),
        money("new_cents", "New"),
        "reason",
        "decided_by",
        "driver_notified_at",
    ]
    list_select_related = ["decided_by"]
    search_fields = ["reason", "tip__order__external_id"]
    date_hierarchy = "created_at"


class PayoutStuckFilter(admin.SimpleListFilter):
    title = "stuck"
    parameter_name = "stuck"

    def lookups(self, request, model_admin):
        return [("pending", "Pending for > 1 hour")]

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(status=Payout.Status.PENDING, created_at__lt=timezone.now() - PAYOUT_STUCK_AFTER)
        return queryset


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdminMixin, SimpleHistoryAdmin):
    list_display = [
        "created_at",
        "driver",
        "kind",
        "status",
        money("amount_cents", "Amount"),
        money("fee_cents", "Fee"),
        "paid_at",
        "failure_reason",
    ]
    list_select_related = ["driver__user"]
    list_filter = ["status", PayoutStuckFilter, "kind"]
    search_fields = ["idempotency_key", "external_id", "driver__user__email"]
    date_hierarchy = "created_at"
    readonly_fields = fields = (
        "driver",
        "kind",
        "status",
        money("amount_cents", "Amount"),
        money("fee_cents", "Fee"),
        "idempotency_key",
        "external_id",
        "failure_reason",
        "created_at",
        "paid_at",
    )


class ProcessedFilter(admin.SimpleListFilter):
    title = "processed"
    parameter_name = "processed"

    def lookups(self, request, model_admin):
        return [("no", "Not processed"), ("yes", "Processed")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(processed_at__isnull=self.value() == "no")
        return queryset


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["received_at", "source", "event_type", "event_id", "processed_at"]
    list_filter = ["source", ProcessedFilter, "event_type"]
    search_fields = ["=event_id", "event_type"]
    date_hierarchy = "received_at"


# --- Contractor module: screening (payments/contractor/) -----------------------------------
# Ops review a case on its page (the driver's documents are linked there) and decide with
# the actions of the case list; every action calls a service, status is never edited.


class ScreeningActionForm(ActionForm):
    note = forms.CharField(
        required=False,
        max_length=2000,
        label="Report summary / note",
        help_text="consider: what the report found (the driver gets a copy). Documents: which one and why.",
        widget=forms.TextInput(attrs={"size": 60}),
    )


class DecisionFilter(admin.SimpleListFilter):
    title = "decision"
    parameter_name = "decision"

    def lookups(self, request, model_admin):
        return [
            ("due", "Needs a decision now"),
            ("waiting", "Waiting period running"),
            ("over", "Waiting period over"),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "due":
            return queryset.filter(pk__in=screening_cases_awaiting_decision(now=now).values("pk"))
        if self.value() == "waiting":
            return queryset.filter(status=ScreeningCase.Status.PRE_ADVERSE_NOTICE, dispute_deadline_at__gt=now)
        if self.value() == "over":
            return queryset.filter(status=ScreeningCase.Status.PRE_ADVERSE_NOTICE, dispute_deadline_at__lte=now)
        return queryset


class ScreeningEventInline(StatusEventInline):
    model = ScreeningEvent
    fields = ["created_at", "from_status", "to_status", "source", "actor", "reason"]


class DriverNoticeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DriverNotice
    extra = 0
    fields = ("kind", "created_at", "sent_at", "attempts", "last_error")
    readonly_fields = fields

    @admin.display(description="attempts")
    def attempts(self, obj) -> int:
        return obj.message.attempts if obj.message else 0

    @admin.display(description="last error")
    def last_error(self, obj) -> str:
        return obj.message.last_error if obj.message else ""


def _file_link(field) -> str:
    if not field:
        return "no file uploaded"
    return format_html('<a href="{}" target="_blank" rel="noopener">open the file</a>', field.url)


SCREENING_CASE_FIELDS = (
    "driver_link",
    "status",
    "status_changed_at",
    "provider",
    "provider_ref",
    "result_source",
    "result_summary",
    "submitted_at",
    "decided_at",
    "decided_by",
    "pre_adverse_sent_at",
    "dispute_deadline_at",
    "dispute_text",
    "disputed_at",
    "final_decision_at",
    "final_decided_by",
    "created_at",
)
SCREENING_REVIEW_FIELDS = ("background_check_consent", "license", "insurance", "decide")


@admin.register(ScreeningCase)
class ScreeningCaseAdmin(SaveChangedFieldsMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "driver",
        "email",
        "status",
        "provider",
        "submitted_at",
        "decided_at",
        "pre_adverse_sent_at",
        "dispute_deadline_at",
        "waiting_over",
        "disputed_at",
        "final_decision_at",
    ]
    list_display_links = ["id", "driver"]
    list_select_related = ["driver__user"]
    list_filter = ["status", DecisionFilter, "provider", "result_source"]
    search_fields = ["driver__user__email", "driver__user__last_name", "provider_ref"]
    date_hierarchy = "created_at"
    fieldsets = [
        ("Review", {"fields": SCREENING_REVIEW_FIELDS}),
        ("Case", {"fields": SCREENING_CASE_FIELDS}),
    ]
    readonly_fields = SCREENING_REVIEW_FIELDS + SCREENING_CASE_FIELDS
    inlines = [ScreeningEventInline, DriverNoticeInline]
    action_form = ScreeningActionForm
    actions = ["record_clear", "record_consider", "request_documents", "final_uphold", "final_reinstate"]

    def has_add_permission(self, request):
        return False  # opened by screening_submit when an applicant submits

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("driver__user", "decided_by", "final_decided_by")

    @admin.display(description="Email", ordering="driver__user__email")
    def email(self, obj):
        return obj.driver.user.email

    @admin.display(description="Waiting period over", boolean=True)
    def waiting_over(self, obj):
        if obj.dispute_deadline_at is None:
            return None
        return obj.dispute_deadline_at <= timezone.now()

    @admin.display(description="Driver")
    def driver_link(self, obj):
        url = reverse("admin:drivers_driver_change", args=[obj.driver_id])
        return format_html('<a href="{}">{}</a> ({})', url, obj.driver, obj.driver.user.email)

    @admin.display(description="Background-check consent")
    def background_check_consent(self, obj):
        given = obj.driver.background_check_consent_at
        return f"given {timezone.localtime(given):%b %d, %Y %H:%M}" if given else "NOT GIVEN"

    @admin.display(description="Driver's license")
    def license(self, obj):
        d = obj.driver
        return format_html(
            "{} {} · expires {} · {}",
            d.license_state or "??",
            d.license_number or "(no number)",
            d.license_expires_on or "(no date)",
            _file_link(d.license_document),
        )

    @admin.display(description="Proof of insurance")
    def insurance(self, obj):
        d = obj.driver
        return format_html("expires {} · {}", d.insurance_expires_on or "(no date)", _file_link(d.insurance_document))

    @admin.display(description="Decide")
    def decide(self, obj):
        url = reverse("admin:payments_screeningcase_changelist") + f"?id__exact={obj.pk}"
        return format_html(
            '<a href="{}">Record the decision</a> with the actions of the case list '
            "(record result, request documents, final decision).",
            url,
        )

    def _run(self, request, queryset, change):
        run_status_change(self, request, queryset, change)

    def _note(self, request) -> str:
        return request.POST.get("note", "")

    @admin.action(description="Record result: clear", permissions=["change"])
    def record_clear(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda case: screening_record_result(
                case=case, result="clear", actor=request.user, source="ops", summary=self._note(request)
            ),
        )

    @admin.action(
        description="Record result: consider (start adverse action; enter the report summary)", permissions=["change"]
    )
    def record_consider(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda case: screening_record_result(
                case=case, result="consider", actor=request.user, source="ops", summary=self._note(request)
            ),
        )

    @admin.action(description="Request documents again (enter which and why)", permissions=["change"])
    def request_documents(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda case: screening_request_documents(case=case, actor=request.user, note=self._note(request)),
        )

    @admin.action(description="Final decision: uphold (deactivate the driver)", permissions=["change"])
    def final_uphold(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda case: screening_final_decision(case=case, actor=request.user, uphold=True, note=self._note(request)),
        )

    @admin.action(description="Final decision: reinstate (activate the driver)", permissions=["change"])
    def final_reinstate(self, request, queryset):
        self._run(
            request,
            queryset,
            lambda case: screening_final_decision(
                case=case, actor=request.user, uphold=False, note=self._note(request)
            ),
        )


@admin.register(ScreeningEvent)
class ScreeningEventAdmin(StatusEventAdmin):
    list_display = ["created_at", "case", "from_status", "to_status", "source", "actor", "reason"]
    list_select_related = ["case", "actor"]
    list_filter = ["to_status", "source"]
    search_fields = [*StatusEventAdmin.search_fields, "case__driver__user__email"]


class SentFilter(admin.SimpleListFilter):
    title = "sent"
    parameter_name = "sent"

    def lookups(self, request, model_admin):
        return [("no", "Not sent"), ("yes", "Sent")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(sent_at__isnull=self.value() == "no")
        return queryset


@admin.register(DriverNotice)
class DriverNoticeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Emails the contractor module owed drivers: the record of the adverse-action notices."""

    list_display = ["created_at", "kind", "driver", "case", "sent_at", "attempts", "last_error"]
    list_select_related = ["driver__user", "case", "message"]
    list_filter = [SentFilter, "kind"]
    search_fields = ["driver__user__email", "key"]
    date_hierarchy = "created_at"
    actions = ["send_now"]

    @admin.display(description="attempts")
    def attempts(self, obj) -> int:
        return obj.message.attempts if obj.message else 0

    @admin.display(description="last error")
    def last_error(self, obj) -> str:
        return obj.message.last_error if obj.message else ""

    @admin.action(description="Send now (unsent notices)", permissions=["view"])
    def send_now(self, request, queryset):
        sent = sum(
            notice_send(notice_id=pk, force=True)
            for pk in queryset.filter(sent_at__isnull=True).values_list("pk", flat=True)
        )
        self.message_user(request, f"{sent} sent.", level=messages.SUCCESS if sent else messages.WARNING)
