"""The driver's earnings in the API: the same facts as the earnings screens (driver_app.earnings),
read through payments.driver_earnings.

Any driver may read their own money, whatever their status (a suspended driver is still owed
what they earned). Another driver's batch is a 404. Amounts are integer cents; `test_payments`
is true when no real money moves (the sandbox payment backend).
"""

from dataclasses import asdict

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from driver_app.earnings import statement_csv, statement_filename
from payments import driver_earnings
from payments.payouts import cashout_quote, cashout_request
from spark.api.schema import error_responses
from spark.roles import IsDriver

# --- Payloads -------------------------------------------------------------------------------


class OfferedPaySerializer(serializers.Serializer):
    base_cents = serializers.IntegerField()
    stops_cents = serializers.IntegerField()
    miles_cents = serializers.IntegerField()
    heavy_cents = serializers.IntegerField()
    incentive_cents = serializers.IntegerField()
    tip_cents = serializers.IntegerField(help_text="The customers' tips the offer showed.")
    total_cents = serializers.IntegerField(help_text="What the offer showed, tips included.")
    guaranteed_cents = serializers.IntegerField(help_text="The least the batch pays: the total without its tips.")
    routed_meters = serializers.IntegerField()


class SettledPaySerializer(serializers.Serializer):
    base_cents = serializers.IntegerField()
    stops_cents = serializers.IntegerField()
    stops_paid = serializers.IntegerField(help_text="Stops driven to: delivered, failed and returned.")
    miles_cents = serializers.IntegerField()
    routed_meters = serializers.IntegerField(help_text="As driven: store, every stop driven to, back.")
    heavy_cents = serializers.IntegerField()
    heavy_paid = serializers.IntegerField()
    incentive_cents = serializers.IntegerField()
    wait_minutes = serializers.IntegerField(help_text="Whole minutes at the store past the zone's grace.")
    wait_cents = serializers.IntegerField()
    guarantee_top_up_cents = serializers.IntegerField(
        help_text="What the offer's guarantee added to the parts above; the parts and this sum to final_cents."
    )
    snapshot_cents = serializers.IntegerField(help_text="The offer's guarantee (its total without tips).")
    final_cents = serializers.IntegerField(help_text="What the batch paid, adjustments and tips aside.")
    settled_at = serializers.DateTimeField()


class AdjustmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    amount_cents = serializers.IntegerField(help_text="Positive: added to the pay; negative: taken off.")
    reason = serializers.ChoiceField(choices=["route", "wait", "stops", "correction", "goodwill"])
    note = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class TipSerializer(serializers.Serializer):
    order_id = serializers.IntegerField()
    state = serializers.ChoiceField(
        choices=list(driver_earnings.TipState.ALL),
        help_text="credited: in your balance; waiting: credited when its window closes; canceled: ended at zero.",
    )
    status = serializers.CharField(help_text="The tip's own status (authorisation, capture).")
    amount_cents = serializers.IntegerField(help_text="The tip as it stands.")
    credited_cents = serializers.IntegerField(help_text="What was credited to you for it; 0 until credited.")
    window_closes_at = serializers.DateTimeField(allow_null=True)


class BatchEarningsSerializer(serializers.Serializer):
    batch_id = serializers.IntegerField()
    store_name = serializers.CharField()
    store_number = serializers.CharField()
    status = serializers.ChoiceField(choices=list(driver_earnings.EARNING_BATCH_STATUSES))
    closed_at = serializers.DateTimeField(allow_null=True)
    settled = serializers.BooleanField(help_text="False while the pay is being worked out.")
    offered = OfferedPaySerializer(allow_null=True, help_text="Null when the batch was given without an offer.")
    paid = SettledPaySerializer(allow_null=True, help_text="Null until the batch settled.")
    adjustments = AdjustmentSerializer(many=True)
    adjustments_cents = serializers.IntegerField()
    pay_cents = serializers.IntegerField(
        allow_null=True, help_text="final_cents plus the adjustments; null until settled."
    )
    tips = TipSerializer(many=True)
    tips_credited_cents = serializers.IntegerField()
    tips_pending_cents = serializers.IntegerField()


def batch_payload(item: driver_earnings.BatchEarnings) -> dict:
    data = asdict(item)
    data.update(
        settled=item.settled,
        adjustments_cents=item.adjustments_cents,
        pay_cents=item.pay_cents,
        tips_credited_cents=item.tips_credited_cents,
        tips_pending_cents=item.tips_pending_cents,
        tips=[{**asdict(t), "state": t.state} for t in item.tips],
    )
    if item.offered is not None:
        data["offered"]["guaranteed_cents"] = item.offered.guaranteed_cents
    if item.paid is not None:
        data["paid"]["guarantee_top_up_cents"] = item.paid.guarantee_top_up_cents
    return BatchEarningsSerializer(data).data


