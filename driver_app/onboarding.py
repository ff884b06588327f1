"""The driver sign-up funnel (phone first, plain server-rendered pages).

/driver/join/              landing: the job, how pay works, sign up (allauth) or log in
/driver/join/start/        sends a logged-in person to their next unfinished step
/driver/join/profile/      1 name, mobile number, home zone, photo (creates the applicant profile)
/driver/join/phone/        2 the texted 6-digit code
/driver/join/vehicle/      3 vehicle
/driver/join/documents/    4 driver's license and insurance (also where active drivers renew them)
/driver/join/background-check/            5a the disclosure, on a page of its own
/driver/join/background-check/authorize/  5b consent and typed signature
/driver/join/review/       6 everything at a glance, submit for screening
/driver/join/status/       where the application stands and what is missing

Every save is one call into drivers.onboarding_services, or payments.contractor.onboarding
for the documents and submitting the application. A refused form is shown again with
a message on each field, with status 400 (429 for too many codes), and nothing is saved.
Once the application is submitted (or the driver is active) the steps show the status page
instead, except the documents step, which active and suspended drivers use to renew.
"""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from driver_app.forms import (
    ConsentForm,
    DisputeForm,
    DocumentsForm,
    PhoneCodeForm,
    ProfileForm,
    SubmitForm,
    VehicleForm,
)
from drivers import onboarding_services as services
from drivers.models import Driver
from payments.contractor import onboarding as contractor_onboarding
from payments.contractor.selectors import screening_case_for_driver
from spark.errors import DomainError
from spark.httpkit import client_ip

SMS_TICKET_SESSION_KEY = "onboarding_sms_ticket"
DRIVER_APP_URL = "/driver/"

# (key, title, URL name) in wizard order.
STEPS = [
    ("profile", gettext_lazy("Profile"), "onboarding:profile"),
    ("phone", gettext_lazy("Phone"), "onboarding:phone"),
    ("vehicle", gettext_lazy("Vehicle"), "onboarding:vehicle"),
    ("documents", gettext_lazy("License & insurance"), "onboarding:documents"),
    ("consent", gettext_lazy("Background check"), "onboarding:disclosure"),
    ("review", gettext_lazy("Review & submit"), "onboarding:review"),
]
STEP_KEYS = [key for key, _title, _url in STEPS]
# Which checklist items each step completes.
STEP_ITEMS = {
    "profile": ("profile",),
    "phone": ("phone",),
    "vehicle": ("vehicle",),
    "documents": ("license", "insurance"),
    "consent": ("consent",),
}


def _driver_of(user) -> Driver | None:
    return Driver.objects.filter(user=user).select_related("user", "home_zone").first()


def _steps_done(checklist) -> dict[str, bool]:
    done = {item.key: item.done for item in checklist}
    result = {step: all(done[i] for i in items) for step, items in STEP_ITEMS.items()}
    result["review"] = False
    return result


def _next_step_url(request, driver: Driver | None, *, after: str | None = None) -> str:
    """The first unfinished step after `after` (wrapping round), else the review."""
    checklist = services.application_checklist(user=request.user, driver=driver)
    done = _steps_done(checklist)
    order = STEP_KEYS[:-1]
    if after in order:
        i = order.index(after) + 1
        order = order[i:] + order[:i]
    for key in order:
        if not done[key]:
            return reverse(dict((k, u) for k, _t, u in STEPS)[key])
    return reverse("onboarding:review")


def _progress(request, driver: Driver | None, current: str) -> dict:
    checklist = services.application_checklist(user=request.user, driver=driver)
    done = _steps_done(checklist)
    steps = [
        {"key": key, "title": title, "url": reverse(url), "done": done[key], "current": key == current, "number": n}
        for n, (key, title, url) in enumerate(STEPS, start=1)
    ]
    number = STEP_KEYS.index(current) + 1
    return {
        "steps": steps,
        "step_number": number,
        "step_count": len(STEPS),
        "step_title": STEPS[number - 1][1],
        "items": _checklist_rows(checklist),
    }


def _checklist_rows(checklist) -> list[dict]:
    """Checklist items with the URL of the step that completes each."""
    step_urls = {key: reverse(url) for key, _t, url in STEPS}
    return [{"item": item, "url": step_urls.get(item.step, "")} for item in checklist]


