"""The driver's money screens: balance and what is pending, each batch's pay beside what its
offer showed, weekly statements (HTML and CSV) and payout history. Read through
payments.driver_earnings; nothing here writes. Every screen says "test payments" in the sandbox.
The earnings home links to the cash-out screen (driver_app.cashout) and the payout set-up
(driver_app.payout_setup)."""

import csv
import zoneinfo
from io import StringIO

from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from driver_app.page import driver_page, page_context
from drivers.models import Driver
from payments import driver_earnings
from spark import geo
from spark.money import format_cents

BATCHES_PER_PAGE = 20
PAYOUTS_PER_PAGE = 50

TIP_STATE_LABELS = {
    driver_earnings.TipState.WAITING: gettext_lazy("Waiting for the tip window to close"),
    driver_earnings.TipState.CREDITED: gettext_lazy("Credited"),
    driver_earnings.TipState.CANCELED: gettext_lazy("Cancelled"),
}

ADJUSTMENT_REASON_LABELS = {
    "route": gettext_lazy("Route was longer than measured"),
    "wait": gettext_lazy("Wait at the store not counted"),
    "stops": gettext_lazy("Stop or heavy order not counted"),
    "correction": gettext_lazy("Correction of an earlier adjustment"),
    "goodwill": gettext_lazy("Goodwill"),
}

CATEGORY_LABELS = {
    driver_earnings.StatementCategory.BATCH_PAY: gettext_lazy("Batch pay"),
    driver_earnings.StatementCategory.TRIP_PAY: gettext_lazy("Trip pay (batch taken back)"),
    driver_earnings.StatementCategory.ADJUSTMENT: gettext_lazy("Pay adjustment"),
    driver_earnings.StatementCategory.TIP: gettext_lazy("Customer tip"),
    driver_earnings.StatementCategory.PAYOUT: gettext_lazy("Payout"),
    driver_earnings.StatementCategory.FEE: gettext_lazy("Cash-out fee"),
    driver_earnings.StatementCategory.OTHER: gettext_lazy("Other"),
}

PAYOUT_KIND_LABELS = {"weekly": gettext_lazy("Weekly payout"), "instant": gettext_lazy("Instant cash-out")}
PAYOUT_STATUS_LABELS = {
    "pending": gettext_lazy("On its way"),
    "paid": gettext_lazy("Paid"),
    "failed": gettext_lazy("Failed: the money is back in your balance"),
}

BATCH_STATUS_LABELS = {
    "completed": gettext_lazy("Completed"),
    "returned": gettext_lazy("Ended with returns"),
    "returning": gettext_lazy("Bringing returns back"),
}


def money_context(request, driver: Driver, tab: str = "earnings", **extra) -> dict:
    return page_context(request, driver, tab, test_payments=driver_earnings.test_payments(), **extra)


def _batch_rows(items: list[driver_earnings.BatchEarnings]) -> list[dict]:
    return [
        {
            "e": item,
            "status_label": BATCH_STATUS_LABELS.get(item.status, item.status),
        }
        for item in items
    ]


@require_GET
@driver_page
def earnings_home(request, driver: Driver):
    summary = driver_earnings.earnings_summary(driver=driver)
    page = Paginator(driver_earnings.driver_batches(driver=driver), BATCHES_PER_PAGE).get_page(request.GET.get("page"))
    context = money_context(
        request,
        driver,
        summary=summary,
        batches=_batch_rows(driver_earnings.batch_earnings_for(driver=driver, batches=list(page.object_list))),
        page=page,
        weeks=driver_earnings.statement_weeks(driver=driver, now=timezone.now()),
    )
    return render(request, "driver/earnings.html", context)


