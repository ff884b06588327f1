"""Every write of the contractor module: enrolment, screening and the document watch.

Screening (one ScreeningCase per check; statuses and their map on the model):

    submit ──> in_review ──clear──> clear                          driver screening -> active
                  │  ^
    ops ask for   │  └── documents uploaded again (documents_renewed / screening_submit)
    a document    v
              pending_documents
    in_review ──consider──> consider ──notice sent──> pre_adverse_notice ──dispute──> disputed
                                                           │                            │
                         final decision (uphold: only after the waiting period, or      │
                         once a dispute was reviewed; reinstate: any time)  <───────────┘
                                 ├── uphold ──> final_adverse         driver -> deactivated (screening_failed)
                                 └── reinstate ──> cleared_after_dispute   driver -> active

The adverse-action steps follow the US Fair Credit Reporting Act: before an adverse decision
the driver gets a pre-adverse notice with a copy of what the report found and a summary of
their rights, then at least SPARK_ADVERSE_WAIT_DAYS (from the moment the notice went out) to
dispute it; only then a final adverse action notice. Every step has its timestamp on the case
and a ScreeningEvent; every email is a DriverNotice (notices.py).

Each service is safe to repeat: asking for what is already the case changes nothing and
sends nothing. Refusals raise a DomainError with a message for the person who asked and
leave everything as it was. Network calls (the contractor backend, the mail server) never
run inside a transaction: enrolment runs in a task queued on commit, emails go out after
commit.
"""

import logging
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from drivers.models import Driver
from drivers.services import driver_go_offline, driver_set_status
from payments.models import DriverNotice, ScreeningCase, ScreeningEvent
from spark.celery import queue_on_commit
from spark.errors import DomainError, InvalidTransition
from spark.statemachine import TransitionResult, transition
from stores.models import Zone

from .backends import get_backend
from .notices import notice_create, notices_send_due
from .selectors import DOCUMENTS, driver_local_today, screening_missing_items

logger = logging.getLogger(__name__)

Status = ScreeningCase.Status
Kind = DriverNotice.Kind
RESULTS = ("clear", "consider")
DOCUMENT_WARNING_DAYS = 14
MAX_DISPUTE_CHARS = 5000


class CaseNotFound(DomainError):
    """Another driver's case: the same answer as a case that does not exist (DESIGN rule 6)."""

    status_code = 404
    code = "not_found"


def _local(moment) -> str:
    """A deadline as drivers and ops read it (Central time: our zones)."""
    local = timezone.localtime(moment)
    return f"{local:%A, %B} {local.day}, {local.year} at {local:%-I:%M %p %Z}"


def _move(
    case: ScreeningCase,
    *,
    to: str,
    actor=None,
    reason: str = "",
    source: str = "",
    updates: dict | None = None,
    extra_filter: dict | None = None,
) -> TransitionResult:
    return transition(
        case,
        to=to,
        allowed=ScreeningCase.TRANSITIONS,
        event_model=ScreeningEvent,
        event_fk="case",
        actor=actor,
        reason=reason,
        updates=updates,
        extra_filter=extra_filter,
        event_fields={"source": source},
    )


def _user(actor):
    return actor if getattr(actor, "pk", None) else None


def _lock_driver(driver_id: int) -> Driver:
    """Serialise the contractor module's writes for one driver (two submits from two tabs, a
    renewal racing the expiry sweep): a service reads, decides and writes under this lock."""
    return Driver.objects.select_for_update().select_related("user", "home_zone").get(pk=driver_id)


# --- Enrolment -------------------------------------------------------------------------


def contractor_enrol(*, driver_id: int) -> str:
    """Enrol the driver as a contractor with the configured backend (Stripe Connect Express
    account, or a sandbox id) unless they have a contractor id; return the id ("" if the
    driver is not someone we enrol: an applicant, a deactivated driver).

    Calls the backend: never call this inside a transaction. Run by the task that
    screening_submit queues on commit and by the sweeper; both may run, and the backend call
    is idempotent (key derived from the driver) and the id is stored with a guarded update,
    so the driver ends with exactly one id.
    """
    driver = Driver.objects.select_related("user").filter(pk=driver_id).first()
    if driver is None or driver.contractor_id:
        return driver.contractor_id if driver else ""
    if driver.status not in (Driver.Status.SCREENING, Driver.Status.ACTIVE, Driver.Status.SUSPENDED):
        return ""
    contractor_id = get_backend().enrol(driver)
    if not Driver.objects.filter(pk=driver.pk, contractor_id="").update(contractor_id=contractor_id):
        # Someone stored an id first; theirs stands (the same account, by the idempotency key).
        return Driver.objects.filter(pk=driver.pk).values_list("contractor_id", flat=True).get()
    return contractor_id


