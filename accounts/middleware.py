"""Who may reach the Django admin, and how they log in to it (AdminMFAMiddleware); and a
Retry-After on every 429 (RetryAfterMiddleware, at the end).

- Anonymous: the admin's own login form is never shown (it would skip MFA); /admin/login/
  sends them to allauth's login, which asks for the TOTP code of users who have one.
- Authenticated, not staff: 403 on every admin page. This also keeps the admin's password
  form unreachable for a logged-in non-staff user (who could otherwise post a staff
  member's password to it and become them without the second factor).
- Staff without a TOTP authenticator: sent to allauth's "activate TOTP" page first.
- Staff with TOTP: allauth asked for the code at login (every login of a user with an
  authenticator goes through the MFA stage), so they may proceed.
Emails in SPARK_ADMIN_MFA_EXEMPT_EMAILS (local settings only; production pins it empty)
skip the TOTP requirement.
"""

from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, resolve_url
from django.urls import NoReverseMatch, reverse

from spark.httpkit import safe_next


def user_has_totp(user) -> bool:
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def admin_mfa_satisfied(user) -> bool:
    exempt = {e.lower() for e in settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS}
    if (user.email or "").lower() in exempt:
        return True
    return user_has_totp(user)


def _safe_next(request, default: str) -> str:
    return safe_next(request, default, url=request.GET.get("next", ""))


class AdminMFAMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            admin_root = reverse("admin:index")
        except NoReverseMatch:  # a URLconf without the admin (e.g. a test-only one)
            admin_root = None
        if admin_root and request.path.startswith(admin_root):
            response = self._guard_admin(request, admin_root)
            if response is not None:
                return response
        return self.get_response(request)

    def _guard_admin(self, request, admin_root: str):
        user = getattr(request, "user", None)
        is_login_page = request.path == reverse("admin:login")
        if user is None or not user.is_authenticated:
            if is_login_page:
                next_url = _safe_next(request, admin_root)
                return redirect(f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': next_url})}")
            return None  # the admin redirects to its login page, which comes back here
        if not (user.is_active and user.is_staff):
            raise PermissionDenied("The ops admin is for Spark staff.")
        if not admin_mfa_satisfied(user):
            next_url = _safe_next(request, admin_root) if is_login_page else request.get_full_path()
            return redirect(f"{reverse('mfa_activate_totp')}?{urlencode({'next': next_url})}")
        if is_login_page:
            return redirect(_safe_next(request, admin_root))
        return None


DEFAULT_RETRY_AFTER_SECONDS = 60


class RetryAfterMiddleware:
    """Every 429 says when to try again. Our own limits set the exact wait (DRF throttles, the
    claim gate, the tracking page, driver location pings); allauth's rate-limited pages (login,
    sign-up, password reset, email confirmation) and the phone-code page do not, so they get a
    minute: the window of nearly every such limit, and a retry that comes too soon only gets
    another 429 with another minute."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 429 and not response.has_header("Retry-After"):
            response["Retry-After"] = str(DEFAULT_RETRY_AFTER_SECONDS)
        return response


class RememberLanguageMiddleware:
    """Keep the language a signed-in person uses the app in (LocaleMiddleware's choice: the
    EN/ES switch or the phone's Accept-Language) on their account, so what Spark sends them
    later from a worker (a released seat, a pay change, a failed payout) is in that language.
    Only pages count (the app's screens, where the choice is made; an API client's language is
    its own), and it writes only when it changed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        language = getattr(request, "LANGUAGE_CODE", "")
        if not response.get("Content-Type", "").startswith("text/html"):
            return response
        if user is not None and user.is_authenticated and language and language != user.language:
            if language in dict(settings.LANGUAGES):
                get_user_model().objects.filter(pk=user.pk).update(language=language)
                user.language = language
        return response
