"""Driver sign-up and onboarding through the Django test client: each wizard step's happy
path and bad input (a clear message per field, a 4xx, nothing changed), the SMS code rules,
uploads (EXIF stripped, type and size refused), submission to screening through the
contractor module, the status page, and who lands where after login."""

import re
from datetime import date, timedelta
from io import BytesIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from driver_app.onboarding_wizard import SMS_TICKET_SESSION_KEY
from drivers import onboarding_services as services
from drivers import sms
from drivers.models import Driver
from drivers.tests.factories import DriverFactory
from drivers.tests.helpers import JOIN, jpeg_bytes, profile_data, upload, verified
from payments.models import ScreeningCase
from spark.errors import DomainError
from stores.models import StoreMembership, Zone
from stores.tests.factories import StoreMembershipFactory, UserFactory, ZoneFactory

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"


# --- Helpers -----------------------------------------------------------------------------------


def png_bytes() -> bytes:
    out = BytesIO()
    Image.new("RGBA", (40, 30), (0, 120, 200, 255)).save(out, format="PNG")
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def future(days: int = 365) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


def complete_applicant(**overrides) -> Driver:
    """An applicant with every step done (not submitted)."""
    now = timezone.now()
    fields = {
        "status": Driver.Status.APPLICANT,
        "phone_verified_at": now,
        "background_check_consent_at": now,
        **overrides,
    }
    driver = DriverFactory(**fields)
    driver.photo.save("me.jpg", ContentFile(jpeg_bytes()), save=False)
    driver.license_document.save("license.jpg", ContentFile(jpeg_bytes()), save=False)
    driver.insurance_document.save("insurance.pdf", ContentFile(PDF), save=False)
    driver.save()
    verified(driver.user)
    return driver


def errors_of(response, field: str) -> list[str]:
    form = response.context["form"]
    return [str(e) for e in form.errors.get(field, [])]