# --- Screening -------------------------------------------------------------------------


def screening_submit(*, driver: Driver) -> ScreeningCase:
    """The applicant finished onboarding: open their screening case (in review), move them
    applicant -> screening, email them that the application is under review, and enrol them
    as a contractor (a task, after commit).

    Refused, with what is missing, while consent or a document is missing or expired. A
    repeat returns the open case (or, once decided, the latest one) and changes nothing. Also
    moves a case that waits for documents (ops asked for one) back into review.
    """
    from payments import tasks

    with transaction.atomic():
        driver = _lock_driver(driver.pk)
        latest = ScreeningCase.objects.filter(driver=driver).first()
        if driver.status not in (Driver.Status.APPLICANT, Driver.Status.SCREENING):
            if latest is not None:
                return latest  # submitted and decided already
            raise InvalidTransition(
                f"Only applicants submit an application for screening; this account is {driver.get_status_display()}.",
                code="not_an_applicant",
            )
        missing = screening_missing_items(driver=driver)
        if missing:
            raise DomainError(
                "Your application is not complete yet: " + " ".join(missing),
                code="application_incomplete",
                fields={"missing": missing},
            )
        case = ScreeningCase.objects.filter(driver=driver, status__in=ScreeningCase.OPEN_STATUSES).first()
        if case is None:
            # Created waiting for documents and moved into review at once, so the first event
            # of every case records the submission (the partial unique index plus the driver
            # lock keep it to one open case).
            case = ScreeningCase.objects.create(driver=driver)
        if case.status == Status.PENDING_DOCUMENTS:
            first = case.submitted_at is None
            _move(
                case,
                to=Status.IN_REVIEW,
                actor=driver.user,
                source="driver",
                reason="application submitted" if first else "documents uploaded again",
                updates={"submitted_at": case.submitted_at or timezone.now()},
            )
            if first:
                notice_create(
                    driver=driver, case=case, kind=Kind.SCREENING_UNDER_REVIEW, key=f"screening_under_review:{case.pk}"
                )
        if driver.status == Driver.Status.APPLICANT:
            driver_set_status(
                driver=driver, to=Driver.Status.SCREENING, actor=driver.user, note="application submitted for screening"
            )
        if not driver.contractor_id:
            queue_on_commit(tasks.enrol_contractor, driver.pk)
    return case


def screening_request_documents(*, case: ScreeningCase, actor, note: str) -> ScreeningCase:
    """Ops cannot accept a document (unreadable, wrong name): the case waits for the driver
    to upload it again, and the driver gets an email with `note`. A repeat changes nothing."""
    note = (note or "").strip()
    if not note:
        raise DomainError("Say which document is needed and why; the driver reads it.", code="note_required")
    with transaction.atomic():
        result = _move(case, to=Status.PENDING_DOCUMENTS, actor=_user(actor), source="ops", reason=note)
        if result.changed:
            n = case.events.filter(to_status=Status.PENDING_DOCUMENTS).count()
            notice_create(
                driver=case.driver,
                case=case,
                kind=Kind.SCREENING_DOCUMENTS_NEEDED,
                key=f"screening_documents_needed:{case.pk}:{n}",
                context={"note": note},
            )
    return case


