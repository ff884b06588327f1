"""Text messages and phone verification codes.

Sending goes through a backend chosen by ``settings.SPARK_SMS_BACKEND`` (read at send time,
so a test can switch it):

- ``"console"``: the message is logged (logger ``spark.sms``); the embedded default.
- ``"locmem"``: the message is appended to ``outbox``, for tests (like Django's locmem mail).
- a dotted path to a callable ``send(message: SmsMessage) -> None`` (a real provider).

Verification codes: ``send_verification_code`` texts a 6-digit code and returns a *ticket*,
a signed value (10 minutes) holding the user, the number, a random nonce and an HMAC of the
code; the caller keeps it in the session. The code itself is never stored. Wrong tries are
counted per ticket in the cache with an atomic increment (at most ``MAX_ATTEMPTS``), and
sending is rate-limited per user and per number (``RESEND_SECONDS`` between codes, at most
``MAX_SENDS_PER_HOUR``) so nobody can flood a phone or run up the SMS bill. The cache must be
shared by every web process (Redis in production) for these limits to hold across processes.
"""

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from spark.errors import DomainError

logger = logging.getLogger("spark.sms")

CODE_DIGITS = 6
CODE_TTL_SECONDS = 10 * 60
MAX_ATTEMPTS = 5
RESEND_SECONDS = 60
MAX_SENDS_PER_HOUR = 5

_SIGNER_SALT = "spark.drivers.sms.verification"


@dataclass
class SmsMessage:
    to: str
    body: str
    sent_at: datetime = field(default_factory=timezone.now)


# The "locmem" backend's messages, oldest first. Tests read and clear it.
outbox: list[SmsMessage] = []


class TooManyRequests(DomainError):
    status_code = 429
    code = "rate_limited"


def send_sms(to: str, body: str) -> SmsMessage:
    message = SmsMessage(to=to, body=body)
    backend = getattr(settings, "SPARK_SMS_BACKEND", "console")
    if backend == "locmem":
        outbox.append(message)
    elif backend == "console":
        logger.info("SMS to %s: %s", to, body)
    else:
        import_string(backend)(message)
    return message


# --- Verification codes --------------------------------------------------------------------


def _digest(nonce: str, code: str) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"{_SIGNER_SALT}:{nonce}:{code}".encode(), hashlib.sha256).hexdigest()


def _take_send_slot(key: str, *, window: int, limit: int) -> bool:
    """An atomic counter per window: True while under `limit`."""
    cache.add(key, 0, timeout=window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window)
        count = 1
    return count <= limit


def send_verification_code(*, user_id: int, phone: str) -> str:
    """Text a new code to `phone` and return the ticket to keep in the session.

    Raises TooManyRequests when the previous code was sent less than RESEND_SECONDS ago or
    MAX_SENDS_PER_HOUR codes went to this user or number within the hour; nothing is sent.
    """
    if not cache.add(f"sms:recent:{user_id}", 1, timeout=RESEND_SECONDS):
        raise TooManyRequests(
            ngettext(
                "We just sent you a code. You can ask for a new one after %(n)d second.",
                "We just sent you a code. You can ask for a new one after %(n)d seconds.",
                RESEND_SECONDS,
            )
            % {"n": RESEND_SECONDS},
            code="resend_too_soon",
        )
    phone_key = hashlib.sha256(phone.encode()).hexdigest()[:32]
    for key in (f"sms:hour:user:{user_id}", f"sms:hour:phone:{phone_key}"):
        if not _take_send_slot(key, window=3600, limit=MAX_SENDS_PER_HOUR):
            raise TooManyRequests(
                _("Too many codes were sent to this number. Please try again in an hour."),
                code="too_many_codes",
            )
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    nonce = secrets.token_urlsafe(12)
    minutes = CODE_TTL_SECONDS // 60
    send_sms(
        phone,
        _("Your Spark verification code is %(code)s. It expires in %(minutes)d minutes. Never share it.")
        % {"code": code, "minutes": minutes},
    )
    return signing.dumps({"u": user_id, "p": phone, "n": nonce, "h": _digest(nonce, code)}, salt=_SIGNER_SALT)


def check_verification_code(*, ticket: str | None, user_id: int, phone: str, code: str) -> None:
    """Return quietly when `code` is the one texted for this ticket, user and number; raise
    DomainError otherwise (expired, too many tries, or wrong, with the tries left)."""
    expired = DomainError(
        _("This code has expired or was never sent. Ask for a new code."),
        code="code_expired",
        fields={"code": [_("Ask for a new code.")]},
    )
    if not ticket:
        raise expired
    try:
        data = signing.loads(ticket, salt=_SIGNER_SALT, max_age=CODE_TTL_SECONDS)
    except signing.BadSignature:  # includes SignatureExpired
        raise expired from None
    if data.get("u") != user_id or data.get("p") != phone:
        raise expired
    attempts_key = f"sms:tries:{data['n']}"
    cache.add(attempts_key, 0, timeout=CODE_TTL_SECONDS)
    try:
        attempt = cache.incr(attempts_key)
    except ValueError:
        attempt = MAX_ATTEMPTS + 1  # the counter vanished: refuse rather than allow unlimited tries
    if attempt > MAX_ATTEMPTS:
        raise DomainError(
            _("Too many wrong codes. Ask for a new code."),
            code="too_many_attempts",
            fields={"code": [_("Ask for a new code.")]},
        )
    if not hmac.compare_digest(_digest(data["n"], code), data["h"]):
        left = MAX_ATTEMPTS - attempt
        if left == 0:
            message = _("That code is not right, and that was the last try. Ask for a new code.")
        else:
            message = ngettext(
                "That code is not right. You have %(left)d try left.",
                "That code is not right. You have %(left)d tries left.",
                left,
            ) % {"left": left}
        raise DomainError(message, code="wrong_code", fields={"code": [message]})
    cache.set(attempts_key, MAX_ATTEMPTS + 1, timeout=CODE_TTL_SECONDS)  # a ticket verifies once
