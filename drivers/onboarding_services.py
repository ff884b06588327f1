"""The writes of driver onboarding (the sign-up funnel), and the checks they rely on.

Each wizard step saves through one function here. An applicant's profile is edited under a
row lock with its status re-checked (`_locked_applicant`), so nothing changes once the
application is submitted. Bad input raises DomainError (with per-field messages) before
anything is written.

Uploads (DESIGN rule 9): pictures go through the one sanitiser, spark.photos (Pillow, the
size and pixel limits of settings, upright, re-encoded as JPEG, which drops EXIF (GPS) and any
other metadata); a document may also be a PDF, accepted by its `%PDF-` magic bytes and the same
size cap. Stored names are random, never the uploaded name.

Submitting hands the application to the contractor module
(`payments.contractor.services.screening_submit`), which opens the screening case, moves
the driver applicant -> screening, enrols them with the contractor backend and emails them.
"""

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from spark import photos
from spark.errors import Conflict, DomainError, NotPermitted
from stores.models import Zone

from .models import Driver

logger = logging.getLogger(__name__)

# Version of the background-check disclosure text; recorded with each consent.
DISCLOSURE_VERSION = "2025-01"

US_STATES = [
    ("AL", "Alabama"),
    ("AK", "Alaska"),
    ("AZ", "Arizona"),
    ("AR", "Arkansas"),
    ("CA", "California"),
    ("CO", "Colorado"),
    ("CT", "Connecticut"),
    ("DE", "Delaware"),
    ("DC", "District of Columbia"),
    ("FL", "Florida"),
    ("GA", "Georgia"),
    ("HI", "Hawaii"),
    ("ID", "Idaho"),
    ("IL", "Illinois"),
    ("IN", "Indiana"),
    ("IA", "Iowa"),
    ("KS", "Kansas"),
    ("KY", "Kentucky"),
    ("LA", "Louisiana"),
    ("ME", "Maine"),
    ("MD", "Maryland"),
    ("MA", "Massachusetts"),
    ("MI", "Michigan"),
    ("MN", "Minnesota"),
    ("MS", "Mississippi"),
    ("MO", "Missouri"),
    ("MT", "Montana"),
    ("NE", "Nebraska"),
    ("NV", "Nevada"),
    ("NH", "New Hampshire"),
    ("NJ", "New Jersey"),
    ("NM", "New Mexico"),
    ("NY", "New York"),
    ("NC", "North Carolina"),
    ("ND", "North Dakota"),
    ("OH", "Ohio"),
    ("OK", "Oklahoma"),
    ("OR", "Oregon"),
    ("PA", "Pennsylvania"),
    ("RI", "Rhode Island"),
    ("SC", "South Carolina"),
    ("SD", "South Dakota"),
    ("TN", "Tennessee"),
    ("TX", "Texas"),
    ("UT", "Utah"),
    ("VT", "Vermont"),
    ("VA", "Virginia"),
    ("WA", "Washington"),
    ("WV", "West Virginia"),
    ("WI", "Wisconsin"),
    ("WY", "Wyoming"),
]
US_STATE_CODES = {code for code, _name in US_STATES}


# --- Input checks (shared by the forms and the services) ------------------------------------


def normalize_phone(value: str) -> str:
    """A mobile number in E.164: "+16155550199". US numbers may be typed the usual ways
    ("(615) 555-0199", "615.555.0199", "1 615 555 0199"); others need the + and country code."""
    raw = (value or "").strip()
    if not raw:
        raise DomainError(
            _("Enter your mobile number."), code="invalid_phone", fields={"phone": [_("Enter your mobile number.")]}
        )
    if re.search(r"[^\d\s().+-]", raw) or raw.count("+") > 1 or ("+" in raw and not raw.startswith("+")):
        digits = ""
    else:
        digits = re.sub(r"\D", "", raw)
    if not raw.startswith("+"):
        if len(digits) == 11 and digits.startswith("1"):
            digits = digits[1:]
        if len(digits) == 10:
            digits = "1" + digits
        else:
            digits = ""
    if digits.startswith("1") and not (len(digits) == 11 and re.fullmatch(r"1[2-9]\d{2}[2-9]\d{6}", digits)):
        digits = ""
    if not re.fullmatch(r"[1-9]\d{7,14}", digits):
        message = _("Enter a mobile number like (615) 555-0199, or +44 7700 900123 outside the US.")
        raise DomainError(message, code="invalid_phone", fields={"phone": [message]})
    return "+" + digits


def normalize_plate(value: str) -> str:
    """A license plate as on the vehicle: letters and digits (2 to 8 of them), upper case."""
    plate = re.sub(r"[\s-]+", " ", (value or "").strip().upper())
    if not re.fullmatch(r"[A-Z0-9 ]{2,10}", plate) or not 2 <= len(plate.replace(" ", "")) <= 8:
        message = _("Enter the plate as shown on the vehicle: letters and numbers, 2 to 8 of them.")
        raise DomainError(message, code="bad_plate", fields={"plate": [message]})
    return plate


