"""Accounts through allauth: signup with email verification, password reset, and TOTP MFA for the admin."""

import os
import re
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.urls import reverse

from spark import vapidkeys
from stores.tests.factories import UserFactory

PASSWORD = "pw-for-tests-1"  # UserFactory's
NEW_PASSWORD = "Grocery-Run-2025!"
User = get_user_model()


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # allauth rate limits and "TOTP code already used" marks live in the cache.
    cache.clear()
    yield
    cache.clear()


def verified_user(**kwargs):
    user = UserFactory(**kwargs)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def totp_user(**kwargs):
    user = verified_user(**kwargs)
    secret = generate_totp_secret()
    TOTP.activate(user, secret)  # what allauth's "activate TOTP" view stores (encrypted secret)
    return user, secret


def totp_code(secret: str, offset: int = 0) -> str:
    if 30 - time.time() % 30 < 2:  # allauth allows no clock tolerance: do not straddle a 30 s step
        time.sleep(2.1)
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30 + offset))


def link_in(message) -> str:
    match = re.search(r"https?://testserver(/\S+)", message.body)
    assert match, message.body
    return match.group(1)


def path_of(response) -> str:
    return urlsplit(response["Location"]).path


def logged_in_user(client):
    response = client.get(reverse("home"))
    return response.context["user"] if response.status_code == 200 else None


# --- signup, verification, login ---------------------------------------------------------------------


