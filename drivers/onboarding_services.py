"""The writes of driver onboarding (the sign-up funnel) up to the application, and the
checklist they fill in.

Each wizard step saves through one function here. An applicant's profile is edited under a
row lock with its status re-checked (`locked_applicant`), so nothing changes once the
application is submitted. Bad input raises DomainError (with per-field messages) before
anything is written; the checks are in drivers.onboarding_checks.

The steps that need the contractor module (the documents, which screening and renewals
depend on, and submitting the application for screening) are in payments.contractor.onboarding.
"""

import logging
import re
from dataclasses import dataclass
from datetime import date

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from spark.errors import Conflict, DomainError, NotPermitted
from stores.models import Zone

from .models import Driver
from .onboarding_checks import check_driver_age, check_signature, normalize_phone, normalize_plate, zone_today

logger = logging.getLogger(__name__)

# Version of the background-check disclosure text; recorded with each consent.
DISCLOSURE_VERSION = "2025-01"


# --- Reads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChecklistItem:
    key: str  # email, phone, profile, vehicle, license, insurance, birth_date, consent
    label: str
    done: bool
    step: str  # the wizard step that completes it ("" for the email: allauth does it)
    problem: str = ""


CHECKLIST_LABELS = {
    "email": gettext_lazy("Email address verified"),
    "profile": gettext_lazy("Profile: name, home zone and photo"),
    "phone": gettext_lazy("Mobile number verified"),
    "vehicle": gettext_lazy("Vehicle"),
    "license": gettext_lazy("Driver's license"),
    "insurance": gettext_lazy("Proof of insurance"),
    "birth_date": gettext_lazy("Date of birth (old enough to drive here)"),
    "consent": gettext_lazy("Background check authorized"),
}


def email_verified(user: User) -> bool:
    from allauth.account.models import EmailAddress

    return EmailAddress.objects.filter(user=user, verified=True).exists()


def _expiry_problem(expires: date | None, zone: Zone | None, what: str) -> str:
    if expires is None:
        return ""
    if expires <= zone_today(zone):
        return _("Your %(what)s expired on %(date)s: upload the renewed one.") % {
            "what": what,
            "date": date_format(expires, "M j, Y"),
        }
    return ""


def application_checklist(*, user: User, driver: Driver | None) -> list[ChecklistItem]:
    """What the application has and what it is missing, in the order of the wizard."""
    zone = driver.home_zone if driver else None
    license_problem = _expiry_problem(driver.license_expires_on, zone, _("driver's license")) if driver else ""
    insurance_problem = _expiry_problem(driver.insurance_expires_on, zone, _("insurance")) if driver else ""
    done = {
        "email": email_verified(user),
        "profile": bool(driver and user.first_name and user.last_name and driver.photo),
        "phone": bool(driver and driver.phone and driver.phone_verified_at),
        "vehicle": bool(
            driver and driver.vehicle_make and driver.vehicle_model and driver.vehicle_color and driver.vehicle_plate
        ),
        "license": bool(
            driver
            and driver.license_number
            and driver.license_state
            and driver.license_expires_on
            and driver.license_document
            and not license_problem
        ),
        "insurance": bool(
            driver and driver.insurance_expires_on and driver.insurance_document and not insurance_problem
        ),
        "birth_date": bool(driver and _of_age(driver)),
        "consent": bool(driver and driver.background_check_consent_at),
    }
    steps = {
        "email": "",
        "profile": "profile",
        "phone": "phone",
        "vehicle": "vehicle",
        "license": "documents",
        "insurance": "documents",
        "birth_date": "age",
        "consent": "consent",
    }
    problems = {"license": license_problem, "insurance": insurance_problem}
    return [
        ChecklistItem(
            key=key, label=str(CHECKLIST_LABELS[key]), done=done[key], step=steps[key], problem=problems.get(key, "")
        )
        for key in ("email", "profile", "phone", "vehicle", "license", "insurance", "birth_date", "consent")
    ]


def _of_age(driver: Driver) -> bool:
    """A date of birth on file that is old enough for the driver's zone today."""
    try:
        check_driver_age(driver.birth_date, zone=driver.home_zone)
    except DomainError:
        return False
    return True


# --- Writes ----------------------------------------------------------------------------------