def normalize_license_number(value: str) -> str:
    number = re.sub(r"[\s-]", "", (value or "").upper())
    if not re.fullmatch(r"[A-Z0-9*]{4,20}", number):
        message = _("Enter the license number as printed on the card: 4 to 20 letters and digits.")
        raise DomainError(message, code="bad_license_number", fields={"license_number": [message]})
    return number


def zone_today(zone: Zone | None) -> date:
    tz = ZoneInfo(zone.timezone) if zone is not None else timezone.get_current_timezone()
    return timezone.localdate(timezone.now(), tz)


def check_future_date(value: date | None, *, field: str, what: str, zone: Zone | None) -> date:
    """An expiry date that is after today (in the zone's time): a document that expires today
    or earlier is refused."""
    if value is None:
        message = _("Enter the expiry date of your %(what)s.") % {"what": what}
        raise DomainError(message, code="date_required", fields={field: [message]})
    if value <= zone_today(zone):
        message = _(
            "Your %(what)s expired on %(date)s. Upload a current one; the expiry date must be in the future."
        ) % {"what": what, "date": date_format(value, "M j, Y")}
        raise DomainError(message, code="expired", fields={field: [message]})
    return value


def clean_document(upload, *, field: str, what: str) -> ContentFile:
    """A license or insurance upload: a picture (spark.photos: checked, metadata stripped,
    re-encoded) or a PDF (checked by its magic bytes), within the one size cap. Raises
    DomainError for anything else."""
    if upload is None:
        message = _("Choose a file for your %(what)s.") % {"what": what}
        raise DomainError(message, code="file_required", fields={field: [message]})
    data = photos.read_upload(upload, field=field)
    if data.startswith(b"%PDF-"):
        return ContentFile(data, name=f"{uuid.uuid4().hex}.pdf")
    try:
        return photos.clean_image(data, field=field)
    except DomainError as exc:
        if exc.code != "not_an_image":
            raise
        # Same refusal, worded for this field, which also takes a PDF.
        message = _("That file is not a JPEG, PNG or WebP picture or a PDF. Upload a photo or a PDF scan.")
        raise DomainError(message, code="not_an_image", fields={field: [message]}) from None


def clean_profile_photo(upload, *, field: str = "photo") -> ContentFile:
    """The driver's photo (shown to the store associate at the handoff), through the one
    sanitiser (spark.photos)."""
    if not upload:
        message = _("Add a photo of yourself: the store associate sees it when you pick up.")
        raise DomainError(message, code="file_required", fields={field: [message]})
    return photos.clean_photo(upload, field=field)


def check_signature(user: User, typed: str) -> str:
    """The typed signature must be the name on the profile (a middle name may be added;
    case, spacing and punctuation do not matter)."""

    def words(text: str) -> list[str]:
        return re.sub(r"[^\w\s'-]", " ", text or "").casefold().split()

    typed_words, first, last = words(typed), words(user.first_name), words(user.last_name)
    ok = bool(first and last and typed_words) and (
        typed_words[: len(first)] == first
        and typed_words[-len(last) :] == last
        and len(typed_words) >= len(first) + len(last)
    )
    if not ok:
        full = f"{user.first_name} {user.last_name}".strip()
        message = _("Type your full name as it appears on your profile: %(name)s.") % {"name": full}
        raise DomainError(message, code="signature_mismatch", fields={"signature": [message]})
    return " ".join((typed or "").split())


# --- Reads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChecklistItem:
    key: str  # email, phone, profile, vehicle, license, insurance, consent
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
        "consent": bool(driver and driver.background_check_consent_at),
    }
    steps = {
        "email": "",
        "profile": "profile",
        "phone": "phone",
        "vehicle": "vehicle",
        "license": "documents",
        "insurance": "documents",
        "consent": "consent",
    }
    problems = {"license": license_problem, "insurance": insurance_problem}
    return [
        ChecklistItem(
            key=key, label=str(CHECKLIST_LABELS[key]), done=done[key], step=steps[key], problem=problems.get(key, "")
        )
        for key in ("email", "profile", "phone", "vehicle", "license", "insurance", "consent")
    ]


# --- Writes ----------------------------------------------------------------------------------


def _locked_applicant(driver: Driver, *, allowed: tuple[str, ...] = (Driver.Status.APPLICANT,)) -> Driver:
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
                driver = _locked_applicant(existing)
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
        locked = _locked_applicant(driver)
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


RENEWAL_STATUSES = (Driver.Status.ACTIVE, Driver.Status.SUSPENDED)


def screening_case_of(driver: Driver):
    """The driver's open (else latest) screening case, from the contractor module; None
    before they submit."""
    from payments.contractor.selectors import screening_case_for_driver

    return screening_case_for_driver(driver=driver)


def documents_open_to(driver: Driver) -> bool:
    """Who may use the documents step: applicants; active and suspended drivers (renewal);
    a driver under review whose screening case waits for a document ops asked for."""
    if driver.status == Driver.Status.APPLICANT or driver.status in RENEWAL_STATUSES:
        return True
    if driver.status == Driver.Status.SCREENING:
        from payments.models import ScreeningCase

        return ScreeningCase.objects.filter(driver=driver, status=ScreeningCase.Status.PENDING_DOCUMENTS).exists()
    return False