@pytest.mark.django_db
class TestSignupAndVerification:
    def test_signup_sends_mail_confirm_link_then_login(self, client):
        response = client.post(
            reverse("account_signup"),
            {"email": "New.Driver@Example.test", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        assert response.status_code == 302
        assert path_of(response) == reverse("account_email_verification_sent")
        user = User.objects.get(email="new.driver@example.test")
        assert not EmailAddress.objects.get(user=user).verified
        assert logged_in_user(client) is None  # not logged in before verifying

        assert len(mail.outbox) == 1
        message = mail.outbox[0]
        assert message.to == ["new.driver@example.test"]
        confirm_path = link_in(message)
        assert confirm_path.startswith("/accounts/confirm-email/")

        assert client.get(confirm_path).status_code == 200  # confirmation page; GET changes nothing
        assert not EmailAddress.objects.get(user=user).verified
        response = client.post(confirm_path)
        assert response.status_code == 302
        assert EmailAddress.objects.get(user=user).verified

        client.logout()
        response = client.post(reverse("account_login"), {"login": "new.driver@example.test", "password": NEW_PASSWORD})
        # A newcomer with no role is a prospective driver: the sign-up wizard comes next.
        assert response.status_code == 302 and path_of(response) == "/driver/join/start/"
        assert logged_in_user(client) == user

    def test_login_before_verification_is_refused(self, client):
        client.post(
            reverse("account_signup"),
            {"email": "early@example.test", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        client.logout()
        mail.outbox.clear()
        response = client.post(reverse("account_login"), {"login": "early@example.test", "password": NEW_PASSWORD})
        assert response.status_code == 302
        assert path_of(response) == reverse("account_email_verification_sent")
        assert logged_in_user(client) is None
        assert client.get(reverse("home")).status_code == 302

    def test_signup_rejects_weak_password_and_duplicate_email(self, client):
        verified_user(email="taken@example.test")
        response = client.post(
            reverse("account_signup"), {"email": "weak@example.test", "password1": "12345678", "password2": "12345678"}
        )
        assert response.status_code == 200 and response.context["form"].errors
        response = client.post(
            reverse("account_signup"),
            {"email": "TAKEN@example.test", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
        )
        # Enumeration-safe: the page looks like any signup (check your inbox), no second account
        # is made, and the mail goes to the owner of the address, telling them they have one.
        assert response.status_code == 302
        assert path_of(response) == reverse("account_email_verification_sent")
        assert User.objects.filter(email__iexact="taken@example.test").count() == 1
        assert [m.to for m in mail.outbox] == [["taken@example.test"]]
        assert "already" in mail.outbox[0].body
        assert not User.objects.filter(email="weak@example.test").exists()

    def test_wrong_password_is_refused(self, client):
        verified_user(email="known@example.test")
        response = client.post(reverse("account_login"), {"login": "known@example.test", "password": "wrong"})
        assert response.status_code == 200 and response.context["form"].errors
        assert logged_in_user(client) is None


@pytest.mark.django_db
class TestLoginPage:
    @pytest.mark.parametrize(
        ("next_url", "heading"),
        [
            ("/driver/offers/", "Log in to the Spark Driver app"),
            ("/dashboard/", "Log in to the store dashboard"),
            ("/admin/", "Log in to Spark ops (the admin)"),
            ("", "Log in to Spark"),
            ("https://evil.example/driver/", "Log in to Spark"),
        ],
    )
    def test_login_page_says_which_app_it_opens(self, client, next_url, heading):
        res = client.get("/accounts/login/", {"next": next_url} if next_url else {})
        assert res.status_code == 200
        assert re.search(r"<h1>\s*" + re.escape(heading) + r"\s*</h1>", res.content.decode()), heading
        assert 'class="ob"' in res.content.decode()  # the sign-up's look, not allauth's bare page

    def test_login_page_in_spanish(self, client):
        res = client.get("/accounts/login/", {"next": "/driver/"}, HTTP_ACCEPT_LANGUAGE="es")
        assert "Inicia sesión en la app Spark Driver" in res.content.decode()

    def test_wrong_password_is_told_on_the_spark_page(self, client):
        user = verified_user()
        res = client.post("/accounts/login/", {"login": user.email, "password": "wrong-password-x"})
        assert res.status_code == 200
        assert 'id="form-errors"' in res.content.decode() and "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_language_someone_uses_the_app_in_is_kept_for_later_emails(client, settings):
    # Emails sent later by a worker (a released seat, a pay change) have no request to take
    # the language from: the account keeps the last one the person used.
    user = verified_user()
    client.force_login(user)
    client.get("/", HTTP_ACCEPT_LANGUAGE="es")
    user.refresh_from_db()
    assert user.language == "es" and user.writing_language == "es"
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"  # the EN switch
    client.get("/")
    user.refresh_from_db()
    assert user.language == "en"
    client.get("/api/v1/me/", HTTP_ACCEPT_LANGUAGE="es")  # an API client's language is its own
    user.refresh_from_db()
    assert user.language == "en"
    client.logout()
    client.get("/", HTTP_ACCEPT_LANGUAGE="es")  # anonymous: nobody to remember it for
    user.refresh_from_db()
    assert user.language == "en"


@pytest.mark.django_db
class TestPasswordReset:
    def test_reset_mail_and_link_sets_new_password(self, client):
        user = verified_user(email="forgot@example.test")
        response = client.post(reverse("account_reset_password"), {"email": "forgot@example.test"})
        assert response.status_code == 302
        assert path_of(response) == reverse("account_reset_password_done")
        assert len(mail.outbox) == 1 and mail.outbox[0].to == ["forgot@example.test"]

        reset_path = link_in(mail.outbox[0])
        response = client.get(reset_path)  # allauth moves the key into the session and redirects
        assert response.status_code == 302
        set_password_path = response["Location"]
        assert client.get(set_password_path).status_code == 200
        response = client.post(set_password_path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
        assert response.status_code == 302
        assert path_of(response) == reverse("account_reset_password_from_key_done")

        user.refresh_from_db()
        assert user.check_password(NEW_PASSWORD) and not user.check_password(PASSWORD)
        response = client.post(reverse("account_login"), {"login": "forgot@example.test", "password": NEW_PASSWORD})
        assert response.status_code == 302 and logged_in_user(client) == user

        # The link works once.
        client.logout()
        response = client.get(reset_path, follow=True)
        assert b"password1" not in response.content

    def test_unknown_email_sends_no_reset_link(self, client):
        response = client.post(reverse("account_reset_password"), {"email": "nobody@example.test"})
        assert response.status_code == 302  # same answer: does not reveal who has an account
        assert all("/accounts/password/reset/key/" not in m.body for m in mail.outbox)


# --- admin: TOTP required for staff ------------------------------------------------------------------


@pytest.mark.django_db
class TestAdminMFA:
    def test_anonymous_admin_goes_to_allauth_login(self, client):
        response = client.get("/admin/")
        assert response.status_code == 302
        response = client.get(response["Location"])
        assert response.status_code == 302
        assert path_of(response) == reverse("account_login")
        assert "next=%2Fadmin%2F" in response["Location"]

    def test_admin_login_page_redirects_anonymous_to_allauth(self, client):
        for method in (client.get, client.post):
            response = method("/admin/login/")
            assert response.status_code == 302 and path_of(response) == reverse("account_login")

    def test_admin_login_form_cannot_be_used_to_skip_mfa(self, client):
        staff, _ = totp_user(email="boss@example.test", is_staff=True, is_superuser=True)
        client.force_login(verified_user(email="plain@example.test"))
        response = client.post("/admin/login/", {"username": "boss@example.test", "password": PASSWORD})
        assert response.status_code == 403
        assert logged_in_user(client).email == "plain@example.test"

    def test_staff_without_totp_is_sent_to_activate_totp(self, client):
        client.force_login(verified_user(is_staff=True))
        response = client.get("/admin/orders/")
        assert response.status_code == 302
        assert path_of(response) == reverse("mfa_activate_totp")
        assert "next=%2Fadmin%2Forders%2F" in response["Location"]
        # allauth asks for the password again first (force_login left no login record), then shows the page.
        assert client.get(response["Location"], follow=True).status_code == 200

    def test_staff_with_totp_reaches_admin_index(self, client):
        staff, _ = totp_user(is_staff=True)
        client.force_login(staff)
        response = client.get("/admin/")
        assert response.status_code == 200
        assert b"Spark ops" in response.content

    def test_login_of_totp_user_requires_the_code(self, client):
        staff, secret = totp_user(email="ops2@example.test", is_staff=True, is_superuser=True)
        response = client.post(
            reverse("account_login") + "?next=/admin/", {"login": "ops2@example.test", "password": PASSWORD}
        )
        assert response.status_code == 302 and path_of(response) == reverse("mfa_authenticate")
        assert logged_in_user(client) is None
        assert client.get("/admin/").status_code == 302  # still out

        wrong = "000000" if totp_code(secret) != "000000" else "111111"
        response = client.post(reverse("mfa_authenticate"), {"code": wrong})
        assert response.status_code == 200 and logged_in_user(client) is None

        response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
        assert response.status_code == 302 and path_of(response) == "/admin/"
        assert client.get("/admin/").status_code == 200
        assert Authenticator.objects.get(user=staff, type=Authenticator.Type.TOTP).last_used_at is not None

    def test_exempt_email_skips_mfa(self, client, settings):
        settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = ["Demo-Ops@Example.test"]
        client.force_login(verified_user(email="demo-ops@example.test", is_staff=True))
        assert client.get("/admin/").status_code == 200

    def test_production_pins_exemptions_empty(self, settings):
        vapid = vapidkeys.new_pair()
        env = {
            **os.environ,
            "DJANGO_SECRET_KEY": "x" * 60,
            "DJANGO_ALLOWED_HOSTS": "spark.example",
            "DATABASE_URL": "postgres://u:p@db:5432/spark",
            "REDIS_URL": "redis://redis:6379/0",
            "STRIPE_SECRET_KEY": "sk_test_x",
            "STRIPE_WEBHOOK_SECRET": "whsec_x",
            "SPARK_SCREENING_WEBHOOK_SECRET": "screening-secret-x",
            "SPARK_SMS_BACKEND": "spark.tests.fake_sms.send",
            "SPARK_PUBLIC_URL": "https://spark.example",
            "SPARK_VAPID_PRIVATE_KEY": vapid.private_key,
            "SPARK_VAPID_PUBLIC_KEY": vapid.public_key,
            "SPARK_VAPID_SUBJECT": "mailto:ops@spark.example",
            "SPARK_CONTACT_BACKEND": "spark.tests.fake_proxy.open_session",
        }
        code = "import spark.settings.production as p; print(repr(p.SPARK_ADMIN_MFA_EXEMPT_EMAILS))"
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "[]"

    def test_non_staff_gets_no_admin(self, client):
        client.force_login(verified_user())
        assert client.get("/admin/").status_code == 403
        assert client.get("/admin/login/").status_code == 403
        assert client.get("/admin/orders/order/").status_code == 403

    def test_inactive_staff_gets_no_admin(self, client):
        user, _ = totp_user(is_staff=True)
        client.force_login(user)
        User.objects.filter(pk=user.pk).update(is_active=False)
        response = client.get("/admin/")
        # A deactivated account's session no longer counts: it is sent to log in again.
        assert response.status_code == 302
        assert "login" in path_of(response)
        assert b"Spark ops" not in response.content

    def test_staff_with_totp_on_admin_login_page_goes_to_admin(self, client):
        staff, _ = totp_user(is_staff=True)
        client.force_login(staff)
        response = client.get("/admin/login/?next=/admin/orders/")
        assert response.status_code == 302 and response["Location"] == "/admin/orders/"
        response = client.get("/admin/login/?next=https://evil.example/")
        assert response.status_code == 302 and response["Location"] == "/admin/"
