"""The account rules every allauth flow goes through (drivers.adapter builds on this one).

- Client IP for allauth's per-IP rate limits: spark.httpkit.client_ip, so X-Forwarded-For is
  believed for exactly SPARK_TRUSTED_PROXIES hops, as everywhere else.
- Redirect targets (`next` on login, sign-up, logout, MFA pages): spark.httpkit's rule.
- The per-email failed-login lock does not stop the owner on a browser they signed in from
  before (accounts.known_devices); the per-IP limit still applies to everyone. A password
  reset clears the lock (allauth does that itself: finalize_password_reset).
"""

from allauth.account import app_settings as account_settings
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.utils import filter_users_by_email
from allauth.core import context
from allauth.core.internal import ratelimit

from spark.httpkit import client_ip, is_safe_redirect

from . import known_devices
from .middleware import DEFAULT_RETRY_AFTER_SECONDS

LOGIN_FAILED = "login_failed"


def _per_ip_login_failed_rates() -> str:
    """allauth's `login_failed` rates without the per-email part. The parts are kept as written:
    the cache key is made from the parsed rate ("10/m" and "10/60s" differ), and it must be the
    same key, one per-IP count for every login."""
    parts = (account_settings.RATE_LIMITS.get(LOGIN_FAILED) or "").split(",")
    return ",".join(p.strip() for p in parts if p.strip() and ratelimit.parse_rate(p.strip()).per == "ip")


def login_failed_retry_after() -> int:
    """Seconds to wait once the `login_failed` limit refused an attempt: its longest window.
    allauth does not say which part refused; after the longest window every part has room."""
    rates = ratelimit.parse_rates(account_settings.RATE_LIMITS.get(LOGIN_FAILED))
    return max((int(r.duration) for r in rates), default=DEFAULT_RETRY_AFTER_SECONDS)


class AccountAdapter(DefaultAccountAdapter):
    def get_client_ip(self, request) -> str:
        return client_ip(request)

    def is_safe_url(self, url) -> bool:
        return is_safe_redirect(context.request, url)

    def pre_authenticate(self, request, **credentials) -> None:
        email = credentials.get("email") or ""
        if email and known_devices.account_ids(request):
            user_ids = [u.pk for u in filter_users_by_email(email)]
            if known_devices.is_known(request, user_ids):
                # The owner's own browser: count the attempt against the IP only. allauth
                # rolls this usage back when the password is right, as it does normally.
                self._login_failed_rl_usage = ratelimit.consume(
                    request,
                    app="allauth.account",
                    action=LOGIN_FAILED,
                    config={LOGIN_FAILED: _per_ip_login_failed_rates()},
                )
                if not self._login_failed_rl_usage:
                    raise self.validation_error("too_many_login_attempts")
                return
        super().pre_authenticate(request, **credentials)

    def post_login(self, request, user, **kwargs):
        response = super().post_login(request, user, **kwargs)
        known_devices.remember(request, response, user)
        return response