@require_GET
@driver_page
def earnings_batch(request, driver: Driver, batch_id: int):
    item = driver_earnings.batch_earnings(driver=driver, batch_id=batch_id)
    if item is None:
        raise Http404("No such batch of yours.")
    context = money_context(
        request,
        driver,
        e=item,
        status_label=BATCH_STATUS_LABELS.get(item.status, item.status),
        paid_miles=geo.meters_to_miles(item.paid.routed_meters) if item.paid else None,
        offered_miles=geo.meters_to_miles(item.offered.routed_meters) if item.offered else None,
        tips=[{"t": t, "status_label": TIP_STATE_LABELS[t.state]} for t in item.tips],
        adjustments=[
            {"a": a, "reason_label": ADJUSTMENT_REASON_LABELS.get(a.reason, a.reason)} for a in item.adjustments
        ],
    )
    return render(request, "driver/earnings_batch.html", context)


def _statement(driver: Driver, week: str) -> driver_earnings.WeeklyStatement:
    return driver_earnings.weekly_statement(driver=driver, week=driver_earnings.week_start(week))


@require_GET
@driver_page
def earnings_statement(request, driver: Driver, week: str):
    try:
        statement = _statement(driver, week)
    except driver_earnings.BadWeek as exc:
        context = money_context(request, driver, error=str(exc))
        return render(request, "driver/earnings_statement.html", context, status=400)
    context = money_context(
        request,
        driver,
        statement=statement,
        lines=[{"line": line, "label": CATEGORY_LABELS[line.category]} for line in statement.lines],
        totals=[
            {"label": CATEGORY_LABELS[category], "cents": cents}
            for category, cents in statement.totals.items()
            if cents
        ],
    )
    return render(request, "driver/earnings_statement.html", context)


CSV_COLUMNS = ["date", "time", "type", "account", "batch", "store", "amount_cents", "amount"]


def statement_csv(statement: driver_earnings.WeeklyStatement, *, filename: str) -> HttpResponse:
    """The statement's lines, one a row, in the driver's zone time; amount_cents sums to the
    week's net (closing minus opening balance). Shared by the app and the API."""
    tz = zoneinfo.ZoneInfo(statement.timezone)
    out = StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for line in statement.lines:
        local = line.at.astimezone(tz)
        writer.writerow(
            [
                local.date().isoformat(),
                local.strftime("%H:%M"),
                line.category,
                "tips" if line.account == "tips_payable" else "earnings",
                line.batch_id or "",
                _csv_safe(line.store_name),
                line.amount_cents,
                format_cents(line.amount_cents),
            ]
        )
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _csv_safe(text: str) -> str:
    """A spreadsheet runs a cell that starts with = + - @ as a formula: a store name never does."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def statement_filename(statement: driver_earnings.WeeklyStatement) -> str:
    return f"spark-statement-{statement.week_start.isoformat()}.csv"


@require_GET
@driver_page
def earnings_statement_csv(request, driver: Driver, week: str):
    try:
        statement = _statement(driver, week)
    except driver_earnings.BadWeek as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    return statement_csv(statement, filename=statement_filename(statement))


@require_GET
@driver_page
def earnings_payouts(request, driver: Driver):
    page = Paginator(driver_earnings.driver_payouts(driver=driver), PAYOUTS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [
        {
            "p": p,
            "kind_label": PAYOUT_KIND_LABELS.get(p.kind, p.kind),
            "status_label": PAYOUT_STATUS_LABELS.get(p.status, p.status),
        }
        for p in driver_earnings.payout_lines(page.object_list)
    ]
    return render(request, "driver/earnings_payouts.html", money_context(request, driver, payouts=rows, page=page))


def last_batch_pay(driver: Driver, batch) -> dict | None:
    """For the batch screen's "what became of the batch" card: what a completed or returned
    batch paid once settled, or that it is being worked out."""
    if batch is None or batch.status not in driver_earnings.PAID_BATCH_STATUSES:
        return None
    item = driver_earnings.batch_earnings(driver=driver, batch_id=batch.pk)
    if item is None:
        return None
    return {"e": item, "test_payments": driver_earnings.test_payments()}
