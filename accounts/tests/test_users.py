"""The User model (email login, no username) and the admin-MFA helpers."""

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from accounts.middleware import admin_mfa_satisfied, user_has_totp

User = get_user_model()


@pytest.mark.django_db
class TestUserManager:
    def test_create_user_normalises_email_and_hashes_password(self):
        user = User.objects.create_user("Mixed.Case@Example.TEST", "s3cret-pass-1")
        assert user.email == "mixed.case@example.test"
        assert user.check_password("s3cret-pass-1") and user.password != "s3cret-pass-1"
        assert not user.is_staff and not user.is_superuser
        assert str(user) == "mixed.case@example.test"

    def test_email_is_required(self):
        with pytest.raises(ValueError):
            User.objects.create_user("", "x")

    def test_create_superuser(self):
        user = User.objects.create_superuser("root@example.test", "s3cret-pass-1")
        assert user.is_staff and user.is_superuser

    def test_email_unique_ignoring_case(self):
        User.objects.create_user("dup@example.test", "x")
        with pytest.raises(IntegrityError), transaction.atomic():
            User.objects.create(email="DUP@example.test")

    def test_no_username(self):
        assert User.USERNAME_FIELD == "email"
        assert not any(f.name == "username" for f in User._meta.get_fields())


@pytest.mark.django_db
class TestAdminMfaHelpers:
    def test_totp_satisfies(self):
        user = User.objects.create_user("staff@example.test", "x", is_staff=True)
        assert not user_has_totp(user) and not admin_mfa_satisfied(user)
        TOTP.activate(user, generate_totp_secret())
        assert user_has_totp(user) and admin_mfa_satisfied(user)

    def test_exempt_email_is_case_insensitive(self, settings):
        settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = ["OPS@spark.test"]
        user = User.objects.create_user("ops@spark.test", "x", is_staff=True)
        assert admin_mfa_satisfied(user)
        settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = []
        assert not admin_mfa_satisfied(user)
