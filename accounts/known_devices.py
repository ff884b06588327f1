"""Browsers a person has signed in from before, remembered in a signed cookie.

Five wrong passwords for one email lock that account's password login for a few minutes
(allauth's `login_failed` limit, per email). Anybody who knows the email can set that off, so
the lock alone would let a stranger keep the owner out. A browser the owner signed in from
before carries this cookie (set on every successful login, for a year) and is let past the
per-email lock - never past the per-IP limit, which still stops a credential-stuffing attacker
whatever cookie it sends. The cookie is signed with SECRET_KEY and names the accounts (user
ids, the last few) that signed in on this browser; it proves nothing but that, and is HttpOnly.
"""

from django.conf import settings
from django.core import signing

COOKIE_NAME = "spark_device"
MAX_AGE_SECONDS = 365 * 24 * 3600
MAX_ACCOUNTS = 5  # a shared family tablet, a driver who is also a store associate
_SALT = "spark.accounts.known-device"


def account_ids(request) -> list[int]:
    """The accounts that signed in before on the browser that sent `request` (newest first)."""
    value = request.COOKIES.get(COOKIE_NAME)
    if not value:
        return []
    try:
        ids = signing.loads(value, salt=_SALT, max_age=MAX_AGE_SECONDS)
    except signing.BadSignature:  # tampered, expired, or signed with an older key
        return []
    if not isinstance(ids, list):
        return []
    return [i for i in ids if isinstance(i, int) and not isinstance(i, bool)]


def is_known(request, user_ids) -> bool:
    """Whether one of `user_ids` signed in before on this browser."""
    known = set(account_ids(request))
    return any(pk in known for pk in user_ids)


def remember(request, response, user) -> None:
    """Mark the browser as one `user` signs in from (on a successful login)."""
    ids = [user.pk, *(i for i in account_ids(request) if i != user.pk)][:MAX_ACCOUNTS]
    response.set_cookie(
        COOKIE_NAME,
        signing.dumps(ids, salt=_SALT),
        max_age=MAX_AGE_SECONDS,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
