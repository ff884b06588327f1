"""Web Push for targeted offers (pywebpush + VAPID).

A driver's browser subscribes with our VAPID public key (settings.SPARK_VAPID_PUBLIC_KEY) and
the subscription is stored here. When an offer is created, dispatch queues
`send_offer_push_task(offer.pk)` after commit; the task pushes a small encrypted notification
to every subscription of the driver.

A push is a courtesy, never part of dispatch: the offer is already in the database, shows in the
app and expires on its own. So nothing here raises to the caller. A push service that is down,
slow (5 s timeout) or answering errors only counts a failure on the subscription; a subscription
the push service says is gone (404/410) is deleted.

The payload carries what the lock screen shows (pay, stops, miles, countdown) and never a
customer's name or address.
"""

import ipaddress
import json
import logging
import math
from base64 import urlsafe_b64decode
from datetime import datetime
from urllib.parse import urlsplit

import requests
from celery import shared_task
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Least
from django.utils import timezone
from py_vapid import Vapid
from py_vapid.utils import b64urlencode
from pywebpush import WebPushException, webpush

from drivers.models import Driver, PushSubscription
from orders.models import Batch, Stop
from spark.errors import DomainError
from spark.geo import meters_to_miles
from spark.money import format_cents

from .models import Offer

logger = logging.getLogger(__name__)

PUSH_TIMEOUT_SECONDS = 5
# A driver's phone, tablet, a second browser...; older subscriptions beyond this are dropped so
# one account cannot make the worker fan out to thousands of endpoints.
MAX_SUBSCRIPTIONS_PER_DRIVER = 10
_FAILURES_CAP = 32767  # PositiveSmallIntegerField
_GONE_STATUSES = (404, 410)


# --- Subscriptions --------------------------------------------------------------------------


def _b64url_bytes(value: str, *, field: str) -> bytes:
    try:
        raw = value.strip().encode("ascii")
        return urlsafe_b64decode(raw.replace(b"+", b"-").replace(b"/", b"_") + b"=" * (-len(raw) % 4))
    except (ValueError, UnicodeError) as exc:
        raise DomainError(
            "The push subscription keys are not valid base64url.",
            code="invalid_subscription",
            fields={field: ["Not valid base64url."]},
        ) from exc


def _insecure_endpoints_allowed() -> bool:
    """Tests point subscriptions at a local HTTP server; real push services are always https."""
    return bool(getattr(settings, "SPARK_PUSH_ALLOW_INSECURE_ENDPOINTS", False))


def _endpoint_error(endpoint: str) -> str | None:
    if not endpoint:
        return "Required."
    if len(endpoint) > (PushSubscription._meta.get_field("endpoint").max_length or 1000):
        return "Too long."
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "Not a valid URL."
    if not host or parts.scheme not in ("https", "http"):
        return "Must be an https URL."
    if _insecure_endpoints_allowed():
        return None
    # The worker POSTs to this URL: keep it off our own network (no SSRF through a crafted
    # subscription). Real push services are public https hosts.
    if parts.scheme != "https":
        return "Must be an https URL."
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return "Must be a public push service."
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return None if ip.is_global else "Must be a public push service."


def _validate_endpoint(endpoint: str) -> str:
    endpoint = (endpoint or "").strip()
    error = _endpoint_error(endpoint)
    if error:
        raise DomainError(
            "The push subscription endpoint is not accepted.",
            code="invalid_subscription",
            fields={"endpoint": [error]},
        )
    return endpoint


def push_subscription_save(*, driver: Driver, endpoint: str, p256dh: str, auth: str) -> PushSubscription:
    """Store (or refresh) a browser's subscription. The endpoint is unique: a browser that
    was subscribed for another driver (shared phone, new login) now belongs to this driver."""
    endpoint = _validate_endpoint(endpoint)
    p256dh, auth = (p256dh or "").strip(), (auth or "").strip()
    public = _b64url_bytes(p256dh, field="p256dh")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
        valid_point = len(public) == 65
    except ValueError:
        valid_point = False
    if not valid_point:
        raise DomainError(
            "The push subscription key is not a P-256 public key.",
            code="invalid_subscription",
            fields={"p256dh": ["Expected the uncompressed P-256 point (65 bytes, base64url)."]},
        )
    secret = _b64url_bytes(auth, field="auth")
    if len(secret) != 16:
        raise DomainError(
            "The push subscription auth secret is not valid.",
            code="invalid_subscription",
            fields={"auth": ["Expected 16 bytes, base64url."]},
        )
    with transaction.atomic():
        subscription, _ = PushSubscription.objects.update_or_create(
            endpoint=endpoint,
            defaults={"driver": driver, "p256dh": p256dh, "auth": auth, "failures": 0},
        )
        # This browser stays; of the driver's others, the most recent ones up to the cap do.
        stale = list(
            PushSubscription.objects.filter(driver=driver)
            .exclude(pk=subscription.pk)
            .order_by("-created_at", "-pk")
            .values_list("pk", flat=True)[MAX_SUBSCRIPTIONS_PER_DRIVER - 1 :]
        )
        if stale:
            PushSubscription.objects.filter(pk__in=stale).delete()
    return subscription


