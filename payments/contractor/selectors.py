"""Reads of the contractor module, for the driver's application status page and ops."""

from datetime import date
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet
from django.utils import timezone

from payments.models import ScreeningCase

# (kind, what the driver calls it, expiry field, document field) of the documents we keep.
DOCUMENTS = (
    ("license", "driver's license", "license_expires_on", "license_document"),
    ("insurance", "proof of insurance", "insurance_expires_on", "insurance_document"),
)


def driver_local_today(driver) -> date:
    """Today in the driver's home zone: documents are valid through their expiry date there."""
    return timezone.localdate(timezone.now(), ZoneInfo(driver.home_zone.timezone))


def screening_missing_items(*, driver, today: date | None = None) -> list[str]:
    """What an applicant still has to provide before screening can start, in words they can
    act on; empty when the application is complete."""
    today = today or driver_local_today(driver)
    missing = []
    if driver.background_check_consent_at is None:
        missing.append("Read the background-check disclosure and give your consent.")
    if not driver.license_number or not driver.license_state:
        missing.append("Enter your driver's license number and state.")
    for _kind, label, expiry_field, document_field in DOCUMENTS:
        expires = getattr(driver, expiry_field)
        if not getattr(driver, document_field):
            missing.append(f"Upload a photo of your {label}.")
        if expires is None:
            missing.append(f"Enter the expiry date of your {label}.")
        elif expires < today:
            missing.append(f"Your {label} expired on {expires:%b %d, %Y}; upload the renewed one.")
    return missing


def screening_case_for_driver(*, driver) -> ScreeningCase | None:
    """The driver's open screening case, or else their latest one (None before they submit)."""
    cases = ScreeningCase.objects.filter(driver=driver)
    return cases.filter(status__in=ScreeningCase.OPEN_STATUSES).first() or cases.first()


def screening_cases_awaiting_decision(*, now=None) -> QuerySet[ScreeningCase]:
    """Cases ops must decide now: results to record, disputes to review, and notices whose
    waiting period is over."""
    now = now or timezone.now()
    Status = ScreeningCase.Status
    return ScreeningCase.objects.filter(
        Q(status__in=[Status.IN_REVIEW, Status.DISPUTED])
        | Q(status=Status.PRE_ADVERSE_NOTICE, dispute_deadline_at__lte=now)
    )
