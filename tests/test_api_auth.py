"""API authentication (token, store API keys), /api/v1/me/, the error body of every 4xx, and the schema."""

import hashlib
import io
import time

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.http import Http404
from django.urls import path
from drf_spectacular.validation import validate_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from drivers.models import Driver
from drivers.tests.factories import DriverFactory
from spark.errors import Conflict, DomainError, Gone, InvalidTransition, NotPermitted
from spark.roles import IsStoreIntegration
from stores.models import StoreApiKey, StoreMembership
from stores.services import store_api_key_create, store_api_key_revoke
from stores.tests.factories import StoreApiKeyFactory, StoreFactory, StoreMembershipFactory, UserFactory

PASSWORD = "pw-for-tests-1"  # UserFactory's
TOKEN_URL = "/api/v1/auth/token/"
ME_URL = "/api/v1/me/"
ERROR_KEYS = {"detail", "code", "fields"}


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # DRF throttles and allauth's login rate limits live in the cache: start every test clean.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api():
    return APIClient()


def verified_user(**kwargs):
    user = UserFactory(**kwargs)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == ERROR_KEYS, body
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["fields"], dict)
    if code is not None:
        assert body["code"] == code, body
    return body


def current_totp_code(secret: str) -> str:
    if 30 - time.time() % 30 < 2:  # allauth allows no clock tolerance: do not straddle a 30 s step
        time.sleep(2.1)
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


# --- store API keys: service and command ----------------------------------------------------------


@pytest.mark.django_db
class TestStoreApiKeyService:
    def test_create_returns_raw_key_once_and_stores_only_hash_and_prefix(self):
        store = StoreFactory()
        creator = UserFactory()
        key, raw = store_api_key_create(store=store, name="Shopify", created_by=creator)

        assert raw.startswith("spk_") and len(raw) >= 40
        key.refresh_from_db()
        assert key.store == store and key.name == "Shopify" and key.created_by == creator
        assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
        assert key.prefix == raw[:12] and raw.startswith(key.prefix)
        assert key.revoked_at is None and key.is_active

    def test_raw_key_is_not_stored_anywhere_in_the_row(self):
        key, raw = store_api_key_create(store=StoreFactory(), name="e-commerce")
        secret_part = raw[len(key.prefix) :]
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {StoreApiKey._meta.db_table} WHERE id = %s", [key.pk])
            row = cursor.fetchone()
        assert row is not None
        for value in row:
            text = str(value)
            assert raw not in text
            assert secret_part not in text
            assert secret_part[:16] not in text

    def test_keys_are_unique_and_high_entropy(self):
        store = StoreFactory()
        raws = {store_api_key_create(store=store, name=f"k{i}")[1] for i in range(20)}
        assert len(raws) == 20
        assert all(len(r) - len("spk_") >= 43 for r in raws)  # 32 random bytes, url-safe base64

    def test_name_is_required(self):
        with pytest.raises(DomainError) as exc:
            store_api_key_create(store=StoreFactory(), name="  ")
        assert "name" in exc.value.fields
        assert not StoreApiKey.objects.exists()

    def test_inactive_store_gets_no_key(self):
        with pytest.raises(DomainError):
            store_api_key_create(store=StoreFactory(is_active=False), name="x")

    def test_revoke_is_guarded_and_idempotent(self):
        key, _ = store_api_key_create(store=StoreFactory(), name="e-commerce")
        store_api_key_revoke(key=key)
        first = StoreApiKey.objects.get(pk=key.pk).revoked_at
        assert first is not None
        time.sleep(0.01)
        again = store_api_key_revoke(key=StoreApiKey.objects.get(pk=key.pk))
        assert again.revoked_at == first
        assert StoreApiKey.objects.get(pk=key.pk).revoked_at == first

    def test_management_command_prints_key_once(self, api):
        store = StoreFactory(number="4242")
        out, err = io.StringIO(), io.StringIO()
        call_command("create_store_api_key", "4242", "--name", "POS bridge", stdout=out, stderr=err)
        raw = out.getvalue().strip()
        assert raw.startswith("spk_")
        key = StoreApiKey.objects.get(store=store)
        assert key.name == "POS bridge" and key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
        assert "cannot be shown again" in err.getvalue() and raw not in err.getvalue()
        response = api.get(ME_URL, HTTP_AUTHORIZATION=f"Api-Key {raw}")
        assert response.status_code == 200 and response.json()["store_number"] == "4242"

    def test_management_command_unknown_store(self):
        with pytest.raises(CommandError, match="No store"):
            call_command("create_store_api_key", "does-not-exist", stdout=io.StringIO(), stderr=io.StringIO())