class PendingBatchSerializer(serializers.Serializer):
    batch_id = serializers.IntegerField()
    store_name = serializers.CharField()
    status = serializers.ChoiceField(
        choices=list(driver_earnings.EARNING_BATCH_STATUSES),
        help_text="returning: worked out once the store checks the returns in.",
    )
    closed_at = serializers.DateTimeField(allow_null=True)
    guaranteed_cents = serializers.IntegerField(allow_null=True, help_text="The least it pays, when it had an offer.")


class PendingTipSerializer(serializers.Serializer):
    order_id = serializers.IntegerField()
    batch_id = serializers.IntegerField()
    amount_cents = serializers.IntegerField()
    window_closes_at = serializers.DateTimeField(allow_null=True, help_text="Credited to the balance after this.")


class PendingSerializer(serializers.Serializer):
    batches = PendingBatchSerializer(many=True, help_text="Ended batches whose pay is being worked out.")
    tips = PendingTipSerializer(many=True, help_text="Tips authorised and not credited yet.")
    tips_cents = serializers.IntegerField()


class EarningsSerializer(serializers.Serializer):
    balance_cents = serializers.IntegerField(help_text="What Spark owes you now (the ledger).")
    earnings_cents = serializers.IntegerField(help_text="Of the balance: pay.")
    tips_cents = serializers.IntegerField(help_text="Of the balance: tips.")
    pending = PendingSerializer()
    test_payments = serializers.BooleanField(help_text="True when no real money moves (test payments).")


class StatementLineSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    category = serializers.ChoiceField(choices=list(driver_earnings.StatementCategory.ALL))
    account = serializers.ChoiceField(choices=["driver_payable", "tips_payable"])
    amount_cents = serializers.IntegerField()
    batch_id = serializers.IntegerField(allow_null=True)
    store_name = serializers.CharField(allow_blank=True)
    transaction_id = serializers.IntegerField()


class StatementSerializer(serializers.Serializer):
    week_start = serializers.DateField(help_text="The Monday.")
    week_end = serializers.DateField(help_text="The Sunday.")
    timezone = serializers.CharField(help_text="The driver's zone timezone the week is counted in.")
    opening_balance_cents = serializers.IntegerField()
    closing_balance_cents = serializers.IntegerField()
    net_cents = serializers.IntegerField(help_text="The sum of the lines: closing minus opening balance.")
    earned_cents = serializers.IntegerField(help_text="Pay, adjustments and tips of the week.")
    totals = serializers.DictField(child=serializers.IntegerField(), help_text="Cents per category.")
    lines = StatementLineSerializer(many=True)
    test_payments = serializers.BooleanField()


class PayoutSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["weekly", "instant"])
    status = serializers.ChoiceField(choices=["pending", "paid", "failed"])
    amount_cents = serializers.IntegerField()
    fee_cents = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    paid_at = serializers.DateTimeField(allow_null=True)
    failure_reason = serializers.CharField(allow_blank=True)


# --- Views ----------------------------------------------------------------------------------


class EarningsAPIView(GenericAPIView):
    permission_classes = [IsDriver]


class EarningsView(EarningsAPIView):
    """My balance, and what is on its way into it."""

    serializer_class = EarningsSerializer

    @extend_schema(responses=EarningsSerializer)
    def get(self, request):
        summary = driver_earnings.earnings_summary(driver=request.driver)
        return Response(
            EarningsSerializer(
                {
                    "balance_cents": summary.balance_cents,
                    "earnings_cents": summary.earnings_cents,
                    "tips_cents": summary.tips_cents,
                    "pending": {
                        "batches": [asdict(b) for b in summary.pending_batches],
                        "tips": [asdict(t) for t in summary.pending_tips],
                        "tips_cents": summary.pending_tips_cents,
                    },
                    "test_payments": driver_earnings.test_payments(),
                }
            ).data
        )