def screening_record_result(
    *, case: ScreeningCase, result: str, actor=None, source: str = "ops", summary: str = ""
) -> ScreeningCase:
    """Record the background check's result, by ops in the admin or by the provider's webhook.

    clear: the case is clear and the driver goes screening -> active (and is told).
    consider: the adverse-action process starts: the driver is sent the pre-adverse notice
    with `summary` (what the report found, required) and a summary of their rights; when it
    has gone out the case is pre_adverse_notice with its dispute deadline.

    Only a case in review takes a result. The same result again changes nothing; anything
    else on a decided case is refused (a provider's late or repeated event is ignored by the
    webhook).
    """
    if result not in RESULTS:
        raise DomainError(
            f"A screening result is one of: {', '.join(RESULTS)}.",
            code="invalid_result",
            fields={"result": list(RESULTS)},
        )
    if source not in ScreeningCase.Source.values:
        raise DomainError("The source of a result is ops or provider.", code="invalid_source")
    summary = (summary or "").strip()
    case = ScreeningCase.objects.select_related("driver").get(pk=case.pk)
    target = Status.CLEAR if result == "clear" else Status.CONSIDER
    if case.status != Status.IN_REVIEW:
        adverse_path = (
            Status.CONSIDER,
            Status.PRE_ADVERSE_NOTICE,
            Status.DISPUTED,
            Status.FINAL_ADVERSE,
            Status.CLEARED_AFTER_DISPUTE,
        )
        if case.status == target or (result == "consider" and case.status in adverse_path):
            return case  # already recorded
        if case.status == Status.PENDING_DOCUMENTS:
            raise InvalidTransition(
                "This case is waiting for the driver's documents; record the result once they are back in review.",
                code="documents_pending",
            )
        raise InvalidTransition(
            f"This screening is already decided ({case.get_status_display().lower()}); "
            f"a {result} result cannot be recorded now.",
            code="case_decided",
        )
    if result == "consider" and not summary:
        raise DomainError(
            "The driver gets a copy of what the report found with the pre-adverse notice: "
            "enter a summary of the report.",
            code="summary_required",
            fields={"summary": ["Required."]},
        )
    now = timezone.now()
    with transaction.atomic():
        _move(
            case,
            to=target,
            actor=_user(actor),
            source=source,
            reason=f"{source}: {result}",
            updates={"decided_at": now, "decided_by": _user(actor), "result_source": source, "result_summary": summary},
        )
        if result == "clear":
            _activate_if_screening(case.driver, actor=actor, note="background check clear")
            notice_create(
                driver=case.driver, case=case, kind=Kind.SCREENING_CLEARED, key=f"screening_cleared:{case.pk}"
            )
        else:
            # The notice's sender moves the case to pre_adverse_notice once it went out.
            notice_create(
                driver=case.driver,
                case=case,
                kind=Kind.SCREENING_PRE_ADVERSE,
                key=f"screening_pre_adverse:{case.pk}",
                context={"summary": summary},
            )
    case.refresh_from_db()
    return case


def _activate_if_screening(driver: Driver, *, actor, note: str) -> None:
    # Only a driver waiting for screening is activated: one ops suspended or deactivated for
    # another reason meanwhile stays as ops left them.
    driver = _lock_driver(driver.pk)
    if driver.status == Driver.Status.SCREENING:
        driver_set_status(driver=driver, to=Driver.Status.ACTIVE, actor=_user(actor), note=note)


def screening_dispute(*, case: ScreeningCase, driver: Driver, text: str) -> ScreeningCase:
    """The driver disputes the report during the waiting period: the case is disputed and
    waits for ops to review it (screening_final_decision). Refused after the dispute deadline;
    a repeat keeps the first dispute."""
    if case.driver_id != driver.pk:
        raise CaseNotFound("No such screening case.")
    text = (text or "").strip()
    if not text:
        raise DomainError(
            "Tell us what in the report is wrong or incomplete.",
            code="dispute_text_required",
            fields={"text": ["Required."]},
        )
    if len(text) > MAX_DISPUTE_CHARS:
        raise DomainError(
            f"Please keep it under {MAX_DISPUTE_CHARS} characters.",
            code="dispute_text_too_long",
            fields={"text": [f"At most {MAX_DISPUTE_CHARS} characters."]},
        )
    case = ScreeningCase.objects.get(pk=case.pk)
    if case.status == Status.DISPUTED:
        return case
    if case.status != Status.PRE_ADVERSE_NOTICE:
        raise InvalidTransition("There is no pending adverse decision to dispute.", code="nothing_to_dispute")
    now = timezone.now()
    deadline = case.dispute_deadline_at
    assert deadline is not None  # a CHECK constraint: the notice status always has its deadline
    if now >= deadline:
        raise DomainError(f"The time to dispute ended on {_local(deadline)}.", code="dispute_window_closed")
    # The deadline is in the guard too: a dispute and the deadline never both win.
    _move(
        case,
        to=Status.DISPUTED,
        actor=driver.user,
        source="driver",
        reason="driver disputed the report",
        updates={"dispute_text": text, "disputed_at": now},
        extra_filter={"dispute_deadline_at__gt": now},
    )
    return case


