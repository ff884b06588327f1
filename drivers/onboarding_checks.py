"""The input checks of driver onboarding (the sign-up funnel), shared by its forms
(drivers.forms) and its services (drivers.onboarding_services, payments.contractor.onboarding),
so a form and a direct service call refuse the same things with the same words.

Uploads (DESIGN rule 9): pictures go through the one sanitiser, spark.photos (Pillow, the
size and pixel limits of settings, upright, re-encoded as JPEG, which drops EXIF (GPS) and any
other metadata); a document may also be a PDF, accepted by its `%PDF-` magic bytes and the same
size cap. Stored names are random, never the uploaded name.
"""

import re
import uuid
from datetime import date
from zoneinfo import ZoneInfo

from django.core.files.base import ContentFile
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from accounts.models import User
from spark import photos
from spark.errors import DomainError, NotPermitted
from stores.models import Zone

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


# Who may drive (asked before the background-check consent): 21 where the zone's orders may
# contain alcohol (the driver hands them over and checks the customer's ID), 18 elsewhere.
DRIVER_MIN_AGE = 18
DRIVER_MIN_AGE_ALCOHOL = 21
OLDEST_PLAUSIBLE_AGE = 100


def age_on(birth_date: date, today: date) -> int:
    """Whole years between `birth_date` and `today` (a birthday today counts)."""
    return today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))


def driver_min_age(zone: Zone) -> int:
    return DRIVER_MIN_AGE_ALCOHOL if zone.delivers_alcohol else DRIVER_MIN_AGE


def check_driver_age(birth_date: date | None, *, zone: Zone) -> date:
    """A possible date of birth of someone old enough to drive in `zone`, on today's date
    there; else DomainError (missing, impossible) or NotPermitted (under age, code under_age)."""
    if birth_date is None:
        message = _("Enter your date of birth.")
        raise DomainError(message, code="date_required", fields={"birth_date": [message]})
    today = zone_today(zone)
    if birth_date >= today or age_on(birth_date, today) > OLDEST_PLAUSIBLE_AGE:
        message = _("That date of birth is not possible; check it and try again.")
        raise DomainError(message, code="bad_birth_date", fields={"birth_date": [message]})
    minimum = driver_min_age(zone)
    if age_on(birth_date, today) < minimum:
        if zone.delivers_alcohol:
            message = _(
                "You must be %(age)d or older to deliver in %(zone)s, where orders can include alcohol. "
                "We cannot take your application, and we have not kept your date of birth."
            ) % {"age": minimum, "zone": zone.name}
        else:
            message = _(
                "You must be %(age)d or older to deliver with Spark. "
                "We cannot take your application, and we have not kept your date of birth."
            ) % {"age": minimum}
        raise NotPermitted(message, code="under_age", fields={"birth_date": [message]})
    return birth_date


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