# --- Api-Key authentication --------------------------------------------------------------------------


@pytest.mark.django_db
class TestApiKeyAuthentication:
    def test_api_key_authenticates_as_the_store_integration(self, api):
        store = StoreFactory()
        key, raw = store_api_key_create(store=store, name="e-commerce")
        response = api.get(ME_URL, HTTP_AUTHORIZATION=f"Api-Key {raw}")
        assert response.status_code == 200
        assert response.json() == {
            "kind": "store_integration",
            "store_id": store.pk,
            "store_number": store.number,
            "store_name": store.name,
            "key_name": "e-commerce",
            "key_prefix": key.prefix,
        }
        key.refresh_from_db()
        assert key.last_used_at is not None

    @pytest.mark.urls(__name__)
    def test_request_auth_is_the_key_and_user_is_anonymous(self, api):
        key, raw = store_api_key_create(store=StoreFactory(), name="e-commerce")
        response = api.get("/t/whoami/", HTTP_AUTHORIZATION=f"Api-Key {raw}")
        assert response.status_code == 200
        assert response.json() == {"auth_key_id": key.pk, "user_authenticated": False}

    def test_one_store_can_have_several_keys(self, api):
        store = StoreFactory()
        (_, raw1), (_, raw2) = (store_api_key_create(store=store, name=n) for n in ("old", "new"))
        for raw, name in ((raw1, "old"), (raw2, "new")):
            response = api.get(ME_URL, HTTP_AUTHORIZATION=f"Api-Key {raw}")
            assert response.status_code == 200 and response.json()["key_name"] == name

    def test_revoked_key_is_401_and_other_keys_keep_working(self, api):
        store = StoreFactory()
        old, raw_old = store_api_key_create(store=store, name="old")
        _, raw_new = store_api_key_create(store=store, name="new")
        store_api_key_revoke(key=old)
        body = assert_error(api.get(ME_URL, HTTP_AUTHORIZATION=f"Api-Key {raw_old}"), 401, "authentication_failed")
        assert "revoked" in body["detail"]
        assert api.get(ME_URL, HTTP_AUTHORIZATION=f"Api-Key {raw_new}").status_code == 200

    @pytest.mark.parametrize("header", ["Api-Key spk_unknown-key-0000000000000000000000", "Api-Key ", "Api-Key    "])
    def test_unknown_or_empty_key_is_401(self, api, header):
        StoreApiKeyFactory()
        response = api.get(ME_URL, HTTP_AUTHORIZATION=header)
        assert_error(response, 401, "authentication_failed")
        assert "Api-Key" in response["WWW-Authenticate"]

    def test_key_of_inactive_store_is_401(self, api):
        store = StoreFactory()
        _, raw = store_api_key_create(store=store, name="e-commerce")
        store.is_active = False
        store.save(update_fields=["is_active"])
        assert_error(api.get(ME_URL, HTTP_AUTHORIZATION=f"Api-Key {raw}"), 401)

    def test_lookup_is_by_full_key_not_prefix(self, api):
        key, raw = store_api_key_create(store=StoreFactory(), name="e-commerce")
        assert_error(api.get(ME_URL, HTTP_AUTHORIZATION=f"Api-Key {key.prefix}"), 401)
        assert_error(api.get(ME_URL, HTTP_AUTHORIZATION=f"Api-Key {raw[:-1]}"), 401)
        assert_error(api.get(ME_URL, HTTP_AUTHORIZATION=f"Api-Key {key.key_hash}"), 401)