def screening_final_decision(*, case: ScreeningCase, actor, uphold: bool, note: str = "") -> ScreeningCase:
    """Ops' final decision on an adverse result.

    uphold: the case is final_adverse, the driver is deactivated (screening_failed) and gets
    the final adverse action notice. Only once the waiting period is over, or once the
    driver's dispute was reviewed (the case is disputed); before that it is refused and
    nothing changes.
    reinstate (uphold=False): the case is cleared_after_dispute and the driver goes active.
    Favourable to the driver, so allowed during the waiting period too.
    """
    target = Status.FINAL_ADVERSE if uphold else Status.CLEARED_AFTER_DISPUTE
    case = ScreeningCase.objects.select_related("driver").get(pk=case.pk)
    if case.status == target:
        return case
    if case.status == Status.CONSIDER:
        raise InvalidTransition(
            "The pre-adverse notice has not gone out yet; the waiting period starts when it has.",
            code="notice_not_sent",
        )
    if case.status not in (Status.PRE_ADVERSE_NOTICE, Status.DISPUTED):
        raise InvalidTransition(
            f"There is no adverse decision pending on this case ({case.get_status_display().lower()}).",
            code="nothing_to_decide",
        )
    now = timezone.now()
    extra_filter = None
    if uphold and case.status == Status.PRE_ADVERSE_NOTICE:
        deadline = case.dispute_deadline_at
        assert deadline is not None  # a CHECK constraint: the notice status always has its deadline
        if now < deadline:
            raise DomainError(
                f"The driver can dispute the report until {_local(deadline)}; a final adverse "
                "decision can only be made after that (or after reviewing their dispute).",
                code="waiting_period",
            )
        extra_filter = {"dispute_deadline_at__lte": now}
    note = (note or "").strip()
    with transaction.atomic():
        _move(
            case,
            to=target,
            actor=_user(actor),
            source="ops",
            reason=note or ("adverse action upheld" if uphold else "reinstated after review"),
            updates={"final_decision_at": now, "final_decided_by": _user(actor)},
            extra_filter=extra_filter,
        )
        if uphold:
            driver = _lock_driver(case.driver_id)
            if driver.status != Driver.Status.DEACTIVATED:
                driver_set_status(
                    driver=driver,
                    to=Driver.Status.DEACTIVATED,
                    actor=_user(actor),
                    reason_code=Driver.ReasonCode.SCREENING_FAILED,
                    note=note or "Final adverse action after the background check.",
                )
            notice_create(
                driver=driver,
                case=case,
                kind=Kind.SCREENING_FINAL_ADVERSE,
                key=f"screening_final_adverse:{case.pk}",
                context={"summary": case.result_summary},
            )
        else:
            _activate_if_screening(case.driver, actor=actor, note=note or "cleared after review of the report")
            notice_create(
                driver=case.driver, case=case, kind=Kind.SCREENING_CLEARED, key=f"screening_cleared:{case.pk}"
            )
    return case


# --- Documents -------------------------------------------------------------------------


def _document_dates(driver: Driver) -> list[tuple[str, str, date | None]]:
    return [(kind, label, getattr(driver, field)) for kind, label, field, _doc in DOCUMENTS]


def _doc_context(kind: str, label: str, expires: date) -> dict:
    return {
        "kind": kind,
        "label": label,
        "expires_on": expires.isoformat(),
        "expires_on_display": f"{expires:%A, %B} {expires.day}, {expires.year}",
    }


def documents_check_expiry(*, today: date | None = None) -> dict:
    """The daily document watch (beat, payments.tasks.check_document_expiry). Idempotent.

    Warns every active or screening driver whose license or insurance expires within
    DOCUMENT_WARNING_DAYS (14) days, once per document and expiry date (the DriverNotice key
    remembers it), and takes every active driver with an expired one off duty: suspended
    with reason documents_expired, offline, told by email. `today` defaults to each zone's
    local date. Returns {"warned": n, "suspended": n}.
    """
    counts = {"warned": 0, "suspended": 0}
    for zone in Zone.objects.all():
        zone_today = today or timezone.localdate(timezone.now(), ZoneInfo(zone.timezone))
        horizon = zone_today + timedelta(days=DOCUMENT_WARNING_DAYS)
        in_zone = Driver.objects.filter(home_zone=zone)
        for kind, label, field, _doc in DOCUMENTS:
            expiring = in_zone.filter(
                status__in=(Driver.Status.ACTIVE, Driver.Status.SCREENING), **{f"{field}__range": (zone_today, horizon)}
            ).only("pk", field)
            for driver in expiring:
                expires = getattr(driver, field)
                with transaction.atomic():
                    counts["warned"] += notice_create(
                        driver=driver,
                        kind=Kind.DOCUMENTS_EXPIRING,
                        key=f"documents_expiring:{driver.pk}:{kind}:{expires.isoformat()}",
                        context={
                            "documents": [_doc_context(kind, label, expires)],
                            "days_left": (expires - zone_today).days,
                        },
                    )
        expired = in_zone.filter(status=Driver.Status.ACTIVE).filter(
            Q(license_expires_on__lt=zone_today) | Q(insurance_expires_on__lt=zone_today)
        )
        for driver_id in expired.values_list("pk", flat=True):
            try:
                counts["suspended"] += documents_take_off_duty(driver_id=driver_id, today=zone_today)
            except DomainError:
                logger.exception("Could not take driver %s off duty for expired documents", driver_id)
    return counts


