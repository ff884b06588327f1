"""Calls and texts without sharing numbers: a driver on a batch reaches the customer of an open
stop, or the store, through a masked-number (proxy) provider. The driver dials or texts the
proxy number the provider lends for the session; the provider bridges it to the other party
and shows them the proxy too. Neither side ever sees the other's real number, and nothing
here hands the real numbers to a surface.

The provider is chosen by ``settings.SPARK_CONTACT_BACKEND`` (read at call time, like the SMS
backend in drivers/sms.py):

- ``"console"``: logs the session (logger ``spark.contact``) and lends ``CONSOLE_PROXY_NUMBER``,
  a fictional 555-01xx number; the embedded default and the tests. Production refuses it.
- a dotted path to a callable ``open_session(request: ProxyRequest) -> ProxySession``.

A session is kept in the cache for its lifetime per (driver, batch, party), so tapping Call
and then Text, or tapping twice, reuses it instead of renting another number.
"""

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from drivers.models import Driver
from spark.errors import Conflict

from .models import Batch, Stop

logger = logging.getLogger("spark.contact")

# Fictional (555-0100 to 555-0199 are reserved for fiction): nobody is ever reached by it.
CONSOLE_PROXY_NUMBER = "+16155550188"
SESSION_TTL = timedelta(hours=2)

OPEN_STOP_STATUSES = (Stop.Status.PENDING, Stop.Status.ARRIVED)

# A customer's delivery note that asks for a call ("call me when here", "llámame al llegar").
_CALL_WORDS = re.compile(r"\b(call|phone|ll[aá]m\w*|tel[eé]fono)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ProxyRequest:
    """What the provider needs to bridge the two parties; never shown to either."""

    reference: str  # ours: which batch and party the session is for
    driver_phone: str
    other_phone: str
    ttl_seconds: int


@dataclass(frozen=True)
class ProxySession:
    session_id: str
    proxy_number: str


@dataclass(frozen=True)
class ContactSession:
    """What the driver's app gets: the number to dial or text, and until when it works."""

    party: str  # "customer" or "store"
    session_id: str
    proxy_number: str
    expires_at: datetime


def _console_open_session(request: ProxyRequest) -> ProxySession:
    session_id = f"console-{secrets.token_hex(8)}"
    logger.info(
        "Masked session %s (%s): %s <-> %s via %s",
        session_id,
        request.reference,
        request.driver_phone,
        request.other_phone,
        CONSOLE_PROXY_NUMBER,
    )
    return ProxySession(session_id=session_id, proxy_number=CONSOLE_PROXY_NUMBER)


def _open_with_provider(request: ProxyRequest) -> ProxySession:
    backend = getattr(settings, "SPARK_CONTACT_BACKEND", "console")
    if backend == "console":
        return _console_open_session(request)
    return import_string(backend)(request)


def notes_ask_for_call(notes: str) -> bool:
    """Does the customer's delivery note ask to be called or texted? The stop then shows the
    Call button beside the note."""
    return bool(_CALL_WORDS.search(notes or ""))


def _require_active(batch: Batch) -> None:
    if batch.status not in Batch.ACTIVE_STATUSES:
        raise Conflict(_("This batch is no longer active: calls and texts are closed."), code="batch_not_active")


def _session(*, driver: Driver, batch: Batch, party: str, other_phone: str) -> ContactSession:
    if not driver.phone:
        raise Conflict(_("Add your mobile number on your profile first."), code="no_driver_phone")
    key = f"contact:{driver.pk}:{batch.pk}:{party}"
    kept = cache.get(key)
    if isinstance(kept, ContactSession) and kept.expires_at > timezone.now() + timedelta(minutes=1):
        return kept
    proxy = _open_with_provider(
        ProxyRequest(
            reference=f"batch-{batch.pk}-{party}",
            driver_phone=driver.phone,
            other_phone=other_phone,
            ttl_seconds=int(SESSION_TTL.total_seconds()),
        )
    )
    session = ContactSession(
        party=party.split(":")[0],
        session_id=proxy.session_id,
        proxy_number=proxy.proxy_number,
        expires_at=timezone.now() + SESSION_TTL,
    )
    cache.set(key, session, timeout=int(SESSION_TTL.total_seconds()))
    return session


def contact_customer(*, driver: Driver, stop: Stop) -> ContactSession:
    """A masked session with the customer of `stop`: only while the driver's batch is active
    and the stop is not finished (409 otherwise)."""
    batch = stop.batch
    if batch.driver_id != driver.pk:
        raise Conflict(_("This batch is not yours."), code="not_your_batch")
    _require_active(batch)
    if stop.status not in OPEN_STOP_STATUSES:
        raise Conflict(_("This stop is finished: calls and texts to this customer are closed."), code="stop_finished")
    phone = stop.order.customer_phone
    if not phone:
        raise Conflict(
            _("The customer left no phone number. Follow the delivery notes, or ask for help."), code="no_phone"
        )
    return _session(driver=driver, batch=batch, party=f"customer:{stop.pk}", other_phone=phone)


def contact_store(*, driver: Driver, batch: Batch) -> ContactSession:
    """A masked session with the batch's store, while the batch is active (409 otherwise)."""
    if batch.driver_id != driver.pk:
        raise Conflict(_("This batch is not yours."), code="not_your_batch")
    _require_active(batch)
    phone = batch.store.phone
    if not phone:
        raise Conflict(_("The store has no phone number on file. Ask for help instead."), code="no_phone")
    return _session(driver=driver, batch=batch, party="store", other_phone=phone)
