"""Anyone who reaches the Django admin must have TOTP (allauth.mfa) set up.

allauth asks for the second factor at every login of a user with an authenticator, so
"has TOTP" is the same as "this session passed MFA". Users without one are sent to set it
up. The admin's own login form (which would skip MFA) is replaced by allauth's login in
spark/urls.py.
"""

from django.conf import settings
from django.shortcuts import redirect
from django.urls import reverse


def user_has_totp(user) -> bool:
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def admin_mfa_satisfied(user) -> bool:
    if user.email in settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS:
        return True
    return user_has_totp(user)


class AdminMFAMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            request.path.startswith("/admin/")
            and user is not None
            and user.is_authenticated
            and user.is_staff
            and not admin_mfa_satisfied(user)
        ):
            return redirect(f"{reverse('mfa_activate_totp')}?next={request.path}")
        return self.get_response(request)