def documents_take_off_duty(*, driver_id: int, today: date) -> bool:
    """Suspend an active driver whose license or insurance expired before `today` (reason
    documents_expired), take them offline and email them. Returns whether it suspended."""
    with transaction.atomic():
        driver = _lock_driver(driver_id)
        expired = [(kind, label, d) for kind, label, d in _document_dates(driver) if d is not None and d < today]
        if driver.status != Driver.Status.ACTIVE or not expired:
            return False
        note = "; ".join(f"{label} expired on {d:%b %d, %Y}" for _kind, label, d in expired)
        driver_set_status(
            driver=driver,
            to=Driver.Status.SUSPENDED,
            reason_code=Driver.ReasonCode.DOCUMENTS_EXPIRED,
            note=note[:1].upper() + note[1:] + ".",
        )
        driver_go_offline(driver=driver)  # also ends an online route and drops the position
        key = "documents_expired:{}:{}".format(driver.pk, ":".join(f"{k}={d.isoformat()}" for k, _l, d in expired))
        notice_create(
            driver=driver,
            kind=Kind.DOCUMENTS_EXPIRED,
            key=key[:128],
            context={"documents": [_doc_context(k, label, d) for k, label, d in expired]},
        )
    return True


def documents_renewed(*, driver: Driver, actor=None) -> bool:
    """The driver uploaded documents again (onboarding calls this; ops may too).

    A driver suspended for expired documents whose license and insurance are now valid is
    reinstated (active). A screening case waiting for documents goes back into review once
    nothing is missing. Returns whether the driver was reinstated; otherwise nothing changes
    (e.g. one document is still expired: driver_work_refusal says which).
    """
    with transaction.atomic():
        driver = _lock_driver(driver.pk)
        waiting = ScreeningCase.objects.filter(driver=driver, status=Status.PENDING_DOCUMENTS).first()
        if waiting is not None and not screening_missing_items(driver=driver):
            _move(
                waiting,
                to=Status.IN_REVIEW,
                actor=_user(actor) or driver.user,
                source="driver",
                reason="documents uploaded again",
            )
        if driver.status != Driver.Status.SUSPENDED or driver.reason_code != Driver.ReasonCode.DOCUMENTS_EXPIRED:
            return False
        today = driver_local_today(driver)
        if any(d is None or d < today for _kind, _label, d in _document_dates(driver)):
            return False
        driver_set_status(driver=driver, to=Driver.Status.ACTIVE, actor=_user(actor), note="documents renewed")
    return True


# --- Safety net ------------------------------------------------------------------------


def screening_sweep(*, limit: int = 100) -> dict:
    """Beat safety net (payments.tasks.sweep_screening): send notices still unsent (mail
    server down, a worker died) and enrol drivers in screening or active who still have no
    contractor id (the enrol task failed). Idempotent; never inside a transaction."""
    sent = notices_send_due(limit=limit)
    enrolled = 0
    missing = Driver.objects.filter(
        contractor_id="", status__in=(Driver.Status.SCREENING, Driver.Status.ACTIVE)
    ).values_list("pk", flat=True)[: max(1, limit // 5)]
    for driver_id in list(missing):
        try:
            enrolled += bool(contractor_enrol(driver_id=driver_id))
        except Exception:  # the backend (Stripe) is down: the next sweep tries again
            logger.exception("Enrolling driver %s as a contractor failed", driver_id)
    return {"notices_sent": sent, "enrolled": enrolled}