def wizard_step(step: str):
    """Login required; the profile must exist for every step after it; once the application
    is no longer an applicant's, the status page is shown instead (renewals excepted)."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            driver = _driver_of(request.user)
            if driver is None and step != "profile":
                messages.info(request, _("Start with your profile."))
                return redirect("onboarding:profile")
            if driver is not None and driver.status != Driver.Status.APPLICANT:
                renewing = step == "documents" and contractor_onboarding.documents_open_to(driver)
                if not renewing:
                    return redirect("onboarding:status")
            return view(request, driver, *args, **kwargs)

        return wrapper

    return decorator


def _bound(request, *, files: bool = False) -> tuple:
    """Form arguments: the posted data (even when empty, so a blank post shows every
    required-field message), or nothing for a GET."""
    if request.method != "POST":
        return (None, None) if files else (None,)
    return (request.POST, request.FILES) if files else (request.POST,)


def _render_step(request, template: str, driver, step: str, context: dict, status: int = 200):
    return render(request, template, {"driver": driver, **_progress(request, driver, step), **context}, status=status)


# --- Pages ---------------------------------------------------------------------------------


def landing(request):
    from payments.models import PayPolicy
    from stores.models import Zone

    zones = list(Zone.objects.filter(is_active=True).order_by("name"))
    policies = {p.zone_id: p for p in PayPolicy.objects.filter(zone__in=zones)}
    pay = [{"zone": zone, "policy": policies.get(zone.pk) or PayPolicy(zone=zone)} for zone in zones]
    driver = _driver_of(request.user) if request.user.is_authenticated else None
    start = reverse("onboarding:start")
    return render(
        request,
        "driver/onboarding/landing.html",
        {
            "pay": pay,
            "driver": driver,
            "start_url": start,
            "signup_url": f"{reverse('account_signup')}?next={start}",
            "login_url": f"{reverse('account_login')}?next={start}",
        },
    )


@login_required
def start(request):
    driver = _driver_of(request.user)
    if driver is not None and driver.status != Driver.Status.APPLICANT:
        return redirect("onboarding:status")
    if driver is None:
        return redirect("onboarding:profile")
    return redirect(_next_step_url(request, driver))


@require_http_methods(["GET", "POST"])
@wizard_step("profile")
def profile(request, driver):
    user = request.user
    initial = {"first_name": user.first_name, "last_name": user.last_name}
    if driver:
        initial.update(phone=driver.phone, home_zone=driver.home_zone_id)
    form = ProfileForm(
        *_bound(request, files=True), initial=initial, has_photo=bool(driver and driver.photo), user_id=user.pk
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                driver = services.onboarding_save_profile(
                    user=user,
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                    phone=data["phone"],
                    home_zone=data["home_zone"],
                    photo=data["photo"],
                )
            except DomainError as exc:
                form.add_domain_error(exc)
                status = exc.status_code
            else:
                form.discard_kept_uploads()
                messages.success(request, _("Profile saved."))
                return redirect(_next_step_url(request, driver, after="profile"))
        else:
            status = 400
    return _render_step(request, "driver/onboarding/profile.html", driver, "profile", {"form": form}, status)


@require_http_methods(["GET", "POST"])
@wizard_step("phone")
def phone(request, driver):
    form = PhoneCodeForm()
    status = 200
    ticket = request.session.get(SMS_TICKET_SESSION_KEY)
    if request.method == "POST" and not driver.phone_verified_at:
        action = request.POST.get("action")
        if action == "send":
            try:
                request.session[SMS_TICKET_SESSION_KEY] = services.onboarding_send_phone_code(driver=driver)
            except DomainError as exc:
                messages.error(request, exc.message)
                status = exc.status_code
            else:
                messages.success(
                    request,
                    _("We texted a 6-digit code to %(phone)s. It is valid for 10 minutes.") % {"phone": driver.phone},
                )
                return redirect("onboarding:phone")
        elif action == "verify":
            form = PhoneCodeForm(request.POST)
            if form.is_valid():
                try:
                    driver = services.onboarding_verify_phone(
                        driver=driver, ticket=ticket, code=form.cleaned_data["code"]
                    )
                except DomainError as exc:
                    form.add_domain_error(exc)
                    status = exc.status_code
                else:
                    request.session.pop(SMS_TICKET_SESSION_KEY, None)
                    messages.success(request, _("Your mobile number is verified."))
                    return redirect(_next_step_url(request, driver, after="phone"))
            else:
                status = 400
        else:
            messages.error(request, _("Something went wrong with that button; please try again."))
            status = 400
    elif request.method == "POST":
        return redirect(_next_step_url(request, driver, after="phone"))
    return _render_step(
        request,
        "driver/onboarding/phone.html",
        driver,
        "phone",
        {"form": form, "code_sent": bool(ticket) or form.is_bound},
        status,
    )


@require_http_methods(["GET", "POST"])
@wizard_step("vehicle")
def vehicle(request, driver):
    initial = {
        "vehicle_type": driver.vehicle_type,
        "make": driver.vehicle_make,
        "model": driver.vehicle_model,
        "color": driver.vehicle_color,
        "plate": driver.vehicle_plate,
        "tote_capacity": driver.vehicle_tote_capacity,
    }
    form = VehicleForm(*_bound(request), initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                driver = services.onboarding_save_vehicle(
                    driver=driver,
                    vehicle_type=data["vehicle_type"],
                    make=data["make"],
                    model=data["model"],
                    color=data["color"],
                    plate=data["plate"],
                    tote_capacity=data["tote_capacity"],
                )
            except DomainError as exc:
                form.add_domain_error(exc)
                status = exc.status_code
            else:
                messages.success(request, _("Vehicle saved."))
                return redirect(_next_step_url(request, driver, after="vehicle"))
        else:
            status = 400
    return _render_step(request, "driver/onboarding/vehicle.html", driver, "vehicle", {"form": form}, status)


@require_http_methods(["GET", "POST"])
@wizard_step("documents")
def documents(request, driver):
    renewing = driver.status != Driver.Status.APPLICANT
    initial = {
        "license_number": driver.license_number,
        "license_state": driver.license_state,
        "license_expires_on": driver.license_expires_on,
        "insurance_expires_on": driver.insurance_expires_on,
    }
    form = DocumentsForm(*_bound(request, files=True), initial=initial, driver=driver, user_id=request.user.pk)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                driver = contractor_onboarding.onboarding_save_documents(
                    driver=driver,
                    actor=request.user,
                    license_number=data["license_number"],
                    license_state=data["license_state"],
                    license_expires_on=data["license_expires_on"],
                    license_document=data["license_document"],
                    insurance_expires_on=data["insurance_expires_on"],
                    insurance_document=data["insurance_document"],
                )
            except DomainError as exc:
                form.add_domain_error(exc)
                status = exc.status_code
            else:
                form.discard_kept_uploads()
                if renewing:
                    messages.success(request, _("Thanks: your documents are updated."))
                    return redirect("onboarding:status")
                messages.success(request, _("License and insurance saved."))
                return redirect(_next_step_url(request, driver, after="documents"))
        else:
            status = 400
    return _render_step(
        request, "driver/onboarding/documents.html", driver, "documents", {"form": form, "renewing": renewing}, status
    )


@require_http_methods(["GET"])
@wizard_step("consent")
def disclosure(request, driver):
    """The background-check disclosure, on a page of its own (FCRA: a standalone document)."""
    return render(
        request,
        "driver/onboarding/disclosure.html",
        {
            "driver": driver,
            "version": services.DISCLOSURE_VERSION,
        },
    )


@require_http_methods(["GET", "POST"])
@wizard_step("consent")
def consent(request, driver):
    form = ConsentForm(*_bound(request), user=request.user)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                driver = services.onboarding_record_consent(
                    driver=driver,
                    signature=form.cleaned_data["signature"],
                    agreed=form.cleaned_data["agree"],
                    ip=client_ip(request),
                )
            except DomainError as exc:
                form.add_domain_error(exc)
                status = exc.status_code
            else:
                messages.success(request, _("Thank you: background check authorized."))
                return redirect(_next_step_url(request, driver, after="consent"))
        else:
            status = 400
    return _render_step(request, "driver/onboarding/consent.html", driver, "consent", {"form": form}, status)


@require_http_methods(["GET", "POST"])
@wizard_step("review")
def review(request, driver):
    form = SubmitForm(*_bound(request))
    status = 200
    missing: list[str] = []
    if request.method == "POST":
        if form.is_valid():
            try:
                driver = contractor_onboarding.onboarding_submit(driver=driver, user=request.user)
            except DomainError as exc:
                missing = list(exc.fields.get("missing", []))
                form.add_error(None, exc.message)
                status = exc.status_code
            else:
                messages.success(request, _("Application submitted. We will email you when the review is done."))
                return redirect("onboarding:status")
        else:
            status = 400
    context = {
        "form": form,
        "missing_now": missing,
        "email": request.user.email,
        "full_name": request.user.get_full_name(),
    }
    return _render_step(request, "driver/onboarding/review.html", driver, "review", context, status)


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

    driver = _driver_of(request.user)
    checklist = services.application_checklist(user=request.user, driver=driver)
    reason = _("no reason recorded")
    if driver is not None and driver.reason_code:
        reason = dict(Driver.ReasonCode.choices).get(driver.reason_code, driver.reason_code)
    documents_problem = next((i.problem for i in checklist if i.problem), "")
    state = driver.status if driver else "not_started"
    context = {
        "driver": driver,
        "state": state,
        "items": _checklist_rows(checklist),
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

    driver = _driver_of(request.user)
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