def push_subscription_delete(*, driver: Driver, endpoint: str) -> int:
    """Forget a subscription (the driver turned notifications off). Only the driver's own."""
    deleted, _ = PushSubscription.objects.filter(driver=driver, endpoint=(endpoint or "").strip()).delete()
    return deleted


# --- VAPID ----------------------------------------------------------------------------------


def _setting(name: str) -> str:
    return (getattr(settings, name, "") or "").strip()


def _load_vapid(private_key: str) -> Vapid:
    """PEM (PKCS8 or SEC1; "\\n" escapes from a one-line env var are fine), or base64url of
    the raw 32-byte key or of the DER key, as pywebpush accepts."""
    key = private_key.replace("\\n", "\n").strip()
    if "-----BEGIN" in key:
        return Vapid.from_pem(key.encode())
    return Vapid.from_string(private_key=key)


def _vapid() -> Vapid | None:
    """The signing key when Web Push is fully and consistently configured, else None."""
    private_key = _setting("SPARK_VAPID_PRIVATE_KEY")
    public_key = _setting("SPARK_VAPID_PUBLIC_KEY")
    subject = _setting("SPARK_VAPID_SUBJECT")
    if not (private_key and public_key and subject):
        return None
    if not subject.startswith(("mailto:", "https://")):
        logger.error("SPARK_VAPID_SUBJECT must be a mailto: or https: URL; web push is off")
        return None
    try:
        vapid = _load_vapid(private_key)
        derived = b64urlencode(
            vapid.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        )
    except Exception:
        logger.error("SPARK_VAPID_PRIVATE_KEY cannot be read; web push is off", exc_info=True)
        return None
    if derived != public_key.rstrip("="):
        # Browsers subscribed with the public key; push services would refuse every message
        # signed with a key that does not match it.
        logger.error("SPARK_VAPID_PUBLIC_KEY does not belong to SPARK_VAPID_PRIVATE_KEY; web push is off")
        return None
    return vapid


def vapid_configured() -> bool:
    return _vapid() is not None


# --- Offers ---------------------------------------------------------------------------------


def _offer_stops(offer) -> int:
    batch = offer.batch
    if batch.stops_count:
        return batch.stops_count
    return batch.stops.exclude(status=Stop.Status.REMOVED).count()


def offer_push_payload(offer, *, now: datetime | None = None) -> dict:
    """What the notification shows. Pay (marked late once the pickup time has passed), stops,
    miles and the countdown; never a customer's name or address (the driver sees those only
    once the batch is theirs)."""
    now = now or timezone.now()
    pay = _offer_pay(offer)
    meters = pay.routed_meters if pay is not None else offer.batch.route_meters
    stops = _offer_stops(offer)
    seconds = max(0, math.floor((offer.expires_at - now).total_seconds()))
    title = f"New offer: {format_cents(pay.total_cents)}" if pay is not None else "New offer"
    if offer.batch.is_late(now):  # its pickup time has passed (the pay includes the late incentive)
        title = f"Late · {title}"
    return {
        "type": "offer",
        "offer_id": offer.pk,
        "batch_id": offer.batch_id,
        "title": title,
        "body": f"{stops} {'stop' if stops == 1 else 'stops'} · {meters_to_miles(meters)} mi · expires in {seconds} s",
        "url": "/driver/offers/",
        "tag": f"offer-{offer.pk}",
        "expires_at": offer.expires_at.isoformat(),
    }


def _offer_pay(offer):
    """The offer's pay snapshot (payments.OfferPaySnapshot), or None if it has none yet."""
    try:
        return offer.pay
    except ObjectDoesNotExist:
        return None


def _endpoint_host(endpoint: str) -> str:
    try:
        return urlsplit(endpoint).netloc or "?"
    except ValueError:
        return "?"


def _record_success(subscription: PushSubscription) -> None:
    PushSubscription.objects.filter(pk=subscription.pk).update(last_success_at=timezone.now(), failures=0)


def _record_failure(subscription: PushSubscription) -> None:
    PushSubscription.objects.filter(pk=subscription.pk).update(failures=Least(F("failures") + 1, Value(_FAILURES_CAP)))