def locked_applicant(driver: Driver, *, allowed: tuple[str, ...] = (Driver.Status.APPLICANT,)) -> Driver:
    """Lock the driver's row (inside a transaction) and check it may still be edited."""
    locked = Driver.objects.select_for_update(of=("self",)).select_related("user", "home_zone").get(pk=driver.pk)
    if locked.status not in allowed:
        if locked.status == Driver.Status.SCREENING:
            raise Conflict(
                _("Your application was already submitted and is under review; it can no longer be changed here."),
                code="already_submitted",
            )
        raise NotPermitted(
            _("Your account is %(status)s; this step is not open to you.")
            % {"status": locked.get_status_display().lower()},
            code="not_applicant",
        )
    return locked


def _active_zone(zone: Zone | None) -> Zone:
    if zone is None or not Zone.objects.filter(pk=zone.pk, is_active=True).exists():
        message = _("Choose one of the cities where Spark is delivering.")
        raise DomainError(message, code="bad_zone", fields={"home_zone": [message]})
    return zone


def onboarding_save_profile(
    *, user: User, first_name: str, last_name: str, phone: str, home_zone: Zone, photo: ContentFile | None
) -> Driver:
    """Step 1: name, mobile number, home zone and photo. Creates the Driver profile (status
    applicant) on the first save, in the same transaction as the name. `photo` is a file
    already cleaned by clean_profile_photo; None keeps the one on file (required the first
    time). A new number has to be verified again."""
    first_name, last_name = (first_name or "").strip(), (last_name or "").strip()
    errors = {}
    if not first_name:
        errors["first_name"] = [_("Enter your first name.")]
    if not last_name:
        errors["last_name"] = [_("Enter your last name.")]
    if errors:
        raise DomainError(_("Please correct the fields below."), code="invalid", fields=errors)
    phone = normalize_phone(phone)
    home_zone = _active_zone(home_zone)
    try:
        with transaction.atomic():
            User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True).first()
            existing = Driver.objects.filter(user=user).first()
            if existing is None:
                if photo is None:
                    message = _("Add a photo of yourself: the store associate sees it when you pick up.")
                    raise DomainError(message, code="file_required", fields={"photo": [message]})
                driver = Driver(user=user, status=Driver.Status.APPLICANT, home_zone=home_zone, phone=phone)
                driver.photo.save(photo.name, photo, save=False)
                driver._change_reason = "onboarding: profile created"
                driver.save()
            else:
                driver = locked_applicant(existing)
                _check_age_for_new_zone(driver, home_zone)
                if phone != driver.phone:
                    driver.phone_verified_at = None
                driver.phone, driver.home_zone = phone, home_zone
                fields = ["phone", "phone_verified_at", "home_zone"]
                if photo is not None:
                    driver.photo.save(photo.name, photo, save=False)
                    fields.append("photo")
                elif not driver.photo:
                    message = _("Add a photo of yourself: the store associate sees it when you pick up.")
                    raise DomainError(message, code="file_required", fields={"photo": [message]})
                driver._change_reason = "onboarding: profile"
                driver.save(update_fields=fields)
            User.objects.filter(pk=user.pk).update(first_name=first_name[:150], last_name=last_name[:150])
    except IntegrityError:
        # A double tap created the profile in a parallel request: that one won; this is a repeat.
        raise Conflict(_("Your profile was just saved from another tab; reload the page."), code="conflict") from None
    user.first_name, user.last_name = first_name[:150], last_name[:150]
    driver.refresh_from_db()
    return driver


def _check_age_for_new_zone(driver: Driver, zone: Zone) -> None:
    """A date of birth already given must still be old enough in the zone chosen now."""
    if driver.birth_date is None or zone.pk == driver.home_zone_id:
        return
    try:
        check_driver_age(driver.birth_date, zone=zone)
    except DomainError as exc:
        raise type(exc)(exc.message, code=exc.code, fields={"home_zone": [exc.message]}) from None


def onboarding_send_phone_code(*, driver: Driver) -> str:
    """Text a verification code to the driver's number; returns the ticket for the session."""
    from . import sms

    if not driver.phone:
        raise DomainError(_("Add your mobile number on your profile first."), code="no_phone")
    if driver.phone_verified_at:
        raise Conflict(_("Your mobile number is already verified."), code="already_verified")
    return sms.send_verification_code(user_id=driver.user_id, phone=driver.phone)


