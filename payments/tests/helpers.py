"""Plain helpers (builders, constants) shared by this folder's test modules; fixtures live in conftest.py."""

from django.utils import timezone

from drivers.models import Driver
from drivers.tests.factories import DriverFactory
from payments.contractor import services
from payments.models import ScreeningCase

SUMMARY = "Reckless driving conviction, Davidson County, 2024-05-10."


def make_applicant(**overrides):
    """An applicant who finished onboarding: consent, license and insurance on file."""
    values = {
        "status": Driver.Status.APPLICANT,
        "background_check_consent_at": timezone.now(),
        "license_document": "driver-docs/license/front.jpg",
        "insurance_document": "driver-docs/insurance/card.pdf",
    }
    return DriverFactory(**{**values, **overrides})


def submitted(commit, **overrides) -> ScreeningCase:
    with commit():
        return services.screening_submit(driver=make_applicant(**overrides))
