"""Instant cash-out from the driver app: the fee and what reaches the bank are shown before the
driver confirms (payments.payouts.cashout_quote); confirming asks for exactly that
(cashout_request). The confirmation form carries its own idempotency key, so a double tap, a
reload of the POST or a second tab sends one cash-out, not two."""

import uuid

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from driver_app.page import driver_page, page_context
from drivers.models import Driver
from payments import driver_earnings
from payments.payouts import PayoutRefused, cashout_quote, cashout_request
from spark.money import format_cents


def refusal_text(code: str, quote) -> str:
    """Why a cash-out cannot happen now, in the driver's language (payments.payouts says it in
    English for logs and the API)."""
    texts = {
        "not_enabled": _("Set up payouts first: add your bank account on the Payouts page."),
        "empty": _("Your balance is empty: there is nothing to cash out."),
        "daily_limit": _("You reached today's cash-out limit."),
        "below_minimum": _("A cash-out is at least %(min)s after the %(fee)s fee.")
        % {"min": format_cents(quote.min_cents), "fee": format_cents(quote.fee_cents)},
    }
    return texts.get(code, _("A cash-out is not possible right now."))


@require_http_methods(["GET", "POST"])
@driver_page
def cashout(request, driver: Driver):
    if request.method == "POST":
        key = (request.POST.get("key") or "")[:64]
        try:
            payout = cashout_request(driver, key)
        except PayoutRefused as exc:
            quote = cashout_quote(driver)
            messages.error(
                request, refusal_text(exc.code, quote) if exc.code != "bad_key" else _("Reload the page and try again.")
            )
            return redirect("driver_app:cashout")
        amounts = {"amount": format_cents(payout.amount_cents), "fee": format_cents(payout.fee_cents)}
        if driver_earnings.test_payments():
            done = _("Test cash-out of %(amount)s recorded (fee %(fee)s): no real money moves.") % amounts
        else:
            done = _("Cash-out of %(amount)s is on its way to your bank (fee %(fee)s).") % amounts
        messages.success(request, done)
        return redirect("driver_app:earnings-payouts")  # the new payout's row, its fee and status
    quote = cashout_quote(driver)
    context = page_context(
        request,
        driver,
        "payouts",
        quote=quote,
        refusal=refusal_text(quote.reason_code, quote) if not quote.allowed else "",
        key=uuid.uuid4().hex,
        test_payments=driver_earnings.test_payments(),
    )
    return render(request, "driver/cashout.html", context)
