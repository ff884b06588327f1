"""Tax (contractor module, second half): the driver's W-9 and the year-end 1099-NEC figures.

- W-9 (`tax_details_save`): legal name, TIN (SSN or EIN), address, and the driver's
  certification. The TIN is encrypted at rest with Fernet (keys SPARK_TIN_ENCRYPTION_KEYS, the
  first encrypts and all decrypt, so a key can be rotated; unset: a key derived from SECRET_KEY)
  and shown only masked (`tin_masked`, from the last four digits kept apart).
- 1099-NEC (`nec_1099_rows`, `nec_1099_csv`): per driver, what Spark paid them in a tax year:
  their payouts paid that year (by the day Stripe was asked for the transfer, in UTC), cash-out
  fees included (money the driver earned and chose to spend on an instant payout), payouts
  that failed later excluded. Reported from SPARK_1099_THRESHOLDS_CENTS for the year. A
  driver paid above the threshold without a W-9 is listed with "W-9 missing" for ops to chase.
"""

import base64
import csv
import hashlib
import io
import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from drivers.models import Driver
from payments.models import Payout, TaxProfile
from spark.errors import DomainError

US_STATES = set(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH "
    "OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR VI GU AS MP".split()
)
ZIP_RE = re.compile(r"[0-9]{5}(-[0-9]{4})?")


