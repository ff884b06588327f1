"""Ops admin for the contractor's screening: cases awaiting a decision, their events, and the
notices sent to drivers."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from ops_admin.base import (
    ReadOnlyAdminMixin,
    SaveChangedFieldsMixin,
    StatusEventAdmin,
    StatusEventInline,
    run_status_change,
)
from payments.contractor.notices import notice_send
from payments.contractor.selectors import screening_cases_awaiting_decision
from payments.contractor.services import screening_final_decision, screening_record_result, screening_request_documents
from payments.models import (
    DriverNotice,
    ScreeningCase,
    ScreeningEvent,
)


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


def file_link(field) -> str:
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
            file_link(d.license_document),
        )

    @admin.display(description="Proof of insurance")
    def insurance(self, obj):
        d = obj.driver
        return format_html("expires {} · {}", d.insurance_expires_on or "(no date)", file_link(d.insurance_document))

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
