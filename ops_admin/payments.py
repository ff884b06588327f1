"""Ops admin for money: pay policies, pay snapshots, batch pay and its adjustments, the ledger,
tips, payouts and webhook events."""

from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from ops_admin.base import HistoryAdmin, ReadOnlyAdminMixin
from payments.contractor.tax import nec_1099_csv, tin_masked
from payments.models import (
    Account,
    BatchPay,
    Entry,
    LedgerTransaction,
    OfferPaySnapshot,
    PayAdjustment,
    Payout,
    PayoutAccount,
    PayoutRun,
    PayPolicy,
    Reconciliation,
    TaxProfile,
    Tip,
    TipAdjustment,
    TipCharge,
    WebhookEvent,
)
from payments.settlement import adjusted_total_cents, pay_adjust
from payments.tips import tip_lower_by_ops
from spark.errors import DomainError
from spark.money import format_cents

PAYOUT_STUCK_AFTER = timedelta(hours=1)


def money(field: str, description: str):
    """A column showing integer cents `field` as dollars, for list_display and readonly_fields
    (a plain function, not a method: the admin calls it with the object only)."""

    @admin.display(description=description, ordering=field)
    def column(obj):
        return format_cents(getattr(obj, field))

    column.__name__ = f"{field}_display"
    return column


@admin.register(PayPolicy)
class PayPolicyAdmin(HistoryAdmin):
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
        money("tip_cover_cap_cents", "Tip cover cap"),
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


class TipChargeInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = TipCharge
    extra = 0
    readonly_fields = fields = (
        "created_at",
        "kind",
        "status",
        money("amount_cents", "Amount"),
        money("captured_cents", "Captured"),
        money("refunded_cents", "Refunded"),
        "stripe_payment_intent_id",
        "capture_before",
        "failure_reason",
    )


class TipLowerForm(forms.Form):
    new_amount_cents = forms.IntegerField(min_value=0, label="New tip (cents)")
    reason = forms.CharField(
        max_length=255, label="Reason (the driver is told)", widget=forms.Textarea(attrs={"rows": 3})
    )


@admin.register(Tip)
class TipAdmin(ReadOnlyAdminMixin, HistoryAdmin):
    """Tips are written by payments.tips only. Ops lower one with a reason through "Lower this
    tip" (the driver who has the batch is told); customers raise them on the tracking page."""

    list_display = [
        "order",
        "status",
        money("amount_cents", "Amount"),
        money("authorized_cents", "Authorised"),
        money("covered_cents", "Covered by Spark"),
        "adjust_window_closes_at",
        "captured_at",
        "settled_at",
        "created_at",
    ]
    list_select_related = ["order__store"]
    list_filter = ["status", CaptureDueFilter]
    search_fields = ["order__external_id", "stripe_payment_intent_id", "charges__stripe_payment_intent_id"]
    date_hierarchy = "created_at"
    readonly_fields = fields = (
        "order",
        "status",
        money("amount_cents", "Amount"),
        money("authorized_cents", "Authorised"),
        money("covered_cents", "Covered by Spark"),
        "stripe_customer_id",
        "stripe_payment_method_id",
        "stripe_payment_intent_id",
        "capture_before",
        "adjust_window_closes_at",
        "captured_at",
        "settled_at",
        "failure_reason",
        "created_at",
        "lower_link",
    )
    inlines = [TipChargeInline, TipAdjustmentInline]

    @admin.display(description="Lower")
    def lower_link(self, obj):
        if obj.pk is None or obj.settled_at is not None:
            return "–"
        return format_html(
            '<a class="button" href="{}">Lower this tip</a>', reverse("admin:payments_tip_lower", args=[obj.pk])
        )

    def get_urls(self):
        custom = [path("<int:pk>/lower/", self.admin_site.admin_view(self.lower_view), name="payments_tip_lower")]
        return custom + super().get_urls()

    def lower_view(self, request, pk: int):
        """Ops lower a tip with a reason (payments.tips.tip_lower_by_ops)."""
        if not request.user.has_perm("payments.change_tip"):
            raise PermissionDenied
        tip = get_object_or_404(Tip.objects.select_related("order"), pk=pk)
        form = TipLowerForm(request.POST or None, initial={"new_amount_cents": tip.amount_cents})
        status = 200
        if request.method == "POST":
            if form.is_valid():
                try:
                    adjustment = tip_lower_by_ops(
                        tip=tip,
                        new_amount_cents=form.cleaned_data["new_amount_cents"],
                        reason=form.cleaned_data["reason"],
                        actor=request.user,
                    )
                except DomainError as exc:
                    form.add_error(None, exc.message)
                else:
                    told = " The driver is told by email." if adjustment.driver_notified_at else ""
                    self.message_user(
                        request,
                        f"Tip lowered from {format_cents(adjustment.old_cents)} to "
                        f"{format_cents(adjustment.new_cents)}.{told}",
                        messages.SUCCESS,
                    )
                    return redirect("admin:payments_tip_change", tip.pk)
            status = 400
        context = {
            **self.admin_site.each_context(request),
            "title": f"Lower the tip on order {tip.order.external_id}",
            "opts": self.model._meta,
            "tip": tip,
            "current": format_cents(tip.amount_cents),
            "form": form,
        }
        return TemplateResponse(request, "admin/payments/tip/lower.html", context, status=status)


