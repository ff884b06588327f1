"""The applicant's status page after submitting: where screening stands, and disputing a
pre-adverse finding."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from driver_app.forms import (
    DisputeForm,
)
from driver_app.onboarding_wizard import DRIVER_APP_URL, applicant_of, checklist_rows
from drivers import onboarding_services as services
from drivers.models import Driver
from payments.contractor.selectors import screening_case_for_driver
from spark.errors import DomainError


def _driver_app_url(name: str) -> str:
    """A page of the driver app (driver_app/urls.py), or its home if that page is not there."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return DRIVER_APP_URL


def _screening_context(driver: Driver | None) -> dict:
    """The screening case as the status page shows it (contractor module)."""
    if driver is None or driver.status == Driver.Status.APPLICANT:
        return {}
    case = screening_case_for_driver(driver=driver)
    if case is None:
        return {}
    context: dict = {"case": case, "case_status": case.status}
    if case.status == "pending_documents":
        event = case.events.filter(to_status="pending_documents").order_by("-created_at", "-pk").first()
        context["documents_note"] = event.reason if event else ""
    if case.status == "pre_adverse_notice":
        from django.utils import timezone

        context["can_dispute"] = bool(case.dispute_deadline_at and timezone.now() < case.dispute_deadline_at)
    return context


def _render_status(request, *, dispute_form=None, status: int = 200):

    driver = applicant_of(request.user)
    checklist = services.application_checklist(user=request.user, driver=driver)
    reason = _("no reason recorded")
    if driver is not None and driver.reason_code:
        reason = dict(Driver.ReasonCode.choices).get(driver.reason_code, driver.reason_code)
    documents_problem = next((i.problem for i in checklist if i.problem), "")
    state = driver.status if driver else "not_started"
    context = {
        "driver": driver,
        "state": state,
        "items": checklist_rows(checklist),
        "editable": state in ("not_started", Driver.Status.APPLICANT),
        "missing_count": sum(1 for i in checklist if not i.done),
        "reason": reason,
        "documents_problem": documents_problem,
        "driver_app_url": DRIVER_APP_URL,
        "standing_url": _driver_app_url("driver_app:standing"),
        "next_url": reverse("onboarding:start"),
        "dispute_form": dispute_form or DisputeForm(),
        **_screening_context(driver),
    }
    return render(request, "driver/onboarding/status.html", context, status=status)


@login_required
@require_http_methods(["GET"])
def status(request):
    return _render_status(request)


@login_required
@require_http_methods(["POST"])
def dispute(request):
    """The driver disputes the background check report during the waiting period after the
    pre-adverse notice (payments.contractor.services.screening_dispute)."""
    from payments.contractor.services import screening_dispute

    driver = applicant_of(request.user)
    case = screening_case_for_driver(driver=driver) if driver else None
    if driver is None or case is None:
        return redirect("onboarding:status")
    form = DisputeForm(request.POST)
    if not form.is_valid():
        return _render_status(request, dispute_form=form, status=400)
    try:
        screening_dispute(case=case, driver=driver, text=form.cleaned_data["text"])
    except DomainError as exc:
        if "text" in exc.fields:
            form.add_domain_error(exc)
            return _render_status(request, dispute_form=form, status=exc.status_code)
        messages.error(request, exc.message)  # the window closed, or nothing to dispute any more
        return redirect("onboarding:status")
    messages.success(request, _("Thank you. We received your dispute and will review it before any decision."))
    return redirect("onboarding:status")