@pytest.fixture(autouse=True)
def _media_and_sms(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SPARK_SMS_BACKEND = "locmem"
    sms.outbox.clear()
    yield
    sms.outbox.clear()


@pytest.fixture
def newcomer(db):
    return verified(UserFactory(email="newcomer@example.test", first_name="", last_name=""))


@pytest.fixture
def web(client, newcomer):
    client.force_login(newcomer)
    return client


@pytest.fixture
def applicant(web, zone, newcomer) -> Driver:
    """The newcomer after step 1 (profile saved)."""
    response = web.post(f"{JOIN}/profile/", profile_data(zone))
    assert response.status_code == 302, response.content
    return Driver.objects.get(user=newcomer)


# --- Landing, login and who lands where ------------------------------------------------------------


def test_landing_explains_the_job_and_pay_and_links_to_signup(client, zone):
    response = client.get(f"{JOIN}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Deliver groceries with Spark" in body
    assert "$4.00 for every batch" in body  # the zone's pay policy (defaults without one)
    assert "100%" in body
    assert f'href="/accounts/signup/?next={JOIN}/start/"' in body


@pytest.mark.parametrize(
    "path",
    [
        "start/",
        "profile/",
        "phone/",
        "vehicle/",
        "documents/",
        "background-check/",
        "background-check/authorize/",
        "review/",
        "status/",
    ],
)
def test_anonymous_visitors_are_sent_to_login(client, path):
    response = client.get(f"{JOIN}/{path}")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_signup_verify_email_and_land_on_the_wizard(client, zone):
    # given a newcomer on the sign-up page (Spark's own template)
    page = client.get("/accounts/signup/")
    assert page.status_code == 200 and b"Create your account" in page.content
    # when they sign up with email and password
    response = client.post(
        "/accounts/signup/",
        {"email": "New.Driver@Example.test", "password1": "a-Long-pass-92", "password2": "a-Long-pass-92"},
    )
    # then they are asked to verify the email, which was sent with a link
    assert response.status_code == 302 and "/accounts/confirm-email/" in response["Location"]
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", mail.outbox[0].body).group(1)
    # and confirming it (same browser) logs them in and opens the onboarding wizard
    response = client.post(link)
    assert response.status_code == 302 and response["Location"] == f"{JOIN}/start/"
    assert client.get(f"{JOIN}/start/")["Location"] == f"{JOIN}/profile/"


def test_signup_bad_input_shows_each_field(client):
    response = client.post("/accounts/signup/", {"email": "not-an-email", "password1": "short", "password2": "other"})
    assert response.status_code == 200  # allauth's own status for a refused form
    form = response.context["form"]
    assert form.errors.get("email")
    assert b"field-errors" in response.content


def login_location(client, user) -> str:
    verified(user)
    response = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.content
    return response["Location"]


def test_login_redirects_people_without_a_role_to_onboarding(client, db):
    assert login_location(client, UserFactory()) == f"{JOIN}/start/"


def test_login_redirects_applicants_and_drivers_under_review(client, db):
    assert login_location(client, DriverFactory(status=Driver.Status.APPLICANT).user) == f"{JOIN}/start/"
    client.logout()
    assert login_location(client, DriverFactory(status=Driver.Status.SCREENING).user) == f"{JOIN}/status/"


def test_staff_associates_and_active_drivers_still_land_on_home(client, db):
    associate = StoreMembershipFactory(role=StoreMembership.Role.ASSOCIATE).user
    assert login_location(client, associate) == "/"
    client.logout()
    assert login_location(client, DriverFactory(status=Driver.Status.ACTIVE).user) == "/"


def test_staff_login_is_unaffected(client, db):
    from django.test import override_settings

    ops = UserFactory(is_staff=True)
    with override_settings(SPARK_ADMIN_MFA_EXEMPT_EMAILS=[ops.email]):
        assert login_location(client, ops) == "/"


# --- Step 1: profile --------------------------------------------------------------------------------


def test_profile_creates_the_applicant_with_a_clean_photo(web, zone, newcomer):
    response = web.post(f"{JOIN}/profile/", profile_data(zone))
    assert response.status_code == 302 and response["Location"] == f"{JOIN}/phone/"
    driver = Driver.objects.get(user=newcomer)
    newcomer.refresh_from_db()
    assert (newcomer.first_name, newcomer.last_name) == ("Jane", "Rivera")
    assert driver.status == Driver.Status.APPLICANT
    assert driver.phone == "+16155550142" and driver.phone_verified_at is None
    assert driver.home_zone == zone
    with driver.photo.open("rb") as f, Image.open(f) as stored:
        assert stored.format == "JPEG"
        assert not stored.getexif()  # EXIF (the GPS position) stripped
    assert driver.photo.name.startswith("driver-photos/") and "me" not in driver.photo.name


def test_profile_blank_form_names_every_field_and_creates_nothing(web, zone, newcomer):
    response = web.post(f"{JOIN}/profile/", {})
    assert response.status_code == 400
    assert errors_of(response, "first_name") == ["Enter your first name."]
    assert errors_of(response, "last_name") == ["Enter your last name."]
    assert errors_of(response, "phone") == ["Enter your mobile number."]
    assert errors_of(response, "home_zone") == ["Choose the city where you want to deliver."]
    assert "photo" in errors_of(response, "photo")[0]
    assert not Driver.objects.filter(user=newcomer).exists()


@pytest.mark.parametrize(
    "phone", ["555-0142", "12345", "+1 (115) 555-0142", "call me", "615 555 01420", "+0044 20 7946 0958"]
)
def test_profile_refuses_a_bad_phone_number(web, zone, newcomer, phone):
    response = web.post(f"{JOIN}/profile/", profile_data(zone, phone=phone))
    assert response.status_code == 400
    assert "Enter a mobile number like (615) 555-0199" in errors_of(response, "phone")[0]
    assert not Driver.objects.filter(user=newcomer).exists()


@pytest.mark.parametrize(
    "typed,stored",
    [("615.555.0142", "+16155550142"), ("1 615 555 0142", "+16155550142"), ("+44 7700 900123", "+447700900123")],
)
def test_profile_accepts_usual_phone_formats(web, zone, newcomer, typed, stored):
    assert web.post(f"{JOIN}/profile/", profile_data(zone, phone=typed)).status_code == 302
    assert Driver.objects.get(user=newcomer).phone == stored


def test_profile_refuses_an_inactive_zone_and_a_file_that_is_not_an_image(web, zone, newcomer):
    closed = ZoneFactory(name="Memphis", slug="memphis", is_active=False)
    response = web.post(
        f"{JOIN}/profile/",
        profile_data(zone, home_zone=closed.pk, photo=upload("me.jpg", b"this is not a picture", "image/jpeg")),
    )
    assert response.status_code == 400
    assert errors_of(response, "home_zone") == ["Choose one of the cities where Spark is delivering."]
    assert "not a photo we can read" in errors_of(response, "photo")[0]
    assert not Driver.objects.filter(user=newcomer).exists()


def test_profile_edit_keeps_the_photo_and_a_new_number_must_be_verified_again(web, zone, applicant):
    Driver.objects.filter(pk=applicant.pk).update(phone_verified_at=timezone.now())
    photo = applicant.photo.name
    response = web.post(f"{JOIN}/profile/", profile_data(zone, phone="615-555-0143", photo=None))
    assert response.status_code == 302
    applicant.refresh_from_db()
    assert applicant.photo.name == photo
    assert applicant.phone == "+16155550143" and applicant.phone_verified_at is None


def test_profile_edit_with_the_same_number_keeps_it_verified(web, zone, applicant):
    Driver.objects.filter(pk=applicant.pk).update(phone_verified_at=timezone.now())
    assert web.post(f"{JOIN}/profile/", profile_data(zone, photo=None, first_name="Janet")).status_code == 302
    applicant.refresh_from_db()
    assert applicant.phone_verified_at is not None
    assert applicant.user.first_name == "Janet"


def test_steps_after_the_profile_need_the_profile_first(web):
    response = web.get(f"{JOIN}/vehicle/")
    assert response.status_code == 302 and response["Location"] == f"{JOIN}/profile/"


# --- Step 2: phone ----------------------------------------------------------------------------------


def sent_code() -> str:
    return re.search(r"\b(\d{6})\b", sms.outbox[-1].body).group(1)


def test_phone_code_happy_path(web, applicant):
    assert b"Text me a code" in web.get(f"{JOIN}/phone/").content
    response = web.post(f"{JOIN}/phone/", {"action": "send"})
    assert response.status_code == 302
    assert [m.to for m in sms.outbox] == ["+16155550142"]
    code = sent_code()
    assert code not in web.session[SMS_TICKET_SESSION_KEY]  # the session holds a signed hash, never the code
    response = web.post(f"{JOIN}/phone/", {"action": "verify", "code": f"{code[:3]} {code[3:]}"})
    assert response.status_code == 302 and response["Location"] == f"{JOIN}/vehicle/"
    applicant.refresh_from_db()
    assert applicant.phone_verified_at is not None


def test_wrong_code_is_refused_with_the_tries_left_and_changes_nothing(web, applicant):
    web.post(f"{JOIN}/phone/", {"action": "send"})
    code = sent_code()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    response = web.post(f"{JOIN}/phone/", {"action": "verify", "code": wrong})
    assert response.status_code == 400
    assert errors_of(response, "code") == ["That code is not right. You have 4 tries left."]
    applicant.refresh_from_db()
    assert applicant.phone_verified_at is None


def test_five_wrong_codes_lock_the_code(web, applicant):
    web.post(f"{JOIN}/phone/", {"action": "send"})
    code = sent_code()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for left in (4, 3, 2, 1):
        assert f"{left} tr" in errors_of(web.post(f"{JOIN}/phone/", {"action": "verify", "code": wrong}), "code")[0]
    last = web.post(f"{JOIN}/phone/", {"action": "verify", "code": wrong})
    assert "last try" in errors_of(last, "code")[0]
    # even the right code is refused now
    response = web.post(f"{JOIN}/phone/", {"action": "verify", "code": code})
    assert response.status_code == 400
    assert errors_of(response, "code") == ["Ask for a new code."]
    applicant.refresh_from_db()
    assert applicant.phone_verified_at is None


def test_an_expired_code_is_refused(web, applicant):
    web.post(f"{JOIN}/phone/", {"action": "send"})
    code = sent_code()
    with time_machine.travel(timezone.now() + timedelta(minutes=10, seconds=5)):
        response = web.post(f"{JOIN}/phone/", {"action": "verify", "code": code})
    assert response.status_code == 400
    assert errors_of(response, "code") == ["Ask for a new code."]
    applicant.refresh_from_db()
    assert applicant.phone_verified_at is None


def test_a_code_for_an_old_number_does_not_verify_the_new_one(web, zone, applicant):
    web.post(f"{JOIN}/phone/", {"action": "send"})
    code = sent_code()
    web.post(f"{JOIN}/profile/", profile_data(zone, phone="615-555-0199", photo=None))
    response = web.post(f"{JOIN}/phone/", {"action": "verify", "code": code})
    assert response.status_code == 400
    applicant.refresh_from_db()
    assert applicant.phone_verified_at is None


def test_code_format_and_missing_code(web, applicant):
    web.post(f"{JOIN}/phone/", {"action": "send"})
    response = web.post(f"{JOIN}/phone/", {"action": "verify", "code": "12ab"})
    assert errors_of(response, "code") == ["Enter the 6-digit code from the text message."]
    response = web.post(f"{JOIN}/phone/", {"action": "verify", "code": ""})
    assert response.status_code == 400
    assert errors_of(response, "code") == ["Enter the 6-digit code from the text message."]


def test_verifying_without_a_code_sent(web, applicant):
    response = web.post(f"{JOIN}/phone/", {"action": "verify", "code": "123456"})
    assert response.status_code == 400
    assert "Ask for a new code" in response.content.decode()


def test_resending_is_rate_limited(web, applicant):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert web.post(f"{JOIN}/phone/", {"action": "send"}).status_code == 302
        response = web.post(f"{JOIN}/phone/", {"action": "send"})
    assert response.status_code == 429
    assert "after 60 seconds" in response.content.decode()
    assert len(sms.outbox) == 1
    # a minute later a new code may go, up to five an hour
    for minute in (1, 2, 3, 4):
        with time_machine.travel(start + timedelta(minutes=minute, seconds=1), tick=False):
            assert web.post(f"{JOIN}/phone/", {"action": "send"}).status_code == 302
    with time_machine.travel(start + timedelta(minutes=6), tick=False):
        response = web.post(f"{JOIN}/phone/", {"action": "send"})
    assert response.status_code == 429 and "in an hour" in response.content.decode()
    assert len(sms.outbox) == 5


def test_only_the_latest_code_works(web, applicant):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        web.post(f"{JOIN}/phone/", {"action": "send"})
    first = sent_code()
    with time_machine.travel(start + timedelta(seconds=61), tick=False):
        web.post(f"{JOIN}/phone/", {"action": "send"})
        second = sent_code()
        if first != second:
            assert web.post(f"{JOIN}/phone/", {"action": "verify", "code": first}).status_code == 400
        assert web.post(f"{JOIN}/phone/", {"action": "verify", "code": second}).status_code == 302


def test_a_tampered_ticket_is_refused(applicant):
    ticket = sms.send_verification_code(user_id=applicant.user_id, phone=applicant.phone)
    code = sent_code()
    with pytest.raises(sms.DomainError) as exc:
        sms.check_verification_code(
            ticket=ticket[:-2] + "xx", user_id=applicant.user_id, phone=applicant.phone, code=code
        )
    assert exc.value.code == "code_expired"
    with pytest.raises(sms.DomainError):  # someone else's ticket
        sms.check_verification_code(ticket=ticket, user_id=applicant.user_id + 1, phone=applicant.phone, code=code)
    sms.check_verification_code(ticket=ticket, user_id=applicant.user_id, phone=applicant.phone, code=code)


def test_console_backend_logs_the_message(settings, caplog):
    settings.SPARK_SMS_BACKEND = "console"
    with caplog.at_level("INFO", logger="spark.sms"):
        sms.send_sms("+16155550100", "hello")
    assert "hello" in caplog.text and not sms.outbox


# --- Step 3: vehicle ---------------------------------------------------------------------------------


def vehicle_data(**overrides):
    return {
        "vehicle_type": "suv",
        "make": "Honda",
        "model": "CR-V",
        "color": "Silver",
        "plate": "abc-1234",
        "tote_capacity": "24",
        **overrides,
    }


def test_vehicle_happy_path(web, applicant):
    response = web.post(f"{JOIN}/vehicle/", vehicle_data())
    assert response.status_code == 302
    applicant.refresh_from_db()
    assert (
        applicant.vehicle_type,
        applicant.vehicle_make,
        applicant.vehicle_model,
        applicant.vehicle_color,
        applicant.vehicle_plate,
        applicant.vehicle_tote_capacity,
    ) == ("suv", "Honda", "CR-V", "Silver", "ABC 1234", 24)


def test_vehicle_bad_input(web, applicant):
    before = Driver.objects.filter(pk=applicant.pk).values().get()
    response = web.post(f"{JOIN}/vehicle/", vehicle_data(vehicle_type="bike", make="", plate="!", tote_capacity="0"))
    assert response.status_code == 400
    assert errors_of(response, "vehicle_type")
    assert errors_of(response, "make") == ["Enter the make, like Toyota."]
    assert "letters and numbers" in errors_of(response, "plate")[0]
    assert errors_of(response, "tote_capacity") == ["Enter how many grocery totes fit in your vehicle: 4 to 80."]
    assert Driver.objects.filter(pk=applicant.pk).values().get() == before


# --- Step 4: documents -------------------------------------------------------------------------------


def documents_data(**overrides):
    data = {
        "license_number": "d123-4567",
        "license_state": "TN",
        "license_expires_on": future(900),
        "license_document": upload("license.jpg", jpeg_bytes(size=(300, 200), gps=True)),
        "insurance_expires_on": future(120),
        "insurance_document": upload("insurance.pdf", PDF, "application/pdf"),
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_documents_happy_path_strips_exif_and_keeps_pdfs(web, applicant):
    response = web.post(f"{JOIN}/documents/", documents_data())
    assert response.status_code == 302
    applicant.refresh_from_db()
    assert applicant.license_number == "D1234567" and applicant.license_state == "TN"
    assert applicant.license_expires_on == date.today() + timedelta(days=900)
    with applicant.license_document.open("rb") as f, Image.open(f) as stored:
        assert stored.format == "JPEG" and not stored.getexif()
    assert applicant.insurance_document.name.endswith(".pdf")
    with applicant.insurance_document.open("rb") as f:
        assert f.read() == PDF


def test_a_refused_form_keeps_the_good_uploads_for_the_next_try(web, applicant, settings):
    # given a documents form refused for an expired date, with two good files
    response = web.post(f"{JOIN}/documents/", documents_data(insurance_expires_on=future(-1)))
    assert response.status_code == 400
    tokens = response.context["form"].kept_tokens
    assert set(tokens) == {"license_document", "insurance_document"}
    assert 'name="license_document_kept"' in response.content.decode()
    applicant.refresh_from_db()
    assert not applicant.license_document  # nothing saved on the profile
    # when the driver fixes the date and sends the form again without choosing the files again
    data = documents_data(
        license_document=None,
        insurance_document=None,
        license_document_kept=tokens["license_document"],
        insurance_document_kept=tokens["insurance_document"],
    )
    assert web.post(f"{JOIN}/documents/", data).status_code == 302
    # then the kept files are used, and the kept copies are removed
    applicant.refresh_from_db()
    assert applicant.license_document and applicant.insurance_document.name.endswith(".pdf")
    pending = settings.MEDIA_ROOT / "onboarding-pending"
    assert not any(pending.iterdir())


def test_a_kept_upload_token_of_someone_else_is_ignored(web, client, applicant, zone):
    response = web.post(f"{JOIN}/documents/", documents_data(insurance_expires_on=future(-1)))
    token = response.context["form"].kept_tokens["license_document"]
    other = DriverFactory(status=Driver.Status.APPLICANT, home_zone=zone)
    client.force_login(other.user)
    data = documents_data(license_document=None, license_document_kept=token)
    response = client.post(f"{JOIN}/documents/", data)
    assert response.status_code == 400
    assert errors_of(response, "license_document") == ["Upload a photo or PDF of your driver's license."]
    forged = web.post(f"{JOIN}/documents/", documents_data(license_document=None, license_document_kept="x:y:z"))
    assert forged.status_code == 400


def test_documents_refuse_an_image_with_too_many_pixels(web, applicant):
    huge = BytesIO()
    Image.new("1", (9000, 6000)).save(huge, format="PNG")  # 54 MP in a few KB
    response = web.post(
        f"{JOIN}/documents/", documents_data(license_document=upload("l.png", huge.getvalue(), "image/png"))
    )
    assert response.status_code == 400
    assert "more than 50 megapixels" in errors_of(response, "license_document")[0]


def test_documents_accept_png(web, applicant):
    data = documents_data(insurance_document=upload("card.png", png_bytes(), "image/png"))
    assert web.post(f"{JOIN}/documents/", data).status_code == 302
    applicant.refresh_from_db()
    assert applicant.insurance_document.name.endswith(".jpg")  # re-encoded like every picture


@pytest.mark.parametrize("days", [0, -1, -400])
def test_documents_refuse_expired_dates(web, applicant, days):
    response = web.post(
        f"{JOIN}/documents/", documents_data(license_expires_on=future(days), insurance_expires_on=future(days))
    )
    assert response.status_code == 400
    assert "must be in the future" in errors_of(response, "license_expires_on")[0]
    assert "must be in the future" in errors_of(response, "insurance_expires_on")[0]
    applicant.refresh_from_db()
    assert not applicant.license_document and applicant.license_number != "D1234567"


def test_documents_refuse_other_files_and_big_files(web, applicant):
    big = b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024)
    response = web.post(
        f"{JOIN}/documents/",
        documents_data(
            license_document=upload("license.txt", b"hello, I am text", "text/plain"),
            insurance_document=upload("insurance.pdf", big, "application/pdf"),
        ),
    )
    assert response.status_code == 400
    assert "not a JPEG, PNG or WebP picture or a PDF" in errors_of(response, "license_document")[0]
    assert "too large" in errors_of(response, "insurance_document")[0]
    applicant.refresh_from_db()
    assert not applicant.license_document and not applicant.insurance_document


def test_documents_refuse_a_gif_and_a_fake_pdf(web, applicant):
    gif = BytesIO()
    Image.new("RGB", (10, 10)).save(gif, format="GIF")
    response = web.post(
        f"{JOIN}/documents/",
        documents_data(
            license_document=upload("license.gif", gif.getvalue(), "image/gif"),
            insurance_document=upload("insurance.pdf", b"<html>not a pdf</html>", "application/pdf"),
        ),
    )
    assert response.status_code == 400
    assert errors_of(response, "license_document") and errors_of(response, "insurance_document")


def test_documents_are_required_the_first_time_and_blank_fields_are_named(web, applicant):
    response = web.post(f"{JOIN}/documents/", {})
    assert response.status_code == 400
    assert errors_of(response, "license_number") == ["Enter your driver's license number."]
    assert errors_of(response, "license_state") == ["Choose the state that issued your license."]
    assert errors_of(response, "license_expires_on") == ["Enter the expiry date of your driver's license."]
    assert errors_of(response, "license_document") == ["Upload a photo or PDF of your driver's license."]
    assert errors_of(response, "insurance_document") == ["Upload a photo or PDF of your insurance card."]


def test_documents_bad_date_state_and_number(web, applicant):
    response = web.post(
        f"{JOIN}/documents/", documents_data(license_expires_on="2027-02-30", license_state="ZZ", license_number="#1")
    )
    assert response.status_code == 400
    assert "4 to 20 letters and digits" in errors_of(response, "license_number")[0]
    assert errors_of(response, "license_expires_on") == ["Enter a real date, like 2027-05-31."]
    assert errors_of(response, "license_state") == ["Choose the state that issued your license."]


# --- Step 5: date of birth ---------------------------------------------------------------------------


def years_ago(years: int, days: int = 0) -> str:
    """The birthday of someone `years` old today in the zone (Chicago), `days` earlier."""
    today = timezone.localdate(timezone=ZoneInfo("America/Chicago"))
    try:
        then = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        then = date(today.year - years, 2, 28)
    return (then - timedelta(days=days)).isoformat()


@pytest.fixture
def of_age(web, applicant) -> Driver:
    """The applicant after the date-of-birth step."""
    assert web.post(f"{JOIN}/age/", {"birth_date": "1990-05-17"}).status_code == 302
    applicant.refresh_from_db()
    return applicant


def test_age_step_comes_before_the_background_check_and_says_the_rule(web, applicant):
    # given an applicant in a zone whose orders may contain alcohol, without a date of birth
    # when they open the background check
    response = web.get(f"{JOIN}/background-check/")
    # then they are sent to the date of birth first, which says how old they must be
    assert response["Location"] == f"{JOIN}/age/"
    assert web.get(f"{JOIN}/background-check/authorize/")["Location"] == f"{JOIN}/age/"
    page = web.get(f"{JOIN}/age/").content.decode()
    assert "To deliver in Nashville you must be 21 or older: orders there can include alcohol." in page


def test_age_of_25_is_saved_and_leads_to_the_background_check(web, applicant):
    response = web.post(f"{JOIN}/age/", {"birth_date": years_ago(25)})
    assert response.status_code == 302 and response["Location"] == f"{JOIN}/background-check/"
    applicant.refresh_from_db()
    assert applicant.birth_date.isoformat() == years_ago(25)


def test_under_21_in_an_alcohol_zone_is_refused_and_nothing_is_kept(web, applicant):
    # given a 20-year-old (21 tomorrow) in a zone that delivers alcohol
    response = web.post(f"{JOIN}/age/", {"birth_date": years_ago(21, days=-1)})
    # then a clear refusal, and no date of birth kept, and the later steps stay closed
    assert response.status_code == 403
    body = response.content.decode()
    assert 'id="age-refused"' in body and "We cannot take your application" in body
    assert "You must be 21 or older to deliver in Nashville" in body
    applicant.refresh_from_db()
    assert applicant.birth_date is None
    consent = web.post(f"{JOIN}/background-check/authorize/", {"agree": "on", "signature": "Jane Rivera"})
    assert consent["Location"] == f"{JOIN}/age/"
    applicant.refresh_from_db()
    assert applicant.background_check_consent_at is None
    # a 21st birthday today is old enough
    assert web.post(f"{JOIN}/age/", {"birth_date": years_ago(21)}).status_code == 302


def test_18_is_enough_where_no_alcohol_is_delivered(web, zone, applicant):
    Zone.objects.filter(pk=zone.pk).update(delivers_alcohol=False)
    assert "you must be 18 or older" in web.get(f"{JOIN}/age/").content.decode()
    refused = web.post(f"{JOIN}/age/", {"birth_date": years_ago(18, days=-3)})
    assert refused.status_code == 403 and "You must be 18 or older to deliver with Spark" in refused.content.decode()
    assert web.post(f"{JOIN}/age/", {"birth_date": years_ago(19)}).status_code == 302


@pytest.mark.parametrize(
    ("value", "status", "message"),
    [
        ("", 400, "Enter your date of birth."),
        ("31/02/1990", 400, "Enter a real date, like 1990-05-31."),
        ("1990-02-31", 400, "Enter a real date, like 1990-05-31."),
        ("<script>alert(1)</script>", 400, "Enter a real date, like 1990-05-31."),
        ("1900-01-01", 400, "That date of birth is not possible; check it and try again."),
        ("2999-01-01", 400, "That date of birth is not possible; check it and try again."),
    ],
)
def test_age_bad_input_is_refused_and_changes_nothing(web, applicant, value, status, message):
    response = web.post(f"{JOIN}/age/", {"birth_date": value})
    assert response.status_code == status
    assert errors_of(response, "birth_date") == [message]
    applicant.refresh_from_db()
    assert applicant.birth_date is None


def test_moving_to_an_alcohol_zone_rechecks_the_age(web, zone, applicant):
    # given a 19-year-old accepted in a zone without alcohol
    dry = ZoneFactory(name="Dry Town", slug="dry-town", delivers_alcohol=False)
    assert web.post(f"{JOIN}/profile/", profile_data(dry)).status_code == 302
    assert web.post(f"{JOIN}/age/", {"birth_date": years_ago(19)}).status_code == 302
    # when they move their home zone to one that delivers alcohol
    response = web.post(f"{JOIN}/profile/", profile_data(zone))
    # then the move is refused with the reason, and the zone stays
    assert response.status_code == 403
    assert "You must be 21 or older to deliver in Nashville" in errors_of(response, "home_zone")[0]
    applicant.refresh_from_db()
    assert applicant.home_zone_id == dry.pk


def test_the_consent_service_refuses_without_a_date_of_birth(applicant):
    with pytest.raises(DomainError) as refused:
        services.onboarding_record_consent(driver=applicant, signature="Jane Rivera", agreed=True)
    assert refused.value.code == "birth_date_required"
    applicant.refresh_from_db()
    assert applicant.background_check_consent_at is None


# --- Step 6: background check ------------------------------------------------------------------------


def test_disclosure_is_a_page_of_its_own(web, applicant, of_age):
    response = web.get(f"{JOIN}/background-check/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Disclosure regarding background investigation" in body
    assert "<form" not in body.split('id="disclosure"')[1].split("</article>")[0]


def test_consent_happy_path(web, applicant, of_age):
    applicant.user.refresh_from_db()
    response = web.post(f"{JOIN}/background-check/authorize/", {"agree": "on", "signature": " jane  RIVERA "})
    assert response.status_code == 302
    applicant.refresh_from_db()
    assert applicant.background_check_consent_at is not None
    record = applicant.history.first()
    assert "FCRA consent" in record.history_change_reason and "jane RIVERA" in record.history_change_reason


@pytest.mark.parametrize(("proxies", "recorded"), [(0, "127.0.0.1"), (1, "203.0.113.9")])
def test_consent_records_the_client_ip_behind_trusted_proxies_only(web, applicant, of_age, settings, proxies, recorded):
    settings.SPARK_TRUSTED_PROXIES = proxies
    response = web.post(
        f"{JOIN}/background-check/authorize/",
        {"agree": "on", "signature": "Jane Rivera"},
        HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9",
    )
    assert response.status_code == 302
    assert applicant.history.first().history_change_reason.endswith(f"ip {recorded}")


def test_consent_with_a_middle_name(web, applicant, of_age):
    assert (
        web.post(f"{JOIN}/background-check/authorize/", {"agree": "on", "signature": "Jane Marie Rivera"}).status_code
        == 302
    )


def test_consent_bad_input(web, applicant, of_age):
    response = web.post(f"{JOIN}/background-check/authorize/", {"signature": "Someone Else"})
    assert response.status_code == 400
    assert "authorize the background check" in errors_of(response, "agree")[0]
    assert errors_of(response, "signature") == ["Type your full name as it appears on your profile: Jane Rivera."]
    applicant.refresh_from_db()
    assert applicant.background_check_consent_at is None


# --- Step 7: review and submit -----------------------------------------------------------------------


def test_submit_with_steps_missing_is_refused_with_the_list(web, applicant):
    response = web.post(f"{JOIN}/review/", {"certify": "on"})
    assert response.status_code == 400
    body = response.content.decode()
    for missing in (
        "Mobile number verified",
        "Vehicle",
        "Driver&#x27;s license",
        "Proof of insurance",
        "Date of birth (old enough to drive here)",
        "Background check authorized",
    ):
        assert missing in body
    assert response.context["missing_now"][0] == "Mobile number verified"
    applicant.refresh_from_db()
    assert applicant.status == Driver.Status.APPLICANT
    assert not ScreeningCase.objects.filter(driver=applicant).exists()


def test_submit_needs_the_certification(client):
    driver = complete_applicant()
    client.force_login(driver.user)
    response = client.post(f"{JOIN}/review/", {})
    assert response.status_code == 400
    assert errors_of(response, "certify") == ["Confirm that the information you gave is true and complete."]
    driver.refresh_from_db()
    assert driver.status == Driver.Status.APPLICANT


def test_submit_refuses_a_document_that_expired_since(client):
    driver = complete_applicant(insurance_expires_on=date.today() - timedelta(days=1))
    client.force_login(driver.user)
    response = client.post(f"{JOIN}/review/", {"certify": "on"})
    assert response.status_code == 400
    assert response.context["missing_now"] == ["Proof of insurance"]
    driver.refresh_from_db()
    assert driver.status == Driver.Status.APPLICANT


def test_submit_complete_application_goes_to_screening(client):
    driver = complete_applicant()
    client.force_login(driver.user)
    assert b"Submit my application" in client.get(f"{JOIN}/review/").content
    response = client.post(f"{JOIN}/review/", {"certify": "on"})
    assert response.status_code == 302 and response["Location"] == f"{JOIN}/status/"
    driver.refresh_from_db()
    assert driver.status == Driver.Status.SCREENING
    assert ScreeningCase.objects.filter(driver=driver, status=ScreeningCase.Status.IN_REVIEW).count() == 1
    page = client.get(f"{JOIN}/status/")
    assert "Application under review — we will email you" in page.content.decode()
    # a second submit (double tap, back button) changes nothing
    assert client.post(f"{JOIN}/review/", {"certify": "on"})["Location"] == f"{JOIN}/status/"
    assert ScreeningCase.objects.filter(driver=driver).count() == 1


def test_submitted_application_can_no_longer_be_edited(client):
    driver = complete_applicant(status=Driver.Status.SCREENING)
    client.force_login(driver.user)
    for step in ("profile/", "phone/", "vehicle/", "documents/", "background-check/authorize/", "review/"):
        response = client.post(f"{JOIN}/{step}", vehicle_data())
        assert response.status_code == 302 and response["Location"] == f"{JOIN}/status/", step
    driver.refresh_from_db()
    assert driver.vehicle_make == "Toyota"


# --- Status page and drivers past onboarding ---------------------------------------------------------


def test_status_of_a_newcomer_lists_what_is_missing_with_links(web):
    response = web.get(f"{JOIN}/status/")
    body = response.content.decode()
    assert "Finish these steps" in body
    items = {row["item"].key: row for row in response.context["items"]}
    assert items["email"]["item"].done
    keys = ("profile", "phone", "vehicle", "license", "insurance", "birth_date", "consent")
    assert not any(items[k]["item"].done for k in keys)
    assert f'href="{JOIN}/vehicle/"' in body and f'href="{JOIN}/documents/"' in body


def test_status_says_email_verification_is_missing(client, db):
    user = UserFactory()
    EmailAddress.objects.create(user=user, email=user.email, verified=False, primary=True)
    client.force_login(user)
    items = {row["item"].key: row["item"] for row in client.get(f"{JOIN}/status/").context["items"]}
    assert not items["email"].done


def test_an_active_driver_visiting_the_wizard_sees_the_status_page(client):
    driver = complete_applicant(status=Driver.Status.ACTIVE)
    client.force_login(driver.user)
    for step in ("start/", "profile/", "phone/", "vehicle/", "background-check/", "review/"):
        response = client.get(f"{JOIN}/{step}")
        assert response.status_code == 302 and response["Location"] == f"{JOIN}/status/", step
    page = client.get(f"{JOIN}/status/").content.decode()
    assert "You're approved" in page.replace("&#x27;", "'") and 'href="/driver/"' in page


def test_a_suspended_driver_sees_the_reason_and_the_appeal(client):
    driver = complete_applicant(status=Driver.Status.SUSPENDED, reason_code=Driver.ReasonCode.QUALITY)
    client.force_login(driver.user)
    page = client.get(f"{JOIN}/status/").content.decode()
    assert "Your account is suspended" in page
    assert "Repeated delivery problems" in page
    assert 'href="/driver/standing/" id="appeal-link"' in page


def test_a_suspended_driver_renews_expired_documents_and_is_back_on(client):
    # given a driver suspended because the insurance expired
    driver = complete_applicant(
        status=Driver.Status.SUSPENDED,
        reason_code=Driver.ReasonCode.DOCUMENTS_EXPIRED,
        insurance_expires_on=date.today() - timedelta(days=2),
    )
    client.force_login(driver.user)
    assert "Upload the renewed document" in client.get(f"{JOIN}/status/").content.decode()
    data = documents_data(
        license_number=driver.license_number,
        license_expires_on=driver.license_expires_on,
        license_document=None,
        insurance_document=None,
    )
    # a new date without the new document is refused
    response = client.post(f"{JOIN}/documents/", data)
    assert response.status_code == 400
    assert errors_of(response, "insurance_document")
    driver.refresh_from_db()
    assert driver.insurance_expires_on < date.today()
    # with it, the driver is reinstated by the contractor module
    data["insurance_document"] = upload("new.pdf", PDF, "application/pdf")
    response = client.post(f"{JOIN}/documents/", data)
    assert response.status_code == 302 and response["Location"] == f"{JOIN}/status/"
    driver.refresh_from_db()
    assert driver.status == Driver.Status.ACTIVE
    assert driver.insurance_expires_on == date.today() + timedelta(days=120)


def test_a_deactivated_driver_cannot_use_the_documents_step(client):
    driver = complete_applicant(status=Driver.Status.DEACTIVATED, reason_code=Driver.ReasonCode.FRAUD)
    client.force_login(driver.user)
    assert client.get(f"{JOIN}/documents/")["Location"] == f"{JOIN}/status/"


def test_ops_asks_for_a_document_again_and_the_driver_uploads_it(client):
    from payments.contractor.services import screening_request_documents

    driver = complete_applicant()
    client.force_login(driver.user)
    client.post(f"{JOIN}/review/", {"certify": "on"})
    case = ScreeningCase.objects.get(driver=driver)
    screening_request_documents(case=case, actor=UserFactory(is_staff=True), note="The license photo is blurry.")
    page = client.get(f"{JOIN}/status/").content.decode()
    assert "We need a document from you again" in page and "The license photo is blurry." in page
    data = documents_data(
        license_number=driver.license_number,
        license_expires_on=driver.license_expires_on,
        insurance_expires_on=driver.insurance_expires_on,
        insurance_document=None,
    )
    response = client.post(f"{JOIN}/documents/", data)
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.status == ScreeningCase.Status.IN_REVIEW


def test_a_driver_disputes_the_report_from_the_status_page(client):
    driver = complete_applicant(status=Driver.Status.SCREENING)
    now = timezone.now()
    case = ScreeningCase.objects.create(
        driver=driver,
        status=ScreeningCase.Status.PRE_ADVERSE_NOTICE,
        submitted_at=now,
        decided_at=now,
        pre_adverse_sent_at=now,
        dispute_deadline_at=now + timedelta(days=7),
        result_summary="A 2019 conviction.",
    )
    client.force_login(driver.user)
    page = client.get(f"{JOIN}/status/").content.decode()
    assert "needs your attention" in page and "A 2019 conviction." in page
    response = client.post(f"{JOIN}/status/dispute/", {"text": ""})
    assert response.status_code == 400
    case.refresh_from_db()
    assert case.status == ScreeningCase.Status.PRE_ADVERSE_NOTICE
    response = client.post(f"{JOIN}/status/dispute/", {"text": "That is someone else with my name."})
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.status == ScreeningCase.Status.DISPUTED
    assert "reviewing your dispute" in client.get(f"{JOIN}/status/").content.decode()


def test_staff_are_unaffected_by_onboarding(client, db):
    # an associate's home page still works, and they have no driver profile made for them
    associate = StoreMembershipFactory(role=StoreMembership.Role.ASSOCIATE).user
    client.force_login(associate)
    assert client.get("/").status_code == 200
    assert not Driver.objects.filter(user=associate).exists()


def test_full_funnel_through_the_test_client(web, zone, newcomer):
    """Every step in order, as a newcomer would, ending under review."""
    assert web.get(f"{JOIN}/start/")["Location"] == f"{JOIN}/profile/"
    assert web.post(f"{JOIN}/profile/", profile_data(zone))["Location"] == f"{JOIN}/phone/"
    web.post(f"{JOIN}/phone/", {"action": "send"})
    assert web.post(f"{JOIN}/phone/", {"action": "verify", "code": sent_code()})["Location"] == f"{JOIN}/vehicle/"
    assert web.post(f"{JOIN}/vehicle/", vehicle_data())["Location"] == f"{JOIN}/documents/"
    assert web.post(f"{JOIN}/documents/", documents_data())["Location"] == f"{JOIN}/age/"
    assert web.post(f"{JOIN}/age/", {"birth_date": "1994-03-08"})["Location"] == f"{JOIN}/background-check/"
    assert web.get(f"{JOIN}/background-check/").status_code == 200
    response = web.post(f"{JOIN}/background-check/authorize/", {"agree": "on", "signature": "Jane Rivera"})
    assert response["Location"] == f"{JOIN}/review/"
    review = web.get(f"{JOIN}/review/")
    assert all(row["item"].done for row in review.context["items"])
    assert web.post(f"{JOIN}/review/", {"certify": "on"})["Location"] == f"{JOIN}/status/"
    assert Driver.objects.get(user=newcomer).status == Driver.Status.SCREENING