def onboarding_save_documents(
    *,
    driver: Driver,
    actor: User,
    license_number: str,
    license_state: str,
    license_expires_on: date | None,
    license_document: ContentFile | None,
    insurance_expires_on: date | None,
    insurance_document: ContentFile | None,
) -> Driver:
    """Driver's license and insurance with their expiry dates and uploads (files already
    cleaned by clean_document; None keeps the one on file, required the first time).

    Applicants save them as part of the application. Active and suspended drivers use the
    same step to renew, and a driver under review to send a document ops asked for again:
    then a changed license or a new expiry date needs a new upload, and the contractor module
    is told (`documents_renewed`) so an expiry suspension is lifted or the review goes on.
    """
    zone = driver.home_zone
    errors: dict[str, list[str]] = {}
    number = ""
    try:
        number = normalize_license_number(license_number)
    except DomainError as exc:
        errors.update(exc.fields)
    state = (license_state or "").upper()
    if state not in US_STATE_CODES:
        errors["license_state"] = [_("Choose the state that issued your license.")]
    for field, value, what in (
        ("license_expires_on", license_expires_on, _("driver's license")),
        ("insurance_expires_on", insurance_expires_on, _("insurance")),
    ):
        try:
            check_future_date(value, field=field, what=what, zone=zone)
        except DomainError as exc:
            errors.update(exc.fields)
    if errors:
        raise DomainError(_("Please correct the fields below."), code="invalid", fields=errors)
    if not documents_open_to(driver):
        raise NotPermitted(
            _("Your documents are under review; you can upload them again if we ask you to."), code="documents_locked"
        )
    with transaction.atomic():
        locked = _locked_applicant(
            driver, allowed=(Driver.Status.APPLICANT, Driver.Status.SCREENING, *RENEWAL_STATUSES)
        )
        renewal = locked.status != Driver.Status.APPLICANT
        license_changed = (number, state, license_expires_on) != (
            locked.license_number,
            locked.license_state,
            locked.license_expires_on,
        )
        insurance_changed = insurance_expires_on != locked.insurance_expires_on
        need = {
            "license_document": license_document is None
            and (not locked.license_document or (renewal and license_changed)),
            "insurance_document": insurance_document is None
            and (not locked.insurance_document or (renewal and insurance_changed)),
        }
        for field, missing in need.items():
            if missing:
                errors[field] = [_("Upload a photo or PDF of the document that shows this expiry date.")]
        if errors:
            raise DomainError(_("Please correct the fields below."), code="invalid", fields=errors)
        locked.license_number, locked.license_state = number, state
        locked.license_expires_on, locked.insurance_expires_on = license_expires_on, insurance_expires_on
        fields = ["license_number", "license_state", "license_expires_on", "insurance_expires_on"]
        if license_document is not None:
            locked.license_document.save(license_document.name, license_document, save=False)
            fields.append("license_document")
        if insurance_document is not None:
            locked.insurance_document.save(insurance_document.name, insurance_document, save=False)
            fields.append("insurance_document")
        locked._change_reason = "documents renewed" if renewal else "onboarding: documents"
        locked.save(update_fields=fields)
    driver.refresh_from_db()
    if renewal:
        from payments.contractor.services import documents_renewed

        documents_renewed(driver=driver, actor=actor)
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
        locked = _locked_applicant(driver)
        locked.background_check_consent_at = timezone.now()
        locked._change_reason = f"FCRA consent v{DISCLOSURE_VERSION} signed '{signed[:50]}' ip {ip[:39]}"[:100]
        locked.save(update_fields=["background_check_consent_at"])
    driver.refresh_from_db()
    return driver


def onboarding_submit(*, driver: Driver, user: User) -> Driver:
    """Submit the application for screening once every item of the checklist is done.
    Missing items are refused with the list; a repeat (already under review) returns the
    driver unchanged. The contractor call runs outside any transaction (it may reach the
    contractor backend), and a short cache lock keeps a double tap from calling it twice."""
    driver = Driver.objects.select_related("user", "home_zone").get(pk=driver.pk)
    if driver.status == Driver.Status.SCREENING:
        return driver
    if driver.status != Driver.Status.APPLICANT:
        raise Conflict(_("This application is no longer open for submission."), code="not_applicant")
    missing = [item for item in application_checklist(user=user, driver=driver) if not item.done]
    if missing:
        labels = [item.label for item in missing]
        raise DomainError(
            _("Your application is not complete yet. Still missing: %(items)s.") % {"items": "; ".join(labels)},
            code="incomplete",
            fields={"missing": labels},
        )
    lock = f"onboarding:submit:{driver.pk}"
    if not cache.add(lock, 1, timeout=60):
        raise Conflict(_("Your application is being submitted; reload the page in a moment."), code="in_progress")
    try:
        from payments.contractor.services import screening_submit

        screening_submit(driver=driver)
    finally:
        cache.delete(lock)
    driver.refresh_from_db()
    return driver
