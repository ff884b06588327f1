"""`POST /webhooks/screening/`: a screening provider posts background-check results.

Signature scheme (the provider and Spark share SPARK_SCREENING_WEBHOOK_SECRET)
-----------------------------------------------------------------------------
    X-Spark-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>   (exactly one t; name=value parts only)

    v1 = hex(HMAC_SHA256(key=secret, msg=f"{t}." + <raw request body bytes>))

- The HMAC is checked on the raw body bytes, before any JSON parsing, with a constant-time
  comparison. Several v1= parts may be sent (e.g. during a secret rotation); one must match.
- `t` must be within 300 seconds of our clock (either way): a captured request cannot be
  replayed later, since changing `t` breaks the signature.
- Within those 300 s a replay is caught by the event id: every accepted event is stored in
  payments.WebhookEvent (source "screening", unique event id) in the same transaction that
  acts on it, so the second delivery of an id answers 200 {"status": "duplicate"} and changes
  nothing. Two deliveries racing each other meet at the unique index.

Body (JSON):
    {"id": "evt_...", "type": "screening.completed",
     "data": {"case_ref": "scase_12" | "driver_id": 34, "result": "clear" | "consider",
              "summary": "...", "provider": "acme", "provider_ref": "rep_..."}}
`case_ref` is the reference Spark gave the provider (ScreeningCase.ref); with `driver_id`
the driver's open case is meant. `summary` is required for "consider" (it is copied into the
pre-adverse notice).

Answers
- 400 with a message: missing/malformed signature header, stale timestamp, signature
  mismatch (tampered body or wrong secret), body not JSON, missing or invalid fields.
  Nothing is stored.
- 200 {"status": "processed"}: the result was recorded (or was already recorded).
- 200 {"status": "ignored", "detail": ...}: accepted and stored, deliberately not acted on:
  another event type, an unknown driver or case (a retry could not help, so not a 404 that
  the provider would retry for days), or a case already decided (events may arrive in any
  order; a late or contradicting result does not undo a decision; ops see it in the admin).
- 200 {"status": "duplicate"}: an event id seen before.
- 409 {"status": "retry"}: the case waits for the driver's documents; nothing is stored, so
  the provider's retry is processed once the case is back in review.
- 503: SPARK_SCREENING_WEBHOOK_SECRET is not set (a deployment error; production settings
  refuse to start without it). Nothing is processed; the provider retries.
"""

import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from drivers.models import Driver
from payments.contractor.services import screening_record_result
from payments.models import ScreeningCase, WebhookEvent
from spark.errors import DomainError

logger = logging.getLogger(__name__)

SOURCE = "screening"
SIGNATURE_HEADER = "X-Spark-Signature"
TOLERANCE_SECONDS = 300
COMPLETED = "screening.completed"


class BadRequest(Exception):
    pass


