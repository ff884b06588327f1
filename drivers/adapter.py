"""allauth account adapter: where people land after signing up or logging in.

Anyone who signs up on the public page is a prospective driver (store staff are invited,
ops are made in the admin), so after sign-up, email confirmation or login someone with no
role goes to the driver sign-up wizard, an applicant to their next step and an applicant
under review to their status page. Everybody else (store associates and managers, ops,
active drivers) lands where they always did (LOGIN_REDIRECT_URL). An explicit `?next=`
still wins over all of this (allauth checks it first).
"""

from django.urls import reverse

from accounts.adapter import AccountAdapter
from stores.models import StoreMembership

from .models import Driver


def onboarding_redirect_for(user) -> str | None:
    """The onboarding page `user` should land on, or None to keep the default."""
    if not (user and user.is_authenticated) or user.is_staff:
        return None
    driver = Driver.objects.filter(user=user).only("status").first()
    if driver is None:
        if StoreMembership.objects.filter(user=user).exists():
            return None
        return reverse("onboarding:start")
    if driver.status == Driver.Status.APPLICANT:
        return reverse("onboarding:start")
    if driver.status == Driver.Status.SCREENING:
        return reverse("onboarding:status")
    return None


class SparkAccountAdapter(AccountAdapter):
    def get_login_redirect_url(self, request):
        return onboarding_redirect_for(request.user) or super().get_login_redirect_url(request)

    def get_signup_redirect_url(self, request):
        return onboarding_redirect_for(request.user) or super().get_signup_redirect_url(request)
