"""The driver sign-up funnel (phone first, plain server-rendered pages).

/driver/join/              landing: the job, how pay works, sign up (allauth) or log in
/driver/join/start/        sends a logged-in person to their next unfinished step
/driver/join/profile/      1 name, mobile number, home zone, photo (creates the applicant profile)
/driver/join/phone/        2 the texted 6-digit code
/driver/join/vehicle/      3 vehicle
/driver/join/documents/    4 driver's license and insurance (also where active drivers renew them)
/driver/join/age/          5 date of birth: 21+ where the zone's orders may contain alcohol, 18+
                           elsewhere; under age is refused and nothing is kept
/driver/join/background-check/            6a the disclosure, on a page of its own
/driver/join/background-check/authorize/  6b consent and typed signature
/driver/join/review/       7 everything at a glance, submit for screening
/driver/join/status/       where the application stands and what is missing
                           (driver_app/application_status.py)

Every save is one call into drivers.onboarding_services, or payments.contractor.onboarding
for the documents and submitting the application. A refused form is shown again with
a message on each field, with status 400 (429 for too many codes), and nothing is saved.
Once the application is submitted (or the driver is active) the steps show the status page
instead, except the documents step, which active and suspended drivers use to renew.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from driver_app.forms import (
    BirthDateForm,
    ConsentForm,
    DocumentsForm,
    PhoneCodeForm,
    ProfileForm,
    SubmitForm,
    VehicleForm,
)
from driver_app.onboarding_wizard import (
    SMS_TICKET_SESSION_KEY,
    applicant_of,
    bound_form,
    next_step_url,
    render_step,
    wizard_step,
)
from drivers import onboarding_services as services
from drivers.models import Driver
from drivers.onboarding_checks import check_driver_age, driver_min_age
from payments.contractor import onboarding as contractor_onboarding
from spark.errors import DomainError, NotPermitted
from spark.httpkit import client_ip


def landing(request):
    from payments.models import PayPolicy
    from stores.models import Zone

    zones = list(Zone.objects.filter(is_active=True).order_by("name"))
    policies = {p.zone_id: p for p in PayPolicy.objects.filter(zone__in=zones)}
    pay = [{"zone": zone, "policy": policies.get(zone.pk) or PayPolicy(zone=zone)} for zone in zones]
    driver = applicant_of(request.user) if request.user.is_authenticated else None
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
    driver = applicant_of(request.user)
    if driver is not None and driver.status != Driver.Status.APPLICANT:
        return redirect("onboarding:status")
    if driver is None:
        return redirect("onboarding:profile")
    return redirect(next_step_url(request, driver))


@require_http_methods(["GET", "POST"])
@wizard_step("profile")
def profile(request, driver):
    user = request.user
    initial = {"first_name": user.first_name, "last_name": user.last_name}
    if driver:
        initial.update(phone=driver.phone, home_zone=driver.home_zone_id)
    form = ProfileForm(
        *bound_form(request, files=True), initial=initial, has_photo=bool(driver and driver.photo), user_id=user.pk
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
                return redirect(next_step_url(request, driver, after="profile"))
        else:
            status = 400
    return render_step(request, "driver/onboarding/profile.html", driver, "profile", {"form": form}, status)


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
                    return redirect(next_step_url(request, driver, after="phone"))
            else:
                status = 400
        else:
            messages.error(request, _("Something went wrong with that button; please try again."))
            status = 400
    elif request.method == "POST":
        return redirect(next_step_url(request, driver, after="phone"))
    return render_step(
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
    form = VehicleForm(*bound_form(request), initial=initial)
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
                return redirect(next_step_url(request, driver, after="vehicle"))
        else:
            status = 400
    return render_step(request, "driver/onboarding/vehicle.html", driver, "vehicle", {"form": form}, status)


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
    form = DocumentsForm(*bound_form(request, files=True), initial=initial, driver=driver, user_id=request.user.pk)
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
                return redirect(next_step_url(request, driver, after="documents"))
        else:
            status = 400
    return render_step(
        request, "driver/onboarding/documents.html", driver, "documents", {"form": form, "renewing": renewing}, status
    )


@require_http_methods(["GET", "POST"])
@wizard_step("age")
def age(request, driver):
    """The date of birth, before the background check. Under age is a refusal of its own
    (403): the date is not kept and the steps after this one stay closed."""
    form = BirthDateForm(*bound_form(request), initial={"birth_date": driver.birth_date})
    status, refusal = 200, ""
    if request.method == "POST":
        if form.is_valid():
            try:
                driver = services.onboarding_save_birth_date(driver=driver, birth_date=form.cleaned_data["birth_date"])
            except NotPermitted as exc:
                refusal, status = exc.message, exc.status_code
            except DomainError as exc:
                form.add_domain_error(exc)
                status = exc.status_code
            else:
                messages.success(request, _("Date of birth saved."))
                return redirect(next_step_url(request, driver, after="age"))
        else:
            status = 400
    context = {"form": form, "refusal": refusal, "min_age": driver_min_age(driver.home_zone)}
    return render_step(request, "driver/onboarding/age.html", driver, "age", context, status)


def _age_first(driver: Driver):
    """The background-check pages open only once the date of birth is in (and old enough)."""
    try:
        check_driver_age(driver.birth_date, zone=driver.home_zone)
    except DomainError:
        return redirect("onboarding:age")
    return None


@require_http_methods(["GET"])
@wizard_step("consent")
def disclosure(request, driver):
    """The background-check disclosure, on a page of its own (FCRA: a standalone document)."""
    if (to_age := _age_first(driver)) is not None:
        return to_age
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
    if not driver.background_check_consent_at and (to_age := _age_first(driver)) is not None:
        return to_age
    form = ConsentForm(*bound_form(request), user=request.user)
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
                return redirect(next_step_url(request, driver, after="consent"))
        else:
            status = 400
    return render_step(request, "driver/onboarding/consent.html", driver, "consent", {"form": form}, status)


@require_http_methods(["GET", "POST"])
@wizard_step("review")
def review(request, driver):
    form = SubmitForm(*bound_form(request))
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
    return render_step(request, "driver/onboarding/review.html", driver, "review", context, status)
