"""Screening through the contractor module: submit, results, the US adverse-action timeline,
notices (the DriverNotice outbox) and contractor enrolment with the sandbox backend."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from drivers.models import Driver
from drivers.tests.factories import DriverFactory
from outbox import services as outbox
from outbox.models import Message
from payments import tasks
from payments.contractor import backends, notices, selectors, services
from payments.models import OPEN_SCREENING_STATUSES, DriverNotice, ScreeningCase, ScreeningEvent
from payments.tests.helpers import SUMMARY, make_applicant, submitted
from spark.errors import DomainError, InvalidTransition

pytestmark = pytest.mark.django_db

Status = ScreeningCase.Status
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday, 9:00 in Nashville


# --- helpers (imported by the other test_contractor_* modules) -------------------------


def events(case) -> list[tuple[str, str]]:
    return list(ScreeningEvent.objects.filter(case=case).values_list("from_status", "to_status"))


def snapshot(case) -> tuple:
    case.refresh_from_db()
    driver = Driver.objects.get(pk=case.driver_id)
    return (
        case.status,
        case.status_changed_at,
        case.final_decision_at,
        len(events(case)),
        driver.status,
        DriverNotice.objects.filter(driver=driver).count(),
        len(mail.outbox),
    )


class FailingEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise ConnectionRefusedError("mail server down")


# --- submit -----------------------------------------------------------------------------


def test_submit_opens_a_case_in_review_and_moves_the_applicant_to_screening(commit, queued):
    # given an applicant who finished onboarding
    driver = make_applicant()
    # when they submit
    with commit():
        case = services.screening_submit(driver=driver)
    # then a case is in review, the driver is in screening, told by email, and enrolment is queued
    assert case.status == Status.IN_REVIEW and case.submitted_at is not None
    assert events(case) == [("pending_documents", "in_review")]
    driver.refresh_from_db()
    assert driver.status == Driver.Status.SCREENING
    assert [m.to for m in mail.outbox] == [[driver.user.email]]
    assert "under review" in mail.outbox[0].subject
    assert "under review" in mail.outbox[0].alternatives[0][0]
    assert queued == [("enrol_contractor", (driver.pk,))]
    # and submitting again changes nothing and sends nothing
    with commit():
        again = services.screening_submit(driver=driver)
    assert again.pk == case.pk
    assert ScreeningCase.objects.filter(driver=driver).count() == 1
    assert len(events(case)) == 1 and len(mail.outbox) == 1
    assert driver.events.count() == 1


def test_submit_refuses_an_incomplete_application_and_changes_nothing(commit, queued):
    driver = make_applicant(background_check_consent_at=None, insurance_document="")
    with commit(), pytest.raises(DomainError) as exc:
        services.screening_submit(driver=driver)
    assert exc.value.code == "application_incomplete"
    assert "consent" in exc.value.message and "insurance" in exc.value.message
    driver.refresh_from_db()
    assert driver.status == Driver.Status.APPLICANT
    assert not ScreeningCase.objects.exists() and mail.outbox == [] and queued == []


def test_submit_refuses_an_expired_license():
    driver = make_applicant(license_expires_on=timezone.localdate() - timedelta(days=1))
    with pytest.raises(DomainError) as exc:
        services.screening_submit(driver=driver)
    assert "expired" in exc.value.message


def test_submit_is_only_for_applicants():
    with pytest.raises(InvalidTransition):
        services.screening_submit(driver=make_applicant(status=Driver.Status.ACTIVE))


def test_one_open_case_per_driver_is_a_database_rule():
    from django.db import IntegrityError, transaction

    driver = make_applicant()
    ScreeningCase.objects.create(driver=driver)
    with pytest.raises(IntegrityError), transaction.atomic():
        ScreeningCase.objects.create(driver=driver, status=Status.IN_REVIEW)
    # a decided case does not count
    ScreeningCase.objects.create(driver=make_applicant(), status=Status.CLEAR)
    assert sorted(OPEN_SCREENING_STATUSES) == sorted(ScreeningCase.OPEN_STATUSES)


# --- enrolment --------------------------------------------------------------------------


def test_enrol_task_gives_a_labelled_sandbox_id_once(commit, queued):
    case = submitted(commit)
    # when the queued task runs (twice: a redelivery)
    first = tasks.enrol_contractor(case.driver_id)
    second = tasks.enrol_contractor(case.driver_id)
    # then the driver has one clearly fake id
    assert first == second == f"sandbox_acct_{case.driver_id}"
    assert Driver.objects.get(pk=case.driver_id).contractor_id == first


def test_enrol_keeps_an_existing_id_and_skips_applicants():
    enrolled = DriverFactory(contractor_id="acct_real123")
    assert services.contractor_enrol(driver_id=enrolled.pk) == "acct_real123"
    applicant = make_applicant()
    assert services.contractor_enrol(driver_id=applicant.pk) == ""
    assert Driver.objects.get(pk=applicant.pk).contractor_id == ""
    assert services.contractor_enrol(driver_id=0) == ""


def test_backend_is_chosen_by_settings(settings):
    assert isinstance(backends.get_backend(), backends.SandboxBackend)  # test settings
    settings.SPARK_PAYMENT_BACKEND = "stripe"
    assert isinstance(backends.get_backend(), backends.StripeBackend)
    settings.SPARK_PAYMENT_BACKEND = "paypal"
    with pytest.raises(ImproperlyConfigured):
        backends.get_backend()


def test_sweeper_enrols_drivers_still_without_an_id():
    driver = DriverFactory(status=Driver.Status.SCREENING)
    DriverFactory(status=Driver.Status.APPLICANT)
    assert services.screening_sweep()["enrolled"] == 1
    assert Driver.objects.get(pk=driver.pk).contractor_id == f"sandbox_acct_{driver.pk}"
    assert services.screening_sweep()["enrolled"] == 0


# --- results ----------------------------------------------------------------------------


def test_clear_result_activates_the_driver_once(commit, queued, ops_user):
    case = submitted(commit)
    with commit():
        case = services.screening_record_result(case=case, result="clear", actor=ops_user)
    assert case.status == Status.CLEAR and case.decided_by == ops_user and case.result_source == "ops"
    driver = Driver.objects.get(pk=case.driver_id)
    assert driver.status == Driver.Status.ACTIVE
    assert mail.outbox[-1].subject == "Spark: you're cleared to drive"
    before = snapshot(case)
    # a repeat changes nothing
    with commit():
        services.screening_record_result(case=case, result="clear", actor=ops_user)
    assert snapshot(case) == before
    # a contradicting result on a decided case is refused, and changes nothing
    with pytest.raises(InvalidTransition):
        services.screening_record_result(case=case, result="consider", actor=ops_user, summary=SUMMARY)
    assert snapshot(case) == before


def test_clear_result_leaves_a_driver_ops_suspended_meanwhile(commit, queued, ops_user):
    from drivers.services import driver_set_status

    case = submitted(commit)
    driver_set_status(driver=case.driver, to=Driver.Status.APPLICANT, actor=ops_user)
    services.screening_record_result(case=case, result="clear", actor=ops_user)
    assert Driver.objects.get(pk=case.driver_id).status == Driver.Status.APPLICANT


def test_invalid_result_or_missing_summary_is_refused(commit, queued):
    case = submitted(commit)
    with pytest.raises(DomainError) as exc:
        services.screening_record_result(case=case, result="maybe")
    assert exc.value.code == "invalid_result"
    with pytest.raises(DomainError) as exc:
        services.screening_record_result(case=case, result="consider", summary="   ")
    assert exc.value.code == "summary_required"
    case.refresh_from_db()
    assert case.status == Status.IN_REVIEW and len(events(case)) == 1


def test_ops_can_ask_for_a_document_again(commit, queued, ops_user):
    case = submitted(commit)
    with commit():
        services.screening_request_documents(case=case, actor=ops_user, note="License photo is blurry.")
    assert case.status == Status.PENDING_DOCUMENTS
    assert "License photo is blurry." in mail.outbox[-1].body
    # a result waits until the documents are back in review
    with pytest.raises(InvalidTransition) as exc:
        services.screening_record_result(case=case, result="clear")
    assert exc.value.code == "documents_pending"
    # the driver uploads again: the case is back in review (no second under-review email)
    sent = len(mail.outbox)
    with commit():
        assert services.documents_renewed(driver=case.driver, actor=None) is False  # not suspended
    case.refresh_from_db()
    assert case.status == Status.IN_REVIEW and len(mail.outbox) == sent
    assert [to for _f, to in events(case)] == ["in_review", "pending_documents", "in_review"]


# --- the adverse-action timeline --------------------------------------------------------


def test_adverse_action_timeline(commit, queued, ops_user, settings):
    settings.SPARK_ADVERSE_WAIT_DAYS = 7
    with time_machine.travel(T0, tick=False):
        case = submitted(commit)
        driver = case.driver
        # when ops record a "consider" result
        with commit():
            case = services.screening_record_result(case=case, result="consider", actor=ops_user, summary=SUMMARY)
        # then the pre-adverse notice went out, and the waiting period runs from it
        case.refresh_from_db()  # the notice is sent after the commit
        assert case.status == Status.PRE_ADVERSE_NOTICE
        assert case.decided_at == T0 and case.pre_adverse_sent_at == T0
        assert case.dispute_deadline_at == T0 + timedelta(days=7)
        assert [to for _f, to in events(case)] == ["in_review", "consider", "pre_adverse_notice"]
        notice = mail.outbox[-1]
        assert notice.to == [driver.user.email] and "pre-adverse" in notice.subject
        assert SUMMARY in notice.body  # a copy of what the report found
        assert "Summary of Your Rights Under the Fair Credit Reporting Act" in notice.body
        assert "Monday, March 9, 2026, 10:00 AM CDT" in notice.body  # exactly 7 days later (DST began)
        html = notice.alternatives[0][0]
        assert "consumerfinance.gov" in html and "Monday, March 9, 2026" in html
        sent = DriverNotice.objects.get(case=case, kind=DriverNotice.Kind.SCREENING_PRE_ADVERSE)
        assert sent.sent_at == T0
        # the driver stays in screening meanwhile
        assert Driver.objects.get(pk=driver.pk).status == Driver.Status.SCREENING
        # and a final adverse decision is refused before the waiting period ends: nothing changes
        before = snapshot(case)
        with pytest.raises(DomainError) as exc:
            services.screening_final_decision(case=case, actor=ops_user, uphold=True)
        assert exc.value.code == "waiting_period"
        assert "until Monday, March 9, 2026 at 10:00 AM CDT" in exc.value.message
        assert snapshot(case) == before

    with time_machine.travel(T0 + timedelta(days=7, seconds=-1), tick=False), pytest.raises(DomainError):
        services.screening_final_decision(case=case, actor=ops_user, uphold=True)

    with time_machine.travel(T0 + timedelta(days=7, seconds=1), tick=False):
        # the driver can no longer dispute
        with pytest.raises(DomainError) as exc:
            services.screening_dispute(case=case, driver=driver, text="That is not me.")
        assert exc.value.code == "dispute_window_closed"
        # when ops uphold after the waiting period
        with commit():
            case = services.screening_final_decision(case=case, actor=ops_user, uphold=True)
        # then the case is final, the driver deactivated for screening, and told
        assert case.status == Status.FINAL_ADVERSE and case.final_decided_by == ops_user
        assert case.final_decision_at == T0 + timedelta(days=7, seconds=1)
        driver.refresh_from_db()
        assert (driver.status, driver.reason_code) == (Driver.Status.DEACTIVATED, "screening_failed")
        final = mail.outbox[-1]
        assert "final adverse action" in final.subject.lower()
        assert "did not make this decision" in final.body and "60 days" in final.body
        # and a repeat changes nothing, the opposite decision is refused
        before = snapshot(case)
        with commit():
            services.screening_final_decision(case=case, actor=ops_user, uphold=True)
        with pytest.raises(InvalidTransition):
            services.screening_final_decision(case=case, actor=ops_user, uphold=False)
        assert snapshot(case) == before


def test_dispute_before_the_deadline_then_reinstated(commit, queued, ops_user):
    with time_machine.travel(T0, tick=False):
        case = submitted(commit)
        with commit():
            services.screening_record_result(case=case, result="consider", actor=ops_user, summary=SUMMARY)
    with time_machine.travel(T0 + timedelta(days=6, hours=23), tick=False):
        # when the driver disputes on the last day
        case = services.screening_dispute(case=case, driver=case.driver, text="  The conviction was expunged.  ")
        assert case.status == Status.DISPUTED
        assert case.disputed_at == T0 + timedelta(days=6, hours=23)
        assert case.dispute_text == "The conviction was expunged."
        # a repeat keeps the first dispute
        services.screening_dispute(case=case, driver=case.driver, text="Something else")
        case.refresh_from_db()
        assert case.dispute_text == "The conviction was expunged." and len(events(case)) == 4
        # ops review it and reinstate, before the deadline even
        with commit():
            case = services.screening_final_decision(case=case, actor=ops_user, uphold=False, note="expunged")
    assert case.status == Status.CLEARED_AFTER_DISPUTE
    assert Driver.objects.get(pk=case.driver_id).status == Driver.Status.ACTIVE
    assert mail.outbox[-1].subject == "Spark: you're cleared to drive"


def test_a_reviewed_dispute_can_be_upheld_before_the_deadline(commit, queued, ops_user):
    with time_machine.travel(T0, tick=False):
        case = submitted(commit)
        with commit():
            services.screening_record_result(case=case, result="consider", summary=SUMMARY)
        services.screening_dispute(case=case, driver=case.driver, text="Please look again.")
        with commit():
            case = services.screening_final_decision(case=case, actor=ops_user, uphold=True)
    assert case.status == Status.FINAL_ADVERSE
    assert "a review of the information you sent us" in mail.outbox[-1].body


def test_dispute_rules(commit, queued, ops_user):
    case = submitted(commit)
    with pytest.raises(InvalidTransition):  # nothing adverse to dispute yet
        services.screening_dispute(case=case, driver=case.driver, text="?")
    with commit():
        services.screening_record_result(case=case, result="consider", summary=SUMMARY)
    with pytest.raises(services.CaseNotFound):  # another driver's case
        services.screening_dispute(case=case, driver=DriverFactory(), text="not mine")
    with pytest.raises(DomainError) as exc:
        services.screening_dispute(case=case, driver=case.driver, text="   ")
    assert exc.value.code == "dispute_text_required"
    with pytest.raises(DomainError):
        services.screening_dispute(case=case, driver=case.driver, text="x" * 5001)
    case.refresh_from_db()
    assert case.status == Status.PRE_ADVERSE_NOTICE and case.disputed_at is None


def test_final_decision_needs_a_pending_adverse_result(commit, queued, ops_user):
    case = submitted(commit)
    with pytest.raises(InvalidTransition):
        services.screening_final_decision(case=case, actor=ops_user, uphold=True)
    assert Driver.objects.get(pk=case.driver_id).status == Driver.Status.SCREENING


# --- notices ----------------------------------------------------------------------------


def test_pre_adverse_notice_waits_for_the_mail_server(commit, queued, settings):
    # given the mail server is down when ops record "consider"
    case = submitted(commit)
    settings.EMAIL_BACKEND = "payments.tests.test_contractor_screening.FailingEmailBackend"
    with time_machine.travel(T0, tick=False), commit():
        services.screening_record_result(case=case, result="consider", summary=SUMMARY)
    # then the case waits in "consider": no notice, so no waiting period yet
    case.refresh_from_db()
    assert case.status == Status.CONSIDER and case.dispute_deadline_at is None
    notice = DriverNotice.objects.get(case=case, kind=DriverNotice.Kind.SCREENING_PRE_ADVERSE)
    assert notice.sent_at is None and notice.message.attempts == 1 and "mail server down" in notice.message.last_error
    with pytest.raises(InvalidTransition):
        services.screening_final_decision(case=case, actor=None, uphold=True)
    # when the sweeper runs after the mail server is back
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    later = T0 + timedelta(hours=2)
    with time_machine.travel(later, tick=False):
        assert tasks.sweep_screening()["notices_sent"] == 1
    # then the notice went out, and the waiting period counts from then
    case.refresh_from_db()
    assert case.status == Status.PRE_ADVERSE_NOTICE
    assert (case.pre_adverse_sent_at, case.dispute_deadline_at) == (later, later + timedelta(days=7))
    assert len([m for m in mail.outbox if "pre-adverse" in m.subject]) == 1
    # and the sweeper never sends it twice
    assert tasks.sweep_screening()["notices_sent"] == 0


def test_a_leased_notice_is_not_sent_by_a_second_sender(commit, queued):
    case = submitted(commit)
    with commit():
        services.screening_request_documents(case=case, actor=None, note="Insurance card is cut off.")
    notice = DriverNotice.objects.get(kind=DriverNotice.Kind.SCREENING_DOCUMENTS_NEEDED)
    assert notice.sent_at is not None
    DriverNotice.objects.filter(pk=notice.pk).update(sent_at=None)
    Message.objects.filter(pk=notice.message_id).update(sent_at=None, claimed_until=timezone.now() + outbox.CLAIM)
    assert notices.notice_send(notice_id=notice.pk) is False  # someone else holds it
    assert notices.notices_send_due() == 0


def test_selectors_for_the_status_page(commit, queued):
    driver = make_applicant(license_document="")
    assert selectors.screening_case_for_driver(driver=driver) is None
    assert selectors.screening_missing_items(driver=driver) == ["Upload a photo of your driver's license."]
    case = submitted(commit)
    assert selectors.screening_case_for_driver(driver=case.driver) == case
    assert list(selectors.screening_cases_awaiting_decision()) == [case]
