"""The driver's Payouts page: whether Stripe can pay them (payouts enabled, what Stripe still
needs) and a button to Stripe's onboarding, where they add their bank account. With the sandbox
backend there is nothing to set up: the page says payments are test payments."""

import logging

import stripe
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from driver_app.page import driver_page, page_context
from drivers.models import Driver
from payments.contractor import payout_setup, tax
from payments.models import TaxProfile
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
    profile = TaxProfile.objects.filter(driver=driver).first()
    context = page_context(
        request,
        driver,
        "payouts",
        setup=status,
        requirements=_requirement_labels(status.requirements_due),
        tax_profile=profile,
        tin_masked=tax.tin_masked(profile),
        nec_years=tax.driver_1099_years(driver=driver),
    )
    return render(request, "driver/payouts.html", context)


@require_GET
@driver_page
def nec_1099(request, driver: Driver, year: int):
    """The driver's 1099-NEC figures of a tax year as CSV (404 for a year with none)."""
    body = tax.driver_1099_csv(driver=driver, year=year)
    if body is None:
        raise Http404("No 1099-NEC for this year.")
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="spark-1099-nec-{year}.csv"'
    return response


def _tax_field_errors(fields: dict) -> dict:
    words = {
        "legal_name": _("Your legal name, as on your tax return."),
        "business_name": _("At most 200 characters."),
        "tin_type": _("Choose SSN or EIN."),
        "tin": _("Enter a valid 9-digit SSN or EIN."),
        "address_line1": _("Your street address."),
        "city": _("Your city."),
        "state": _("A two-letter US state, like TN."),
        "postal_code": _("A 5-digit ZIP code."),
        "certify": _("Tick the certification to save your W-9."),
    }
    return {name: words.get(name, message) for name, message in fields.items()}


TAX_FIELDS = (
    "legal_name",
    "business_name",
    "tin_type",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
)


@require_http_methods(["GET", "POST"])
@driver_page
def tax_details(request, driver: Driver):
    """The driver's W-9: legal name, TIN (shown masked once saved; never sent back to the
    page), address, certification."""
    profile = TaxProfile.objects.filter(driver=driver).first()
    errors: dict = {}
    if request.method == "POST":
        posted = {name: request.POST.get(name, "")[:300] for name in TAX_FIELDS}
        try:
            tax.tax_details_save(
                driver=driver,
                tin=request.POST.get("tin", "")[:20],
                certify=request.POST.get("certify") == "on",
                **posted,
            )
        except DomainError as exc:
            errors = _tax_field_errors(exc.fields)
            values = posted
        else:
            messages.success(request, _("Your tax details are saved."))
            return redirect("driver_app:payouts")
    else:
        values = {name: getattr(profile, name, "") if profile else "" for name in TAX_FIELDS}
        values["tin_type"] = values["tin_type"] or TaxProfile.TinType.SSN
    context = page_context(
        request, driver, "payouts", values=values, errors=errors, profile=profile, tin_masked=tax.tin_masked(profile)
    )
    return render(request, "driver/tax_details.html", context, status=400 if errors else 200)


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