# --- token authentication ---------------------------------------------------------------------------


@pytest.mark.django_db
class TestTokenAuthentication:
    def test_token_then_me_with_roles(self, api):
        user = verified_user(email="sam@example.test")
        store = StoreFactory(number="0007")
        StoreMembershipFactory(user=user, store=store, role=StoreMembership.Role.MANAGER)
        StoreMembershipFactory(user=user, store=StoreFactory(is_active=False))  # not shown
        DriverFactory(user=user, status=Driver.Status.SUSPENDED, reason_code=Driver.ReasonCode.DOCUMENTS_EXPIRED)

        response = api.post(TOKEN_URL, {"email": "SAM@example.test", "password": PASSWORD}, format="json")
        assert response.status_code == 200, response.content
        token = response.json()["token"]
        assert set(response.json()) == {"token"}

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        me = client.get(ME_URL)
        assert me.status_code == 200
        body = me.json()
        assert body["kind"] == "user" and body["email"] == "sam@example.test" and body["is_ops"] is False
        assert body["driver"]["status"] == "suspended" and body["driver"]["can_work"] is False
        assert body["driver"]["reason"] == "License or insurance expired"
        assert body["stores"] == [
            {"store_id": store.pk, "store_number": "0007", "store_name": store.name, "role": "manager"}
        ]

    def test_same_token_on_second_login(self, api):
        verified_user(email="a@example.test")
        creds = {"email": "a@example.test", "password": PASSWORD}
        assert api.post(TOKEN_URL, creds, format="json").json() == api.post(TOKEN_URL, creds, format="json").json()

    def test_ops_user_me(self, api):
        user = verified_user(is_staff=True)
        api.force_authenticate(user)
        body = api.get(ME_URL).json()
        assert body["is_ops"] is True and body["driver"] is None and body["stores"] == []

    def test_wrong_password_is_400_with_error_body(self, api):
        verified_user(email="b@example.test")
        body = assert_error(
            api.post(TOKEN_URL, {"email": "b@example.test", "password": "nope"}, format="json"),
            400,
            "invalid_credentials",
        )
        assert body["fields"] == {}

    def test_unknown_email_looks_like_wrong_password(self, api):
        body = assert_error(
            api.post(TOKEN_URL, {"email": "nobody@example.test", "password": "x"}, format="json"),
            400,
            "invalid_credentials",
        )
        assert body["detail"] == "Email or password is not correct."

    def test_missing_fields_are_400_with_field_messages(self, api):
        body = assert_error(api.post(TOKEN_URL, {}, format="json"), 400, "invalid")
        assert set(body["fields"]) == {"email", "password"}
        assert all(isinstance(m, str) for msgs in body["fields"].values() for m in msgs)
        body = assert_error(api.post(TOKEN_URL, {"email": "not-an-email", "password": "x"}, format="json"), 400)
        assert list(body["fields"]) == ["email"]

    def test_inactive_user_gets_no_token(self, api):
        verified_user(email="c@example.test", is_active=False)
        assert_error(api.post(TOKEN_URL, {"email": "c@example.test", "password": PASSWORD}, format="json"), 400)

    def test_unverified_email_gets_no_token(self, api):
        user = UserFactory(email="d@example.test")
        EmailAddress.objects.create(user=user, email=user.email, verified=False, primary=True)
        body = assert_error(
            api.post(TOKEN_URL, {"email": "d@example.test", "password": PASSWORD}, format="json"),
            403,
            "email_not_verified",
        )
        assert "Confirm your email" in body["detail"]

    def test_mfa_user_needs_code(self, api):
        user = verified_user(email="mfa@example.test")
        secret = generate_totp_secret()
        TOTP.activate(user, secret)
        creds = {"email": "mfa@example.test", "password": PASSWORD}

        body = assert_error(api.post(TOKEN_URL, creds, format="json"), 400, "mfa_required")
        assert "code" in body["fields"]
        body = assert_error(api.post(TOKEN_URL, {**creds, "code": "000000"}, format="json"), 400, "mfa_invalid")
        response = api.post(TOKEN_URL, {**creds, "code": current_totp_code(secret)}, format="json")
        assert response.status_code == 200 and response.json()["token"]
        assert Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP).last_used_at is not None

    def test_failed_logins_are_rate_limited_per_email(self, api):
        verified_user(email="e@example.test")
        for _ in range(5):
            assert_error(api.post(TOKEN_URL, {"email": "e@example.test", "password": "bad"}, format="json"), 400)
        response = api.post(TOKEN_URL, {"email": "e@example.test", "password": PASSWORD}, format="json")
        assert_error(response, 429, "throttled")

    def test_bad_token_is_401(self, api):
        api.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
        response = api.get(ME_URL)
        assert_error(response, 401, "authentication_failed")
        assert "Token" in response["WWW-Authenticate"]

    def test_no_credentials_is_401(self, api):
        response = api.get(ME_URL)
        assert_error(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"] == "Token, Api-Key"

    def test_session_login_works_on_me(self, api):
        user = verified_user()
        api.force_login(user)
        assert api.get(ME_URL).json()["email"] == user.email


# --- the error body of every 4xx (test-only URLconf) -------------------------------------------------


class _Input(serializers.Serializer):
    count = serializers.IntegerField(min_value=1)
    note = serializers.CharField(max_length=5)

    def validate(self, attrs):
        if attrs["count"] == 13:
            raise serializers.ValidationError("Thirteen is not allowed.")
        return attrs


class _OneAMinute(AnonRateThrottle):
    rate = "1/min"
    scope = "test-one-a-minute"


class ErrorsView(APIView):
    permission_classes = [AllowAny]

    def get(self, request, kind):
        raise {
            "conflict": Conflict("Someone else claimed this batch first."),
            "invalid-transition": InvalidTransition("A delivered order cannot be cancelled."),
            "gone": Gone("This offer expired.", code="offer_expired"),
            "not-permitted": NotPermitted("Only managers may do this."),
            "domain": DomainError("Bad tip.", fields={"tip_cents": ["Must not be negative."]}),
            "http404": Http404("No Order matches the given query."),
            "django-validation": DjangoValidationError({"window_end": ["Ends before it starts."]}),
            "crash": RuntimeError("a bug"),
        }[kind]

    def post(self, request, kind):
        serializer = _Input(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data)


class ThrottledView(APIView):
    permission_classes = [AllowAny]
    throttle_classes = [_OneAMinute]

    def get(self, request):
        return Response({"ok": True})


class StaffOnlyView(APIView):
    def get(self, request):
        if not request.user.is_staff:
            from rest_framework.exceptions import PermissionDenied

            raise PermissionDenied()
        return Response({"ok": True})


class IntegrationOnlyView(APIView):
    permission_classes = [IsStoreIntegration]

    def get(self, request):
        return Response({"ok": True})


class WhoAmIView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        return Response(
            {
                "auth_key_id": request.auth.pk if isinstance(request.auth, StoreApiKey) else None,
                "user_authenticated": request.user.is_authenticated,
            }
        )


urlpatterns = [
    path("t/errors/<slug:kind>/", ErrorsView.as_view()),
    path("t/throttled/", ThrottledView.as_view()),
    path("t/staff/", StaffOnlyView.as_view()),
    path("t/integration/", IntegrationOnlyView.as_view()),
    path("t/whoami/", WhoAmIView.as_view()),
]


@pytest.mark.urls(__name__)
@pytest.mark.django_db
class TestErrorBody:
    @pytest.mark.parametrize(
        ("kind", "status", "code"),
        [
            ("conflict", 409, "conflict"),
            ("invalid-transition", 409, "invalid_transition"),
            ("gone", 410, "offer_expired"),
            ("not-permitted", 403, "forbidden"),
            ("domain", 400, "invalid"),
            ("http404", 404, "not_found"),
        ],
    )
    def test_domain_errors_and_404(self, api, kind, status, code):
        body = assert_error(api.get(f"/t/errors/{kind}/"), status, code)
        if kind == "domain":
            assert body["fields"] == {"tip_cents": ["Must not be negative."]}
        if kind == "http404":
            assert body["detail"] == "Not found."  # the model name is not leaked

    def test_validation_400_has_field_messages(self, api):
        body = assert_error(api.post("/t/errors/x/", {"count": 0, "note": "too long"}, format="json"), 400, "invalid")
        assert set(body["fields"]) == {"count", "note"}
        assert body["detail"] == "Some fields are not valid."

    def test_validation_400_non_field_error_is_the_detail(self, api):
        body = assert_error(api.post("/t/errors/x/", {"count": 13, "note": "ok"}, format="json"), 400, "invalid")
        assert body["detail"] == "Thirteen is not allowed." and body["fields"] == {}

    def test_django_validation_error_is_400(self, api):
        body = assert_error(api.get("/t/errors/django-validation/"), 400, "invalid")
        assert body["fields"] == {"window_end": ["Ends before it starts."]}

    def test_malformed_json_is_400(self, api):
        response = api.post("/t/errors/x/", data="{not json", content_type="application/json")
        assert_error(response, 400, "parse_error")

    def test_401_without_credentials(self, api):
        assert_error(api.get("/t/staff/"), 401, "not_authenticated")

    def test_403_authenticated_but_not_allowed(self, api):
        api.force_authenticate(UserFactory())
        assert_error(api.get("/t/staff/"), 403, "permission_denied")

    def test_403_permission_message(self, api):
        api.force_authenticate(UserFactory())
        body = assert_error(api.get("/t/integration/"), 403, "permission_denied")
        assert "Api-Key" in body["detail"]

    def test_405(self, api):
        assert_error(api.delete("/t/errors/conflict/"), 405, "method_not_allowed")

    def test_415(self, api):
        assert_error(api.post("/t/errors/x/", data="a", content_type="text/plain"), 415, "unsupported_media_type")

    def test_429_throttled_with_retry_after(self, api):
        assert api.get("/t/throttled/").status_code == 200
        response = api.get("/t/throttled/")
        assert_error(response, 429, "throttled")
        assert int(response["Retry-After"]) > 0

    def test_5xx_is_not_swallowed(self, api):
        with pytest.raises(RuntimeError):
            api.get("/t/errors/crash/")


# --- OpenAPI ------------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestSchema:
    def test_schema_is_public_and_valid(self, api):
        response = api.get("/api/schema/", {"format": "json"})
        assert response.status_code == 200
        schema = response.json()
        assert schema["openapi"].startswith("3.")
        validate_schema(schema)  # drf-spectacular's OpenAPI 3 JSON-schema check
        assert "/api/v1/me/" in schema["paths"] and "/api/v1/auth/token/" in schema["paths"]
        schemes = schema["components"]["securitySchemes"]
        assert {"tokenAuth", "storeApiKey"} <= set(schemes)
        me = schema["paths"]["/api/v1/me/"]["get"]
        assert {"200", "401"} <= set(me["responses"])
        assert schema["paths"]["/api/v1/auth/token/"]["post"].get("security") in (None, [], [{}])  # public
        assert set(schema["components"]["schemas"]["Error"]["required"]) == ERROR_KEYS

    def test_schema_yaml_default(self, api):
        response = api.get("/api/schema/")
        assert response.status_code == 200
        assert b"openapi:" in response.content

    def test_docs_render_for_anyone(self, api):
        response = api.get("/api/docs/")
        assert response.status_code == 200
        assert b"swagger" in response.content.lower()


def test_unknown_api_url_gets_the_json_error_body(client):
    res = client.get("/api/v1/no-such-thing/")
    assert res.status_code == 404
    assert res.json() == {"detail": "Not found.", "code": "not_found", "fields": {}}


def test_swagger_ui_is_served_without_a_cdn(client):
    page = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/" in page
