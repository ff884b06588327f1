"""Ops review screening cases in the admin: pages, filters, documents, and actions that call
the services (status is never edited)."""

from datetime import timedelta

import pytest
from django.contrib import messages
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from drivers.models import Driver
from outbox.models import Message
from payments.models import DriverNotice, ScreeningCase, ScreeningEvent
from payments.tests.helpers import SUMMARY, submitted
from stores.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

Status = ScreeningCase.Status


@pytest.fixture
def ops_admin(client, settings):
    user = UserFactory(email="ops-screening@example.test", is_staff=True, is_superuser=True)
    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = [user.email]
    client.force_login(user)
    return user


def url(model, view: str, *args) -> str:
    return reverse(f"admin:payments_{model._meta.model_name}_{view}", args=args)


def run_action(client, action: str, cases, **extra) -> list[tuple[int, str]]:
    data = {"action": action, "_selected_action": [c.pk for c in cases], **extra}
    response = client.post(url(ScreeningCase, "changelist"), data, follow=True)  # shows (and so uses up) the messages
    assert response.redirect_chain and response.status_code == 200, response.content[:2000]
    return [(m.level, str(m)) for m in response.context["messages"]]


def test_pages_and_filters_load(client, ops_admin, commit, queued):
    case = submitted(commit)
    for model, obj in [
        (ScreeningCase, case),
        (ScreeningEvent, case.events.first()),
        (DriverNotice, DriverNotice.objects.first()),
    ]:
        assert client.get(url(model, "changelist")).status_code == 200
        assert client.get(url(model, "changelist"), {"q": "1"}).status_code == 200
        assert client.get(url(model, "change", obj.pk)).status_code == 200
        assert client.get(url(model, "add")).status_code == 403
    for params in [{"decision": "due"}, {"decision": "waiting"}, {"decision": "over"}, {"status": "in_review"}]:
        assert client.get(url(ScreeningCase, "changelist"), params).status_code == 200
    assert client.get(url(DriverNotice, "changelist"), {"sent": "no"}).status_code == 200


def test_case_page_shows_the_documents_for_review_and_no_editable_status(client, ops_admin, commit, queued):
    case = submitted(commit)
    response = client.get(url(ScreeningCase, "change", case.pk))
    html = response.content.decode()
    assert "/media/driver-docs/license/front.jpg" in html and "/media/driver-docs/insurance/card.pdf" in html
    assert case.driver.user.email in html and "given" in html  # consent
    assert "status" not in response.context["adminform"].form.fields
    # the "record the decision" link opens the case list on this case, where the actions are
    other = submitted(commit)
    decide = url(ScreeningCase, "changelist") + f"?id__exact={case.pk}"
    assert decide in html
    listed = client.get(decide).context["cl"].result_list
    assert [c.pk for c in listed] == [case.pk] and other.pk != case.pk
    # a forged status in a save changes nothing
    client.post(url(ScreeningCase, "change", case.pk), {"status": "clear"})
    case.refresh_from_db()
    assert case.status == Status.IN_REVIEW


def test_decision_filter(client, ops_admin, commit, queued):
    in_review = submitted(commit)
    waiting = submitted(commit)
    over = submitted(commit)
    for case in (waiting, over):
        with commit():
            run_action(client, "record_consider", [case], note=SUMMARY)
    ScreeningCase.objects.filter(pk=over.pk).update(dispute_deadline_at=timezone.now() - timedelta(minutes=1))

    def shown(params):
        response = client.get(url(ScreeningCase, "changelist"), params)
        return {obj.pk for obj in response.context["cl"].result_list}

    assert shown({"decision": "due"}) == {in_review.pk, over.pk}
    assert shown({"decision": "waiting"}) == {waiting.pk}
    assert shown({"decision": "over"}) == {over.pk}


def test_actions_walk_a_case_through_the_adverse_action_steps(client, ops_admin, commit, queued):
    case = submitted(commit)
    # consider without a summary is refused with a message
    sent = run_action(client, "record_consider", [case])
    assert any(level == messages.ERROR and "summary" in text for level, text in sent)
    case.refresh_from_db()
    assert case.status == Status.IN_REVIEW
    # with one: the pre-adverse notice goes out
    with commit():
        sent = run_action(client, "record_consider", [case], note=SUMMARY)
    assert (messages.SUCCESS, "1 changed.") in sent
    case.refresh_from_db()
    assert case.status == Status.PRE_ADVERSE_NOTICE and case.decided_by == ops_admin
    assert SUMMARY in mail.outbox[-1].body
    # upholding during the waiting period is refused
    sent = run_action(client, "final_uphold", [case])
    assert any(level == messages.ERROR and "can dispute the report until" in text for level, text in sent)
    case.refresh_from_db()
    assert case.status == Status.PRE_ADVERSE_NOTICE
    # after it, upholding deactivates the driver
    ScreeningCase.objects.filter(pk=case.pk).update(dispute_deadline_at=timezone.now() - timedelta(seconds=1))
    with commit():
        sent = run_action(client, "final_uphold", [case], note="Report confirmed.")
    assert (messages.SUCCESS, "1 changed.") in sent
    case.refresh_from_db()
    assert case.status == Status.FINAL_ADVERSE and case.final_decided_by == ops_admin
    assert Driver.objects.get(pk=case.driver_id).status == Driver.Status.DEACTIVATED
    # a repeat changes nothing
    sent = run_action(client, "final_uphold", [case])
    assert not any(level == messages.ERROR for level, _ in sent), sent
    assert case.events.filter(to_status=Status.FINAL_ADVERSE).count() == 1


def test_clear_reinstate_and_request_documents_actions(client, ops_admin, commit, queued):
    cleared, reinstated, needs_docs = submitted(commit), submitted(commit), submitted(commit)
    with commit():
        run_action(client, "record_clear", [cleared])
        run_action(client, "record_consider", [reinstated], note=SUMMARY)
    with commit():
        run_action(client, "final_reinstate", [reinstated], note="Individual assessment: not job related.")
        sent = run_action(client, "request_documents", [needs_docs], note="Insurance card is expired.")
    assert (messages.SUCCESS, "1 changed.") in sent
    statuses = {c.pk: c.status for c in ScreeningCase.objects.all()}
    assert statuses == {
        cleared.pk: Status.CLEAR,
        reinstated.pk: Status.CLEARED_AFTER_DISPUTE,
        needs_docs.pk: Status.PENDING_DOCUMENTS,
    }
    assert Driver.objects.get(pk=reinstated.driver_id).status == Driver.Status.ACTIVE
    assert "Insurance card is expired." in mail.outbox[-1].body


def test_send_now_sends_an_unsent_notice(client, ops_admin, commit, queued):
    case = submitted(commit)
    notice = DriverNotice.objects.get(case=case)
    DriverNotice.objects.filter(pk=notice.pk).update(sent_at=None)
    Message.objects.filter(pk=notice.message_id).update(sent_at=None, attempts=60)  # the sweeper gave up
    mail.outbox.clear()
    response = client.post(url(DriverNotice, "changelist"), {"action": "send_now", "_selected_action": [notice.pk]})
    assert response.status_code == 302
    notice.refresh_from_db()
    assert notice.sent_at is not None and len(mail.outbox) == 1