def onboarding_verify_phone(*, driver: Driver, ticket: str | None, code: str) -> Driver:
    """Check the texted code and record the number as verified (a guarded write: only if the
    number is still the one the code went to)."""
    from . import sms

    code = re.sub(r"\s", "", code or "")
    if not re.fullmatch(rf"\d{{{sms.CODE_DIGITS}}}", code):
        message = _("Enter the %(n)d-digit code from the text message.") % {"n": sms.CODE_DIGITS}
        raise DomainError(message, code="bad_code_format", fields={"code": [message]})
    driver = Driver.objects.get(pk=driver.pk)
    if driver.phone_verified_at:
        return driver
    sms.check_verification_code(ticket=ticket, user_id=driver.user_id, phone=driver.phone, code=code)
    rows = Driver.objects.filter(pk=driver.pk, phone=driver.phone, phone_verified_at__isnull=True).update(
        phone_verified_at=timezone.now()
    )
    driver.refresh_from_db()
    if not rows and not driver.phone_verified_at:
        raise Conflict(
            _("Your mobile number changed while you were verifying it; send a new code."), code="phone_changed"
        )
    return driver


def onboarding_save_vehicle(
    *, driver: Driver, vehicle_type: str, make: str, model: str, color: str, plate: str, tote_capacity: int
) -> Driver:
    errors: dict[str, list[str]] = {}
    if vehicle_type not in Driver.Vehicle.values:
        errors["vehicle_type"] = [_("Choose the kind of vehicle.")]
    values = {"make": (make or "").strip(), "model": (model or "").strip(), "color": (color or "").strip()}
    for key, text in values.items():
        if not text:
            errors[key] = [_("This field is required.")]
    try:
        plate = normalize_plate(plate)
    except DomainError as exc:
        errors.update(exc.fields)
    if isinstance(tote_capacity, bool) or not isinstance(tote_capacity, int) or not 4 <= tote_capacity <= 80:
        errors["tote_capacity"] = [_("Enter how many grocery totes fit in your vehicle: 4 to 80.")]
    if errors:
        raise DomainError(_("Please correct the fields below."), code="invalid", fields=errors)
    with transaction.atomic():
        locked = locked_applicant(driver)
        locked.vehicle_type = vehicle_type
        locked.vehicle_make, locked.vehicle_model = values["make"][:40], values["model"][:40]
        locked.vehicle_color, locked.vehicle_plate = values["color"][:30], plate[:12]
        locked.vehicle_tote_capacity = tote_capacity
        locked._change_reason = "onboarding: vehicle"
        locked.save(
            update_fields=[
                "vehicle_type",
                "vehicle_make",
                "vehicle_model",
                "vehicle_color",
                "vehicle_plate",
                "vehicle_tote_capacity",
            ]
        )
    driver.refresh_from_db()
    return driver


def onboarding_save_birth_date(*, driver: Driver, birth_date: date | None) -> Driver:
    """The date of birth, asked before the background-check consent: old enough for the
    driver's zone (21 where orders may contain alcohol, 18 elsewhere). Under age is refused
    (403, code under_age) and nothing is saved, so the later steps stay closed."""
    with transaction.atomic():
        locked = locked_applicant(driver)
        locked.birth_date = check_driver_age(birth_date, zone=locked.home_zone)
        locked._change_reason = "onboarding: date of birth"
        locked.save(update_fields=["birth_date"])
    driver.refresh_from_db()
    return driver


def onboarding_record_consent(*, driver: Driver, signature: str, agreed: bool, ip: str = "") -> Driver:
    """The background-check authorization: the box ticked and the full name typed as the
    signature. The time goes in background_check_consent_at; the signature, the disclosure
    version and the IP address go in the profile's history (change reason)."""
    errors: dict[str, list[str]] = {}
    if not agreed:
        errors["agree"] = [_("Tick the box to authorize the background check; we cannot screen you without it.")]
    user = User.objects.get(pk=driver.user_id)
    try:
        signed = check_signature(user, signature)
    except DomainError as exc:
        errors.update(exc.fields)
    if errors:
        raise DomainError(_("Please correct the fields below."), code="invalid", fields=errors)
    with transaction.atomic():
        locked = locked_applicant(driver)
        if not _of_age(locked):
            raise DomainError(
                _("Enter your date of birth first: we check it before the background check."),
                code="birth_date_required",
            )
        locked.background_check_consent_at = timezone.now()
        locked._change_reason = f"FCRA consent v{DISCLOSURE_VERSION} signed '{signed[:50]}' ip {ip[:39]}"[:100]
        locked.save(update_fields=["background_check_consent_at"])
    driver.refresh_from_db()
    return driver