def _push_one(
    subscription: PushSubscription, *, data: str, vapid: Vapid, subject: str, ttl: int, session: requests.Session
) -> bool:
    """One push; True when the push service accepted it. Never raises."""
    host = _endpoint_host(subscription.endpoint)
    try:
        webpush(
            subscription_info={
                "endpoint": subscription.endpoint,
                "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
            },
            data=data,
            vapid_private_key=vapid,
            vapid_claims={"sub": subject},  # a fresh dict: webpush fills in `aud` per endpoint
            ttl=ttl,
            timeout=PUSH_TIMEOUT_SECONDS,
            headers={"Urgency": "high"},
            requests_session=session,
        )
    except WebPushException as exc:
        status = getattr(exc.response, "status_code", None)
        if status in _GONE_STATUSES:
            logger.info("Push subscription %s gone (%s from %s); deleted", subscription.pk, status, host)
            PushSubscription.objects.filter(pk=subscription.pk).delete()
        else:
            logger.warning("Push to subscription %s at %s failed: %s", subscription.pk, host, status or exc.message)
            _safe(_record_failure, subscription)
        return False
    except Exception as exc:  # connection refused, timeout, TLS, a malformed stored key...
        logger.warning("Push to subscription %s at %s failed: %r", subscription.pk, host, exc)
        _safe(_record_failure, subscription)
        return False
    _safe(_record_success, subscription)
    return True


def _safe(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:
        logger.exception("Could not record the push outcome")


def send_offer_push(*, offer_id: int) -> int:
    """Push a pending offer to every subscription of its driver; returns how many push services
    accepted it. Does nothing once the offer is no longer pending or expired, or when VAPID is
    not configured. Never raises: a failing push service never blocks dispatch."""
    try:
        return _send_offer_push(offer_id)
    except Exception:
        logger.exception("Offer push for offer %s failed", offer_id)
        return 0


def _send_offer_push(offer_id: int) -> int:
    offer = Offer.objects.select_related("batch").filter(pk=offer_id).first()
    if offer is None or offer.status != Offer.Status.PENDING:
        return 0
    now = timezone.now()
    ttl = math.floor((offer.expires_at - now).total_seconds())
    if ttl <= 0:
        return 0  # expired already: the sweeper will mark it; telling the driver now is noise
    return _push_to_driver(offer.driver_id, offer_push_payload(offer, now=now), ttl=ttl)


def _push_to_driver(driver_id: int, payload: dict, *, ttl: int) -> int:
    """Push `payload` to every subscription of the driver; how many push services took it."""
    vapid = _vapid()
    if vapid is None:
        return 0
    subscriptions = list(PushSubscription.objects.filter(driver_id=driver_id).order_by("pk"))
    if not subscriptions:
        return 0
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    subject = _setting("SPARK_VAPID_SUBJECT")
    sent = 0
    with requests.Session() as session:
        session.max_redirects = 0  # push services do not redirect; never follow one elsewhere
        for subscription in subscriptions:
            if _push_one(subscription, data=data, vapid=vapid, subject=subject, ttl=ttl, session=session):
                sent += 1
    return sent


@shared_task(ignore_result=True)
def send_offer_push_task(offer_id: int) -> int:
    return send_offer_push(offer_id=offer_id)


# --- An offer or a batch taken away ------------------------------------------------------------

UPDATE_TTL_SECONDS = 3600  # news of a lost batch is still worth showing an hour later


def offer_update_payload(offer) -> dict | None:
    """What the lock screen shows when an offer ends without the driver's doing: withdrawn
    (the batch was cancelled or pulled back before they answered) or released (they had the
    batch and it was taken back: every order cancelled, or sent back to dispatch). Same tag as
    the offer's notification, so it replaces it. No customer detail and no free text from
    the store: the app's Batch page and dispatch log say the rest."""
    batch_status = offer.batch.status
    if offer.status == Offer.Status.WITHDRAWN:
        title = "Offer withdrawn"
        body = (
            "The store cancelled this batch."
            if batch_status == Batch.Status.CANCELLED
            else "This batch is no longer available."
        )
        url = "/driver/offers/"
    elif offer.status == Offer.Status.RELEASED:
        title = "Batch taken back"
        if batch_status == Batch.Status.CANCELLED:
            body = f"Every order of batch {offer.batch_id} was cancelled. You are paid for the trip."
        else:
            body = f"Batch {offer.batch_id} went back to dispatch. You are paid for the trip."
        url = "/driver/batch/"
    else:
        return None
    return {
        "type": "offer_update",
        "offer_id": offer.pk,
        "batch_id": offer.batch_id,
        "status": offer.status,
        "title": title,
        "body": body,
        "url": url,
        "tag": f"offer-{offer.pk}",
    }


def send_offer_update_push(*, offer_id: int) -> int:
    """Tell the driver their offer was withdrawn or their batch taken back. Never raises."""
    try:
        offer = Offer.objects.select_related("batch").filter(pk=offer_id).first()
        if offer is None:
            return 0
        payload = offer_update_payload(offer)
        if payload is None:
            return 0
        return _push_to_driver(offer.driver_id, payload, ttl=UPDATE_TTL_SECONDS)
    except Exception:
        logger.exception("Offer update push for offer %s failed", offer_id)
        return 0


@shared_task(ignore_result=True)
def send_offer_update_push_task(offer_id: int) -> int:
    return send_offer_update_push(offer_id=offer_id)
