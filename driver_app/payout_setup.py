"""The driver's Payouts page: whether Stripe can pay them (payouts enabled, what Stripe still
needs) and a button to Stripe's onboarding, where they add their bank account. With the sandbox
backend there is nothing to set up: the page says payments are test payments."""

import logging

import stripe
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from driver_app.page import driver_page, page_context
from drivers.models import Driver
from payments.contractor import payout_setup
from spark.errors import DomainError

logger = logging.getLogger(__name__)

# Stripe's names of what it still needs, in words a driver knows; others are shown as "details".
REQUIREMENT_LABELS = {
    "external_account": gettext_lazy("a bank account or debit card"),
    "tos_acceptance.date": gettext_lazy("accepting Stripe's terms"),
    "tos_acceptance.ip": gettext_lazy("accepting Stripe's terms"),
    "individual.ssn_last_4": gettext_lazy("the last 4 digits of your SSN"),
    "individual.id_number": gettext_lazy("your SSN"),
    "individual.dob.day": gettext_lazy("your date of birth"),
    "individual.address.line1": gettext_lazy("your address"),
    "individual.verification.document": gettext_lazy("a photo of your ID"),
}


def _requirement_labels(due: list[str]) -> list[str]:
    labels: list[str] = []
    for item in due:
        label = str(REQUIREMENT_LABELS.get(item, _("other details Stripe asks for")))
        if label not in labels:
            labels.append(label)
    return labels


@require_GET
@driver_page
def payouts(request, driver: Driver):
    """`?return=1`: back from Stripe's pages, so ask Stripe for the account's status now."""
    if request.GET.get("return") or (driver.contractor_id and not hasattr(driver, "payout_account")):
        try:
            payout_setup.payout_account_refresh(driver=driver)
        except stripe.StripeError:
            logger.warning("Stripe account status of driver %s not available", driver.pk, exc_info=True)
            messages.warning(request, _("Stripe is not answering right now; the status below may be out of date."))
    status = payout_setup.payout_setup_status(driver=driver)
    context = page_context(
        request, driver, "payouts", setup=status, requirements=_requirement_labels(status.requirements_due)
    )
    return render(request, "driver/payouts.html", context)


@require_GET
@driver_page
def payouts_setup(request, driver: Driver):
    """Make a fresh onboarding link (they expire within minutes) and send the driver to Stripe.
    Also Stripe's refresh_url: an expired link comes back here for a new one."""
    page = request.build_absolute_uri(reverse("driver_app:payouts"))
    try:
        url = payout_setup.payout_setup_link(
            driver=driver,
            return_url=f"{page}?return=1",
            refresh_url=request.build_absolute_uri(reverse("driver_app:payouts-setup")),
        )
    except DomainError as exc:
        if exc.code == "no_account":
            messages.error(request, _("Your payout account is created once your application is submitted."))
        else:
            messages.info(request, _("Test payments: there is no bank account to set up."))
        return redirect("driver_app:payouts")
    except stripe.StripeError:
        logger.warning("Stripe account link for driver %s failed", driver.pk, exc_info=True)
        messages.error(request, _("Stripe is not answering right now; try again in a minute."))
        return redirect("driver_app:payouts")
    return redirect(url)