@admin.register(TipCharge)
class TipChargeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each PaymentIntent of a card tip: the intake authorisation and each raise."""

    list_display = [
        "created_at",
        "tip",
        "kind",
        "status",
        money("amount_cents", "Amount"),
        money("captured_cents", "Captured"),
        money("refunded_cents", "Refunded"),
        "stripe_payment_intent_id",
        "capture_before",
    ]
    list_select_related = ["tip"]
    list_filter = ["status", "kind"]
    search_fields = ["stripe_payment_intent_id", "tip__order__external_id"]
    date_hierarchy = "created_at"


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
class PayoutAdmin(ReadOnlyAdminMixin, HistoryAdmin):
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


@admin.register(PayoutAccount)
class PayoutAccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Drivers' Stripe Connect accounts as Stripe last described them (account.updated events,
    and each visit of the driver's Payouts page)."""

    list_display = ["driver", "account_id", "payouts_enabled", "details_submitted", "requirements_due", "updated_at"]
    list_select_related = ["driver__user"]
    list_filter = ["payouts_enabled", "details_submitted"]
    search_fields = ["=account_id", "driver__user__email"]


@admin.register(PayoutRun)
class PayoutRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["week_of", "zone", "started_at", "finished_at", "payouts", money("total_cents", "Total")]
    list_select_related = ["zone"]
    list_filter = ["zone"]
    date_hierarchy = "week_of"


@admin.register(Reconciliation)
class ReconciliationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The daily check that the ledger, our payouts and Stripe agree (payments.reconcile)."""

    list_display = ["ran_at", "ok", "difference_count"]
    list_filter = ["ok"]
    date_hierarchy = "ran_at"
    readonly_fields = fields = ("ran_at", "ok", "differences", "checked")

    @admin.display(description="Differences")
    def difference_count(self, obj):
        return len(obj.differences)


@admin.register(TaxProfile)
class TaxProfileAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Drivers' W-9s: the TIN only masked. The 1099-NEC export (a link on the list, full TINs
    for filing) needs the permission to view tax profiles."""

    list_display = ["driver", "legal_name", "tin_type", "tin", "state", "certified_at"]
    list_select_related = ["driver__user"]
    search_fields = ["legal_name", "business_name", "driver__user__email", "=tin_last4"]
    fields = (
        "driver",
        "legal_name",
        "business_name",
        "tin_type",
        "tin",
        "address_line1",
        "address_line2",
        "city",
        "state",
        "postal_code",
        "certified_at",
        "updated_at",
    )
    readonly_fields = fields
    change_list_template = "admin/payments/taxprofile/change_list.html"

    @admin.display(description="TIN")
    def tin(self, obj):
        return tin_masked(obj)

    def get_urls(self):
        urls = [
            path(
                "1099-nec/",
                self.admin_site.admin_view(self.nec_1099_csv_view),
                name="payments_taxprofile_1099nec",
            )
        ]
        return urls + super().get_urls()

    def nec_1099_csv_view(self, request):
        """GET ?year=2026: the 1099-NEC figures of that tax year as CSV (last year by default)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        raw = request.GET.get("year", "")
        year = int(raw) if raw.isdigit() and len(raw) == 4 else timezone.now().year - 1
        response = HttpResponse(nec_1099_csv(year), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="spark-1099-nec-{year}.csv"'
        response["Cache-Control"] = "no-store"
        return response

    def changelist_view(self, request, extra_context=None):
        year = timezone.now().year
        extra_context = {**(extra_context or {}), "nec_years": [year - 1, year]}
        return super().changelist_view(request, extra_context=extra_context)


# --- Batch pay and adjustments (payments.settlement) -----------------------------------------


class PayAdjustmentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PayAdjustment
    extra = 0
    readonly_fields = fields = (
        "created_at",
        money("amount_cents", "Amount"),
        "reason",
        "note",
        "created_by",
        "ledger_transaction",
        "driver_notified_at",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by", "ledger_transaction")


class PayAdjustmentActionForm(ActionForm):
    """The batch pay changelist's action bar: what "Adjust pay" posts for each selected batch."""

    amount = forms.CharField(required=False, max_length=12, label="Amount in $ (e.g. 2.50 or -1.00)")
    reason = forms.ChoiceField(required=False, choices=[("", "Reason...")] + PayAdjustment.Reason.choices)
    note = forms.CharField(required=False, max_length=255, label="Note to the driver")