def _fernet() -> MultiFernet:
    keys = [k for k in settings.SPARK_TIN_ENCRYPTION_KEYS if k]
    if not keys:
        digest = hashlib.sha256(b"spark-tin-encryption:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(k.encode()) for k in keys])


def tin_encrypt(tin: str) -> str:
    return _fernet().encrypt(tin.encode()).decode()


def tin_decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DomainError("This TIN cannot be decrypted with the configured keys.", code="tin_key") from None


def tin_masked(profile: TaxProfile | None) -> str:
    if profile is None:
        return ""
    if profile.tin_type == TaxProfile.TinType.EIN:
        return f"••-•••{profile.tin_last4}"
    return f"•••-••-{profile.tin_last4}"


def _valid_tin(tin_type: str, digits: str) -> bool:
    if len(digits) != 9:
        return False
    if tin_type == TaxProfile.TinType.SSN:
        area, group, serial = digits[:3], digits[3:5], digits[5:]
        return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"
    return digits[:2] not in ("00", "07", "08", "09", "17", "18", "19", "28", "29", "49", "69", "70", "78", "79", "89")


def tax_details_save(
    *,
    driver,
    legal_name: str,
    tin_type: str,
    tin: str,
    address_line1: str,
    city: str,
    state: str,
    postal_code: str,
    certify: bool,
    business_name: str = "",
    address_line2: str = "",
) -> TaxProfile:
    """Record the driver's W-9 (a new one replaces the old). Refused with the fields at fault
    (DomainError, nothing saved). `tin` may be left empty to keep the one on file."""
    errors: dict[str, str] = {}
    legal_name, business_name = legal_name.strip(), business_name.strip()
    address_line1, address_line2, city = address_line1.strip(), address_line2.strip(), city.strip()
    state, postal_code = state.strip().upper(), postal_code.strip()
    digits = re.sub(r"[\s-]", "", tin or "")
    existing = TaxProfile.objects.filter(driver=driver).first()
    if not 2 <= len(legal_name) <= 200:
        errors["legal_name"] = "Your legal name, as on your tax return."
    if len(business_name) > 200:
        errors["business_name"] = "At most 200 characters."
    if tin_type not in TaxProfile.TinType.values:
        errors["tin_type"] = "Choose SSN or EIN."
    if digits or existing is None or (existing and existing.tin_type != tin_type):
        if not digits.isdigit() or not _valid_tin(tin_type, digits):
            errors["tin"] = "A valid 9-digit SSN or EIN."
    if not 3 <= len(address_line1) <= 200 or len(address_line2) > 200:
        errors["address_line1"] = "Your street address."
    if not 2 <= len(city) <= 100:
        errors["city"] = "Your city."
    if state not in US_STATES:
        errors["state"] = "A two-letter US state."
    if not ZIP_RE.fullmatch(postal_code):
        errors["postal_code"] = "A 5-digit ZIP code."
    if not certify:
        errors["certify"] = "Certify the W-9 statement to save it."
    if errors:
        raise DomainError("Some tax details need fixing.", code="invalid_tax_details", fields=errors)
    values = {
        "legal_name": legal_name,
        "business_name": business_name,
        "tin_type": tin_type,
        "address_line1": address_line1,
        "address_line2": address_line2,
        "city": city,
        "state": state,
        "postal_code": postal_code,
        "certified_at": timezone.now(),
    }
    if digits:
        values.update(tin_encrypted=tin_encrypt(digits), tin_last4=digits[-4:])
    profile, _ = TaxProfile.objects.update_or_create(driver=driver, defaults=values)
    return profile


def nec_1099_threshold_cents(year: int) -> int:
    thresholds = settings.SPARK_1099_THRESHOLDS_CENTS
    return int(thresholds.get(str(year), thresholds.get("default", 60000)))


def paid_in_year_cents(year: int) -> dict[int, int]:
    """Driver id -> cents paid out to them in `year` (payouts paid that year, fees included)."""
    rows = (
        Payout.objects.filter(status=Payout.Status.PAID, paid_at__year=year)
        .values("driver")
        .annotate(amount=Sum("amount_cents"), fees=Sum("fee_cents"))
    )
    return {row["driver"]: int(row["amount"] or 0) + int(row["fees"] or 0) for row in rows}


CSV_HEADER = [
    "driver_id",
    "email",
    "legal_name",
    "business_name",
    "tin_type",
    "tin",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "box1_nonemployee_compensation",
    "note",
]


def nec_1099_rows(year: int) -> list[dict]:
    """One row per driver paid at least the year's threshold, with the full TIN (for filing)."""
    threshold = nec_1099_threshold_cents(year)
    paid = {driver: cents for driver, cents in paid_in_year_cents(year).items() if cents >= threshold}
    drivers = Driver.objects.filter(pk__in=list(paid)).select_related("user", "tax_profile").order_by("pk")
    rows = []
    for driver in drivers:
        profile = getattr(driver, "tax_profile", None)
        cents = paid[driver.pk]
        row: dict[str, object] = dict.fromkeys(CSV_HEADER, "")
        row.update(
            driver_id=driver.pk,
            email=driver.user.email,
            box1_nonemployee_compensation=f"{cents // 100}.{cents % 100:02d}",
        )
        if profile is None:
            row["note"] = "W-9 missing"
        else:
            row.update(
                legal_name=profile.legal_name,
                business_name=profile.business_name,
                tin_type=profile.tin_type.upper(),
                tin=tin_decrypt(profile.tin_encrypted),
                address_line1=profile.address_line1,
                address_line2=profile.address_line2,
                city=profile.city,
                state=profile.state,
                postal_code=profile.postal_code,
            )
        rows.append(row)
    return rows


def _cell(value) -> str:
    # A spreadsheet runs a cell that starts with = + - @ as a formula: names come from drivers.
    text = str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def nec_1099_csv(year: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for row in nec_1099_rows(year):
        writer.writerow([_cell(row[name]) for name in CSV_HEADER])
    return out.getvalue()


def driver_1099_years(*, driver) -> list[tuple[int, int]]:
    """(tax year, cents paid) for each past year the driver was paid at least the threshold,
    newest first: the years they get a 1099-NEC for."""
    rows = (
        Payout.objects.filter(driver=driver, status=Payout.Status.PAID, paid_at__isnull=False)
        .values_list("paid_at__year")
        .annotate(amount=Sum("amount_cents"), fees=Sum("fee_cents"))
        .order_by("-paid_at__year")
    )
    this_year = timezone.now().year
    return [
        (year, int(amount or 0) + int(fees or 0))
        for year, amount, fees in rows
        if year < this_year and int(amount or 0) + int(fees or 0) >= nec_1099_threshold_cents(year)
    ]


def driver_1099_csv(*, driver, year: int) -> str | None:
    """The driver's own 1099-NEC figures for `year` (their TIN masked), or None when they were
    paid less than that year's threshold."""
    cents = paid_in_year_cents(year).get(driver.pk, 0)
    if cents < nec_1099_threshold_cents(year):
        return None
    profile = TaxProfile.objects.filter(driver=driver).first()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["tax_year", "payer", "recipient", "recipient_tin", "box1_nonemployee_compensation"])
    writer.writerow(
        [
            year,
            "Spark",
            _cell(profile.legal_name if profile else driver.user.get_full_name()),
            tin_masked(profile) or "W-9 missing",
            f"{cents // 100}.{cents % 100:02d}",
        ]
    )
    return out.getvalue()
