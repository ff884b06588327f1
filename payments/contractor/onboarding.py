"""The steps of driver onboarding (the sign-up funnel) that need the contractor module: the
documents (license and insurance) and submitting the application for screening. The other
steps, the checklist and the input checks are in drivers.onboarding_services and
drivers.onboarding_checks; these follow the same rules (a row lock on the applicant's
profile, DomainError with per-field messages before anything is written).

Submitting hands the application to `services.screening_submit`, which opens the screening
case, moves the driver applicant -> screening, enrols them with the contractor backend and
emails them. Documents uploaded again by an active, suspended or screened driver go to
`services.documents_renewed`.
"""

from datetime import date

from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import User
from drivers.models import Driver
from drivers.onboarding_checks import US_STATE_CODES, check_future_date, normalize_license_number
from drivers.onboarding_services import application_checklist, locked_applicant
from payments.models import ScreeningCase
from spark.errors import Conflict, DomainError, NotPermitted

from .services import documents_renewed, screening_submit

RENEWAL_STATUSES = (Driver.Status.ACTIVE, Driver.Status.SUSPENDED)


def documents_open_to(driver: Driver) -> bool:
    """Who may use the documents step: applicants; active and suspended drivers (renewal);
    a driver under review whose screening case waits for a document ops asked for."""
    if driver.status == Driver.Status.APPLICANT or driver.status in RENEWAL_STATUSES:
        return True
    if driver.status == Driver.Status.SCREENING:
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
        locked = locked_applicant(driver, allowed=(Driver.Status.APPLICANT, Driver.Status.SCREENING, *RENEWAL_STATUSES))
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
        documents_renewed(driver=driver, actor=actor)
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
        screening_submit(driver=driver)
    finally:
        cache.delete(lock)
    driver.refresh_from_db()
    return driver