def _cents(text: str) -> int | None:
    """ "2.50" -> 250, "-1" -> -100; None unless a number of dollars with at most two decimals."""
    try:
        value = Decimal(text.strip().lstrip("$")) * 100
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or value != value.to_integral_value() or abs(value) > 10**9:
        return None
    return int(value)


@admin.register(BatchPay)
class BatchPayAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What each batch paid (settled once, payments.settlement); changed only by adjustments,
    each with a reason the driver is emailed, never below the offer's snapshot."""

    list_display = [
        "batch",
        "driver",
        money("snapshot_cents", "Snapshot"),
        money("final_cents", "Final"),
        money("wait_cents", "Wait pay"),
        "adjusted_total",
        "created_at",
    ]
    list_select_related = ["batch__store", "driver__user"]
    search_fields = ["=batch__id", "driver__user__email"]
    date_hierarchy = "created_at"
    readonly_fields = fields = (
        "batch",
        "driver",
        "snapshot",
        money("snapshot_cents", "Snapshot (tips aside)"),
        money("base_cents", "Base"),
        money("stops_cents", "Stops"),
        money("miles_cents", "Miles"),
        money("heavy_cents", "Heavy orders"),
        money("incentive_cents", "Incentive"),
        "routed_meters",
        "stops_paid",
        "heavy_paid",
        "wait_minutes",
        money("wait_cents", "Wait pay"),
        money("final_cents", "Final"),
        "adjusted_total",
        "ledger_transaction",
        "created_at",
    )
    inlines = [PayAdjustmentInline]
    action_form = PayAdjustmentActionForm
    actions = ["adjust_pay"]

    def has_adjust_permission(self, request) -> bool:
        return request.user.has_perm("payments.add_payadjustment")

    def get_queryset(self, request):
        # The adjustments' sum as a correlated subquery: one query for the page, not one per row.
        adjustments = PayAdjustment.objects.filter(batch_pay=OuterRef("pk")).order_by().values("batch_pay")
        total = Coalesce(Subquery(adjustments.annotate(s=Sum("amount_cents")).values("s")), 0)
        return super().get_queryset(request).annotate(adjustments_cents=total)

    @admin.display(description="With adjustments")
    def adjusted_total(self, obj):
        adjustments = getattr(obj, "adjustments_cents", None)
        if adjustments is None:
            return format_cents(adjusted_total_cents(batch_pay=obj))
        return format_cents(obj.final_cents + adjustments)

    @admin.action(description="Adjust pay (amount, reason and note above)", permissions=["adjust"])
    def adjust_pay(self, request, queryset):
        amount = _cents(request.POST.get("amount", ""))
        reason, note = request.POST.get("reason", ""), request.POST.get("note", "")
        if amount is None:
            self.message_user(request, "Give the amount in dollars, e.g. 2.50 or -1.00.", level=messages.ERROR)
            return
        done = 0
        for pay in queryset:
            try:
                pay_adjust(batch_pay=pay, amount_cents=amount, reason=reason, note=note, actor=request.user)
            except DomainError as exc:
                self.message_user(request, f"{pay}: {exc.message}", level=messages.ERROR)
                continue
            done += 1
        if done:
            self.message_user(
                request, f"{done} adjusted by {format_cents(amount)}; the driver is emailed.", level=messages.SUCCESS
            )


@admin.register(PayAdjustment)
class PayAdjustmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "batch_pay",
        money("amount_cents", "Amount"),
        "reason",
        "note",
        "created_by",
        "driver_notified_at",
    ]
    list_select_related = ["batch_pay", "created_by"]
    list_filter = ["reason"]
    search_fields = ["=batch_pay__batch__id", "note", "batch_pay__driver__user__email"]
    date_hierarchy = "created_at"