class EarningsBatchListView(EarningsAPIView):
    """My completed and returned batches, newest first, each with what its offer showed, what it
    paid, its adjustments and its orders' tips (paginated: ?limit=&offset=)."""

    serializer_class = BatchEarningsSerializer

    @extend_schema(responses=BatchEarningsSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(driver_earnings.driver_batches(driver=request.driver))
        items = driver_earnings.batch_earnings_for(driver=request.driver, batches=list(page or []))
        return self.get_paginated_response([batch_payload(item) for item in items])


class EarningsBatchDetailView(EarningsAPIView):
    """One of my batches, as in the list."""

    serializer_class = BatchEarningsSerializer

    @extend_schema(responses=BatchEarningsSerializer)
    def get(self, request, batch_id: int):
        item = driver_earnings.batch_earnings(driver=request.driver, batch_id=batch_id)
        if item is None:
            raise exceptions.NotFound("No such batch of yours.")
        return Response(batch_payload(item))


class CSVRenderer(BaseRenderer):
    """Only for content negotiation (?format=csv): the view writes the CSV itself, and errors are
    always JSON (StatementView.finalize_response)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        raise NotImplementedError("StatementView answers CSV with its own HttpResponse")


class StatementNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        wanted = request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
        if wanted is not None and wanted not in ("json", "csv"):
            # DRF would answer 404; an unknown format is bad input.
            raise exceptions.ValidationError({"format": ["Ask for json or csv."]})
        return super().select_renderer(request, renderers, format_suffix)


class StatementView(EarningsAPIView):
    """My weekly statement: every entry on my earnings and tips in the week (Monday to Sunday in
    my zone's time) that starts on `week`, with the balance before and after. `?format=csv` gives
    the lines as CSV (amount_cents sums to net_cents)."""

    serializer_class = StatementSerializer
    renderer_classes = [JSONRenderer, CSVRenderer]
    content_negotiation_class = StatementNegotiation

    def finalize_response(self, request, response, *args, **kwargs):
        # Only the statement itself is CSV: an error (the JSON error body) or an OPTIONS answer
        # is JSON, also when the CSV was asked for.
        if isinstance(response, Response) and getattr(request, "accepted_renderer", None) is not None:
            if request.accepted_renderer.format == "csv":
                request.accepted_renderer = JSONRenderer()
                request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "week",
                OpenApiTypes.DATE,
                OpenApiParameter.PATH,
                description="The Monday the week starts on (YYYY-MM-DD).",
            ),
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                enum=["json", "csv"],
                description="json (default) or csv.",
            ),
        ],
        responses={
            (200, "application/json"): StatementSerializer,
            (200, "text/csv"): OpenApiResponse(response=OpenApiTypes.STR, description="The lines as CSV."),
            # errors are JSON whatever the format asked for (finalize_response)
            (400, "application/json"): error_responses(400)[400],
        },
    )
    def get(self, request, week: str):
        try:
            statement = driver_earnings.weekly_statement(driver=request.driver, week=driver_earnings.week_start(week))
        except driver_earnings.BadWeek as exc:
            raise exceptions.ValidationError({"week": [str(exc)]}) from None
        if request.accepted_renderer.format == "csv":
            return statement_csv(statement, filename=statement_filename(statement))
        data = asdict(statement)
        data.update(
            closing_balance_cents=statement.closing_balance_cents,
            net_cents=statement.net_cents,
            earned_cents=statement.earned_cents,
            test_payments=driver_earnings.test_payments(),
        )
        return Response(StatementSerializer(data).data)


class PayoutListView(EarningsAPIView):
    """My payouts, newest first (paginated: ?limit=&offset=)."""

    serializer_class = PayoutSerializer

    @extend_schema(responses=PayoutSerializer(many=True))
    def get(self, request):
        page = self.paginate_queryset(driver_earnings.driver_payouts(driver=request.driver))
        return self.get_paginated_response(
            [PayoutSerializer(asdict(p)).data for p in driver_earnings.payout_lines(page or [])]
        )


class CashoutQuoteSerializer(serializers.Serializer):
    available_cents = serializers.IntegerField(help_text="The balance now.")
    fee_cents = serializers.IntegerField(help_text="Taken from the balance on top of the payout.")
    payout_cents = serializers.IntegerField(help_text="What reaches the bank; 0 when not allowed.")
    min_cents = serializers.IntegerField()
    remaining_today_cents = serializers.IntegerField(help_text="What is left of today's limit (zone time).")
    allowed = serializers.BooleanField()
    reason = serializers.CharField(allow_blank=True, help_text="Why not, in words; empty when allowed.")
    reason_code = serializers.ChoiceField(choices=["", "not_enabled", "empty", "daily_limit", "below_minimum"])
    test_payments = serializers.BooleanField()


class CashoutRequestSerializer(serializers.Serializer):
    idempotency_key = serializers.CharField(
        min_length=1, max_length=64, help_text="One per confirmation: sending it again returns the same payout."
    )


class CashoutView(EarningsAPIView):
    """Instant cash-out: GET says what it would do now (fee, amount, limits); POST asks for
    exactly that. Refused with 409 `payout_refused` (reason in `code` of the error: below the
    minimum, past the daily limit, nothing to pay, payouts not set up); nothing changes."""

    serializer_class = CashoutRequestSerializer

    @extend_schema(responses=CashoutQuoteSerializer)
    def get(self, request):
        quote = cashout_quote(request.driver)
        return Response(
            CashoutQuoteSerializer({**asdict(quote), "test_payments": driver_earnings.test_payments()}).data
        )

    @extend_schema(request=CashoutRequestSerializer, responses={201: PayoutSerializer, **error_responses(400, 409)})
    def post(self, request):
        data = CashoutRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        payout = cashout_request(request.driver, data.validated_data["idempotency_key"])
        [line] = driver_earnings.payout_lines([payout])
        return Response(PayoutSerializer(asdict(line)).data, status=201)
