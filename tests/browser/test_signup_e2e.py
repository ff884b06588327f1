"""A newcomer signs up as a driver on a phone-sized browser and ends with their application
under review: landing page, allauth sign-up, the verification link from the email, login,
every onboarding step (photo and document uploads, the texted code, the date of birth, which
refuses a 19-year-old in a zone that delivers alcohol and accepts them at 25, the
background-check disclosure and consent), submit, and the status page.

The verification email is read from django.core.mail.outbox and the code from the locmem SMS
outbox (drivers.sms.outbox): the live server runs in this process, so both are shared.
"""

import re
from datetime import date, timedelta

import pytest
from django.core import mail
from PIL import Image
from playwright.sync_api import expect

from drivers import sms
from drivers.models import Driver
from payments.models import ScreeningCase
from stores.tests.factories import ZoneFactory
from tests.browser.flow_helpers import (
    born_years_ago,
    fill_birth_date,
    fill_documents,
    fill_profile,
    fill_vehicle,
    sign_consent,
    submit_application,
)

pytestmark = pytest.mark.slow

EMAIL = "maria.lopez@example.test"
PASSWORD = "Groceries-4-all!"


@pytest.fixture(autouse=True)
def _sms_and_media(settings, tmp_path):
    settings.SPARK_SMS_BACKEND = "locmem"
    settings.MEDIA_ROOT = tmp_path / "media"
    sms.outbox.clear()
    yield
    sms.outbox.clear()


def test_newcomer_signs_up_on_a_phone_and_sees_the_application_under_review(page, shot, fits_width, transactional_db):
    zone = ZoneFactory()

    # The landing page: the job, how pay works, and the way in.
    page.goto("/driver/join/")
    expect(page.locator("h1")).to_have_text("Deliver groceries with Spark")
    expect(page.locator("#pay")).to_contain_text("$4.00 for every batch")
    fits_width(page)
    shot(page, "landing")
    page.locator("#signup").click()

    # Sign-up with email and password (Spark's template over allauth); a mismatch first.
    expect(page).to_have_url(re.compile(r"/accounts/signup/"))
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD + "x")
    page.locator("#signup-form button[type=submit]").click()
    expect(page.locator("#field-password2 .field-errors")).to_be_visible()
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    fits_width(page)
    shot(page, "signup")
    page.locator("#signup-form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/accounts/confirm-email/"))
    shot(page, "verification-sent")

    # The verification link from the email.
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [EMAIL]
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[0].body).group(0)
    page.goto(link)
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/driver/join/profile/$"))

    # Log out and in again: the login brings the applicant back to the wizard.
    page.get_by_role("button", name="Log out").click()
    page.goto("/accounts/login/")
    page.fill("input[name=login]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit]").first.click()
    expect(page).to_have_url(re.compile(r"/driver/join/profile/$"))
    expect(page.locator(".topbar .who")).to_have_text(EMAIL)

    # 1 Profile, with a photo taken on the phone.
    expect(page.locator(".step-title")).to_have_text("Step 1 of 7: Profile")
    fill_profile(page, zone, first="Maria", last="Lopez", phone="(615) 555-0177")
    fits_width(page)
    shot(page, "profile")
    page.locator("#profile-form button[type=submit]").click()

    # 2 Phone: the texted code; a wrong one first.
    expect(page).to_have_url(re.compile(r"/driver/join/phone/$"))
    page.get_by_role("button", name="Text me a code").click()
    expect(page.locator("#messages")).to_contain_text("We texted a 6-digit code to +16155550177")
    assert [m.to for m in sms.outbox] == ["+16155550177"]
    code = re.search(r"\b(\d{6})\b", sms.outbox[-1].body).group(1)
    page.fill("input[name=code]", f"{(int(code) + 1) % 1_000_000:06d}")
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#field-code .field-errors")).to_have_text("That code is not right. You have 4 tries left.")
    shot(page, "phone-wrong-code")
    page.fill("input[name=code]", code)
    page.get_by_role("button", name="Verify").click()

    # 3 Vehicle.
    fill_vehicle(page)
    fits_width(page)
    shot(page, "vehicle")
    page.locator("#vehicle-form button[type=submit]").click()

    # 4 License and insurance; an expired insurance date is refused first.
    fill_documents(page, insurance_expires_on=date.today() - timedelta(days=3))
    page.locator("#documents-form button[type=submit]").click()
    expect(page.locator("#field-insurance_expires_on .field-errors")).to_contain_text("must be in the future")
    fits_width(page)
    shot(page, "documents-expired-insurance")
    # the two files passed their checks and are kept: only the date needs fixing
    expect(page.locator("#field-license_document .help")).to_contain_text("We kept the file you chose")
    page.fill("input[name=insurance_expires_on]", (date.today() + timedelta(days=150)).isoformat())
    page.locator("#documents-form button[type=submit]").click()

    # 5 The date of birth: the zone delivers alcohol, so 21 or older. At 19: a clear refusal,
    # nothing kept, and the background check stays closed.
    expect(page.locator("#age-rule")).to_have_text(
        f"To deliver in {zone.name} you must be 21 or older: orders there can include alcohol."
    )
    fill_birth_date(page, born_years_ago(19))
    expect(page.locator("#age-refused")).to_contain_text("We cannot take your application")
    expect(page.locator("#age-refused")).to_contain_text(f"You must be 21 or older to deliver in {zone.name}")
    fits_width(page)
    shot(page, "age-refused-at-19")
    assert Driver.objects.get(user__email=EMAIL).birth_date is None
    page.goto("/driver/join/background-check/")
    # The typo fixed: 25 is old enough.
    fill_birth_date(page, born_years_ago(25))

    # 6 The disclosure on a page of its own, then the authorization.
    expect(page).to_have_url(re.compile(r"/driver/join/background-check/$"))
    expect(page.locator("#disclosure h1")).to_have_text("Disclosure regarding background investigation")
    fits_width(page)
    shot(page, "disclosure")
    sign_consent(page, "Maria Lopez")
    shot(page, "consent")
    page.locator("#consent-form button[type=submit]").click()

    # 7 Review and submit.
    expect(page).to_have_url(re.compile(r"/driver/join/review/$"))
    fits_width(page)
    shot(page, "review")
    submit_application(page)

    # The status page: under review, everything checked.
    expect(page.locator("#checklist li.done")).to_have_count(8)
    fits_width(page)
    shot(page, "under-review")

    driver = Driver.objects.select_related("user").get(user__email=EMAIL)
    assert driver.status == Driver.Status.SCREENING
    assert (driver.user.first_name, driver.user.last_name, driver.phone) == ("Maria", "Lopez", "+16155550177")
    assert driver.phone_verified_at and driver.background_check_consent_at
    assert driver.birth_date == born_years_ago(25)
    assert (driver.vehicle_make, driver.vehicle_plate, driver.license_state) == ("Honda", "TN 4821", "TN")
    with driver.photo.open("rb") as f, Image.open(f) as photo:
        assert not photo.getexif()  # the GPS position is gone
    assert driver.license_document.name.endswith(".jpg") and driver.insurance_document.name.endswith(".pdf")
    assert ScreeningCase.objects.filter(driver=driver, status=ScreeningCase.Status.IN_REVIEW).exists()
