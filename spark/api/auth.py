"""POST /api/v1/auth/token/ with email + password returns a token for API clients.

The same rules as the web login (allauth) apply, so the API is not a way around them:
- failed attempts count against allauth's `login_failed` rate limit (per IP and per email);
- the email address must be verified (ACCOUNT_EMAIL_VERIFICATION = "mandatory");
- a user with MFA (TOTP / recovery codes) must also send `code`.
Use the token as `Authorization: Token <token>`.
"""

from allauth.account.adapter import get_adapter as get_account_adapter
from allauth.account.utils import has_verified_email
from allauth.mfa.base.forms import AuthenticateForm
from allauth.mfa.utils import is_mfa_enabled
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from accounts.adapter import login_failed_retry_after
from spark.api.schema import error_responses
from spark.errors import DomainError, NotPermitted
from spark.httpkit import client_ip

INVALID_CREDENTIALS = "Email or password is not correct."


class TokenRequestSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(trim_whitespace=False, write_only=True)
    code = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="Authenticator app (TOTP) or recovery code; required for accounts with two-factor authentication.",
    )


class LoginThrottle(AnonRateThrottle):
    """Every token request (right password or not) per client IP: a ceiling on how fast one
    client can try, on top of allauth's failed-login limits."""

    rate = "20/min"

    def get_ident(self, request) -> str:
        # DRF's own get_ident believes all of X-Forwarded-For unless told otherwise: use the
        # one rule (SPARK_TRUSTED_PROXIES hops) that allauth's limits use too.
        return client_ip(request)


def _locked_out(detail: str) -> exceptions.Throttled:
    """allauth's failed-login limit refused the attempt: 429 with the wait in Retry-After."""
    return exceptions.Throttled(wait=login_failed_retry_after(), detail=detail)


class ObtainTokenView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(
        operation_id="auth_token_create",
        request=TokenRequestSerializer,
        responses={
            200: inline_serializer("TokenResponse", {"token": serializers.CharField()}),
            **error_responses(400, 403, 429),
        },
        auth=[],
        description=(
            "Exchange email + password (and `code` for accounts with two-factor authentication) for an API "
            "token. Send it as `Authorization: Token <token>`."
        ),
    )
    def post(self, request):
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data["email"].lower()
        http_request = request._request  # allauth's rate limits work on the Django request
        try:
            user = get_account_adapter(http_request).authenticate(
                http_request, email=email, password=data.validated_data["password"]
            )
        except DjangoValidationError as exc:  # allauth: too_many_login_attempts
            raise _locked_out("Too many failed login attempts. Try again later.") from exc
        if user is None or not user.is_active:
            raise DomainError(INVALID_CREDENTIALS, code="invalid_credentials")
        if not has_verified_email(user, user.email):
            raise NotPermitted(
                "Confirm your email address first: open the link we emailed you, or log in on the website "
                "to get a new one.",
                code="email_not_verified",
            )
        if is_mfa_enabled(user):
            self._check_second_factor(user, data.validated_data.get("code", ""))
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

    def _check_second_factor(self, user, code: str) -> None:
        if not code:
            raise DomainError(
                "This account uses two-factor authentication: send the code from your authenticator app.",
                code="mfa_required",
                fields={"code": ["This field is required for this account."]},
            )
        form = AuthenticateForm(data={"code": code}, user=user)
        if not form.is_valid():
            messages = form.errors.get("code") or ["Incorrect code."]
            if any(e.code == "too_many_login_attempts" for e in form.errors.as_data().get("code", [])):
                raise _locked_out(str(messages[0]))
            raise DomainError(str(messages[0]), code="mfa_invalid", fields={"code": [str(m) for m in messages]})
        form.authenticator.record_usage()