def sign(body: bytes, *, secret: str, timestamp: int) -> str:
    """The header value for `body` (what a provider computes; used by our tests)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


# ASCII digits only (str.isdigit() also takes "²", which int() refuses), and few enough that
# int() never meets Python's 4,300-digit limit; 12 digits reach past the year 33000.
TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
HMAC_HEX_RE = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class _SignatureHeader:
    timestamp: int  # t
    signatures: list[str]  # every v1, as sent (hex)


def _parse_signature_header(header: str) -> _SignatureHeader:
    """t and [v1, ...] from `header`; BadRequest for anything else than comma-separated
    name=value parts with exactly one t and at least one v1 (other names are ignored, for
    schemes the provider may add)."""
    malformed = BadRequest(f"Missing or malformed {SIGNATURE_HEADER} header; expected t=<unix time>,v1=<hex HMAC>.")
    timestamps, signatures = [], []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise malformed
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not TIMESTAMP_RE.fullmatch(timestamps[0]) or not signatures:
        raise malformed
    if not all(HMAC_HEX_RE.fullmatch(sig) for sig in signatures):
        raise malformed
    return _SignatureHeader(timestamp=int(timestamps[0]), signatures=signatures)


def verify_signature(body: bytes, header: str, *, secret: str, now: float | None = None) -> None:
    """Raise BadRequest unless `header` signs `body` with `secret` within the tolerance."""
    parsed = _parse_signature_header(header)
    timestamp = parsed.timestamp
    now = time.time() if now is None else now
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise BadRequest(
            f"Signature timestamp is more than {TOLERANCE_SECONDS} seconds from our clock; sign each delivery afresh."
        )
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, sig.lower()) for sig in parsed.signatures):
        raise BadRequest("Signature does not match the body.")


def _parse(body: bytes) -> dict:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # not UTF-8, malformed, a 5,000-digit number, 1,000 levels deep
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise BadRequest("The body must be a JSON object.")
    event_id, event_type, data = payload.get("id"), payload.get("type"), payload.get("data")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 128:
        raise BadRequest('"id" must be a string of 1 to 128 characters.')
    if not isinstance(event_type, str) or not 0 < len(event_type) <= 64:
        raise BadRequest('"type" must be a string of 1 to 64 characters.')
    if not isinstance(data, dict):
        raise BadRequest('"data" must be an object.')
    if event_type == COMPLETED:
        if data.get("result") not in ("clear", "consider"):
            raise BadRequest('"data.result" must be "clear" or "consider".')
        summary = data.get("summary", "")
        if not isinstance(summary, str):
            raise BadRequest('"data.summary" must be a string.')
        if data["result"] == "consider" and not summary.strip():
            raise BadRequest('"data.summary" is required with "consider": the driver gets a copy of it.')
        if data.get("case_ref") is None and data.get("driver_id") is None:
            raise BadRequest('"data" needs "case_ref" or "driver_id".')
        for key in ("provider", "provider_ref"):
            if not isinstance(data.get(key, ""), str):
                raise BadRequest(f'"data.{key}" must be a string.')
    return payload


# Our ids are bigints: at most 19 digits; anything else cannot be one of ours. ASCII digits only.
ID_RE = re.compile(r"[0-9]{1,19}")
CASE_REF_RE = re.compile(r"scase_([0-9]{1,19})")


def _find_case(data: dict) -> ScreeningCase | None:
    case_ref, driver_id = data.get("case_ref"), data.get("driver_id")
    if case_ref is not None:
        match = CASE_REF_RE.fullmatch(str(case_ref))
        return ScreeningCase.objects.filter(pk=int(match[1])).first() if match else None
    if isinstance(driver_id, bool) or not ID_RE.fullmatch(str(driver_id)):
        return None
    driver = Driver.objects.filter(pk=int(str(driver_id))).first()
    if driver is None:
        return None
    cases = ScreeningCase.objects.filter(driver=driver)
    return cases.filter(status__in=ScreeningCase.OPEN_STATUSES).first() or cases.first()


def _answer(status: str, http_status: int = 200, **extra) -> JsonResponse:
    return JsonResponse({"status": status, **extra}, status=http_status)


class _Retry(Exception):
    def __init__(self, detail: str):
        self.detail = detail


@dataclass(frozen=True)
class _Outcome:
    """What an accepted event came to: the answer's status and its detail."""

    status: str  # "processed" or "ignored"
    detail: str


def _process(payload: dict) -> _Outcome:
    """Act on an accepted event. Runs in the event's transaction."""
    if payload["type"] != COMPLETED:
        return _Outcome("ignored", f"event type {payload['type']} is not handled")
    data = payload["data"]
    case = _find_case(data)
    if case is None:
        return _Outcome("ignored", "no screening case for this case_ref / driver_id")
    if case.status == ScreeningCase.Status.PENDING_DOCUMENTS:
        raise _Retry("the case waits for the driver's documents; send it again later")
    provider_fields = {}
    if data.get("provider"):
        provider_fields["provider"] = data["provider"][:32]
    if data.get("provider_ref"):
        provider_fields["provider_ref"] = data["provider_ref"][:64]
    try:
        with transaction.atomic():
            if provider_fields and case.status == ScreeningCase.Status.IN_REVIEW:
                ScreeningCase.objects.filter(pk=case.pk, status=ScreeningCase.Status.IN_REVIEW).update(
                    **provider_fields
                )
            screening_record_result(
                case=case, result=data["result"], source="provider", summary=data.get("summary", "")
            )
    except DomainError as exc:
        return _Outcome("ignored", exc.message)
    return _Outcome("processed", f"case {case.ref}")


@csrf_exempt
@require_POST
def screening_webhook(request: HttpRequest) -> JsonResponse:
    secret = settings.SPARK_SCREENING_WEBHOOK_SECRET
    if not secret:
        logger.error("Screening webhook called but SPARK_SCREENING_WEBHOOK_SECRET is not set")
        return _answer("error", 503, detail="The screening webhook is not configured.")
    body = request.body  # the raw bytes, exactly as signed
    try:
        verify_signature(body, request.headers.get(SIGNATURE_HEADER, ""), secret=secret)
        payload = _parse(body)
    except BadRequest as exc:
        return _answer("error", 400, detail=str(exc))
    try:
        # The event row and what it does commit together: a failure leaves no row, so the
        # provider's retry is processed rather than taken for a duplicate.
        with transaction.atomic():
            try:
                with transaction.atomic():
                    event = WebhookEvent.objects.create(
                        source=SOURCE, event_id=payload["id"], event_type=payload["type"], payload=payload
                    )
            except IntegrityError:
                # Seen before (or a concurrent delivery of it committed first).
                return _answer("duplicate", detail=f"event {payload['id']} was received before")
            outcome = _process(payload)
            WebhookEvent.objects.filter(pk=event.pk).update(processed_at=timezone.now())
    except _Retry as retry:
        return _answer("retry", 409, detail=retry.detail)
    if outcome.status == "ignored":
        logger.info("Screening event %s ignored: %s", payload["id"], outcome.detail)
    return _answer(outcome.status, detail=outcome.detail)
