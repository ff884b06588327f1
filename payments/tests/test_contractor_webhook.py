"""POST /webhooks/screening/: HMAC over the raw body, 300 s replay window, dedupe on event id."""

import json
import time

import pytest
from django.core import mail

from drivers.models import Driver
from payments.models import ScreeningCase, ScreeningEvent, WebhookEvent
from payments.tests.helpers import SUMMARY, submitted
from webhooks.screening import sign

pytestmark = pytest.mark.django_db

URL = "/webhooks/screening/"
SECRET = "whsec_screening_test_0123456789abcdef"
Status = ScreeningCase.Status


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.SPARK_SCREENING_WEBHOOK_SECRET = SECRET


def body_of(event_id="evt_1", type_="screening.completed", **data) -> bytes:
    return json.dumps({"id": event_id, "type": type_, "data": data}).encode()


def post(client, body: bytes, *, secret=SECRET, timestamp=None, signature=None):
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = (
        {}
        if signature is False
        else {"HTTP_X_SPARK_SIGNATURE": signature or sign(body, secret=secret, timestamp=timestamp)}
    )
    return client.post(URL, data=body, content_type="application/json", **headers)


def state(case) -> tuple:
    case.refresh_from_db()
    return (
        case.status,
        ScreeningEvent.objects.filter(case=case).count(),
        Driver.objects.get(pk=case.driver_id).status,
        WebhookEvent.objects.count(),
        len(mail.outbox),
    )


def test_signed_clear_result_activates_the_driver(client, commit, queued):
    case = submitted(commit)
    body = body_of(driver_id=case.driver_id, result="clear", provider="acme", provider_ref="rep_42")
    with commit():
        response = post(client, body)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "processed"
    case.refresh_from_db()
    assert (case.status, case.result_source, case.provider, case.provider_ref) == (
        "clear",
        "provider",
        "acme",
        "rep_42",
    )
    assert Driver.objects.get(pk=case.driver_id).status == Driver.Status.ACTIVE
    event = WebhookEvent.objects.get()
    assert (event.source, event.event_id, event.event_type) == ("screening", "evt_1", "screening.completed")
    assert event.processed_at is not None


def test_consider_by_case_ref_starts_the_adverse_action_process(client, commit, queued):
    case = submitted(commit)
    with commit():
        response = post(client, body_of(case_ref=case.ref, result="consider", summary=SUMMARY))
    assert response.json()["status"] == "processed"
    case.refresh_from_db()
    assert case.status == Status.PRE_ADVERSE_NOTICE and case.dispute_deadline_at is not None
    assert SUMMARY in mail.outbox[-1].body


def test_replayed_event_id_changes_nothing_and_answers_200(client, commit, queued):
    case = submitted(commit)
    body = body_of(driver_id=case.driver_id, result="consider", summary=SUMMARY)
    with commit():
        assert post(client, body).status_code == 200
    before = state(case)
    # when the same event is delivered again (freshly signed, within the window)
    with commit():
        response = post(client, body)
    # then 200, and nothing changed: no second notice, event or webhook row
    assert response.status_code == 200 and response.json()["status"] == "duplicate"
    assert state(case) == before


def test_a_different_event_for_a_decided_case_is_recorded_and_ignored(client, commit, queued):
    case = submitted(commit)
    with commit():
        post(client, body_of("evt_1", driver_id=case.driver_id, result="clear"))
    before = state(case)
    # a late, contradicting result (events may arrive in any order)
    with commit():
        response = post(client, body_of("evt_2", driver_id=case.driver_id, result="consider", summary=SUMMARY))
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert "already decided" in response.json()["detail"]
    status, n_events, driver_status, n_webhooks, n_mail = state(case)
    assert (status, n_events, driver_status, n_mail) == before[:3] + before[4:]
    assert n_webhooks == 2  # recorded, for ops to see
    # the same result again is simply processed as a no-op
    with commit():
        assert post(client, body_of("evt_3", driver_id=case.driver_id, result="clear")).json()["status"] == "processed"
    assert state(case)[:3] == before[:3]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # tampered: the signature of the original body on a changed body
        (
            lambda b: {
                "body": b.replace(b'"clear"', b'"consider"'),
                "signature": sign(b, secret=SECRET, timestamp=int(time.time())),
            },
            "does not match",
        ),
        (lambda b: {"body": b, "secret": "whsec_someone_else"}, "does not match"),
        (lambda b: {"body": b, "timestamp": int(time.time()) - 301}, "300 seconds"),
        (lambda b: {"body": b, "timestamp": int(time.time()) + 301}, "300 seconds"),
        (lambda b: {"body": b, "signature": False}, "X-Spark-Signature"),
        (lambda b: {"body": b, "signature": "v1=abc"}, "malformed"),
        (lambda b: {"body": b, "signature": "t=notanumber,v1=abc"}, "malformed"),
    ],
    ids=["tampered-body", "wrong-secret", "stale", "future", "no-header", "no-timestamp", "bad-timestamp"],
)
def test_bad_signatures_are_refused_with_400_and_change_nothing(client, commit, queued, make, message):
    case = submitted(commit)
    args = make(body_of(driver_id=case.driver_id, result="clear"))
    before = state(case)
    with commit():
        response = post(client, args.pop("body"), **args)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert state(case) == before


def test_a_later_secret_rotation_signature_among_several_is_accepted(client, commit, queued):
    case = submitted(commit)
    body = body_of(driver_id=case.driver_id, result="clear")
    ts = int(time.time())
    good = sign(body, secret=SECRET, timestamp=ts).split(",")[1]
    with commit():
        response = post(client, body, signature=f"t={ts},v1={'0' * 64},{good}")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"type": "screening.completed", "data": {}}).encode(), '"id"'),
        (body_of(driver_id=1, result="maybe"), '"data.result"'),
        (body_of(driver_id=1, result="consider"), "summary"),
        (body_of(result="clear"), "case_ref"),
        (json.dumps({"id": "evt_1", "type": "screening.completed", "data": "x"}).encode(), '"data"'),
    ],
    ids=["malformed", "not-utf8", "array", "no-id", "bad-result", "consider-no-summary", "no-target", "data-str"],
)
def test_bad_bodies_are_refused_with_400(client, body, message):
    response = post(client, body)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not WebhookEvent.objects.exists()


def test_unknown_driver_or_case_is_recorded_and_ignored(client):
    for event_id, data in [
        ("evt_a", {"driver_id": 999999}),
        ("evt_b", {"case_ref": "scase_999999"}),
        ("evt_c", {"case_ref": "elsewhere-7"}),
    ]:
        response = post(client, body_of(event_id, result="clear", **data))
        assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert WebhookEvent.objects.count() == 3


def test_other_event_types_are_recorded_and_ignored(client):
    response = post(client, body_of(type_="screening.started", driver_id=1))
    assert response.json()["status"] == "ignored"
    assert WebhookEvent.objects.get().event_type == "screening.started"


def test_a_case_waiting_for_documents_asks_the_provider_to_retry(client, commit, queued):
    from payments.contractor.services import screening_request_documents

    case = submitted(commit)
    screening_request_documents(case=case, actor=None, note="Blurry license.")
    response = post(client, body_of(case_ref=case.ref, result="clear"))
    assert response.status_code == 409 and response.json()["status"] == "retry"
    assert not WebhookEvent.objects.exists()  # so the retry is processed later


def test_unconfigured_secret_and_wrong_method(client, settings):
    settings.SPARK_SCREENING_WEBHOOK_SECRET = ""
    assert post(client, body_of(driver_id=1, result="clear"), secret="").status_code == 503
    settings.SPARK_SCREENING_WEBHOOK_SECRET = SECRET
    assert client.get(URL).status_code == 405


GOOD_BODY = body_of(driver_id=1, result="clear")


def _good_mac(ts: int) -> str:
    return sign(GOOD_BODY, secret=SECRET, timestamp=ts).split("v1=")[1]


@pytest.mark.parametrize(
    "header",
    [
        lambda ts: "",
        lambda ts: ",,,",
        lambda ts: "t=",
        lambda ts: f"t={ts}",
        lambda ts: f"t={ts},v1=",
        lambda ts: f"v1={_good_mac(ts)}",
        lambda ts: "t=" + "9" * 5000 + f",v1={_good_mac(ts)}",
        lambda ts: "t=" + "9" * 40 + f",v1={_good_mac(ts)}",
        lambda ts: f"t=\u00b2,v1={_good_mac(ts)}",  # a superscript two: str.isdigit() says yes, int() says no
        lambda ts: f"t=\u0661\u0662\u0663,v1={_good_mac(ts)}",  # Arabic-Indic digits
        lambda ts: f"t=-{ts},v1={_good_mac(ts)}",
        lambda ts: f"t={ts}.5,v1={_good_mac(ts)}",
        lambda ts: f"t= {ts},v1={_good_mac(ts)}",
        lambda ts: f"t={ts},t={ts},v1={_good_mac(ts)}",  # duplicated timestamp, even with a good signature
        lambda ts: f"t={ts},v1={'z' * 64}",
        lambda ts: f"t={ts},v1={_good_mac(ts)[:-1]}",
        lambda ts: f"t={ts},v1={_good_mac(ts)}0",
        lambda ts: f"t={ts},v1=\u00e9{_good_mac(ts)[1:]}",
        lambda ts: f"t={ts},v1={_good_mac(ts)},garbage",
        lambda ts: f"t={ts};v1={_good_mac(ts)}",
    ],
    ids=[
        "empty",
        "only-commas",
        "empty-t",
        "no-v1",
        "empty-v1",
        "no-t",
        "t-5000-digits",
        "t-40-digits",
        "t-superscript",
        "t-arabic-digits",
        "t-negative",
        "t-decimal",
        "t-space",
        "t-twice",
        "v1-not-hex",
        "v1-short",
        "v1-long",
        "v1-non-ascii",
        "part-without-equals",
        "semicolons",
    ],
)
def test_any_malformed_signature_header_is_a_400_and_stores_nothing(client, header):
    response = client.post(
        URL, data=GOOD_BODY, content_type="application/json", HTTP_X_SPARK_SIGNATURE=header(int(time.time()))
    )
    assert response.status_code == 400, response.content
    assert "X-Spark-Signature" in response.json()["detail"]
    assert not WebhookEvent.objects.exists()


def test_the_good_header_of_the_table_above_is_accepted(client):
    ts = int(time.time())
    assert post(client, GOOD_BODY, signature=f"t={ts},v1={_good_mac(ts)}").json()["status"] == "ignored"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"id": "evt_1", "type": "x", "data": ' + "[" * 1000 + "]" * 1000 + "}", "not valid JSON"),
        ('{"id": "evt_1", "type": "x", "data": {"driver_id": ' + "9" * 5000 + "}}", "not valid JSON"),
    ],
    ids=["nested-1000", "int-5000-digits"],
)
def test_signed_hostile_bodies_are_a_400(client, body, message):
    response = post(client, body.encode())
    assert response.status_code == 400 and message in response.json()["detail"]
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "data",
    [
        {"case_ref": "scase_" + "9" * 5000},
        {"case_ref": "scase_\u00b2"},
        {"case_ref": "scase_" + "9" * 25},
        {"driver_id": "\u00b2"},
        {"driver_id": "9" * 5000},
        {"driver_id": 10**25},
    ],
    ids=[
        "ref-5000-digits",
        "ref-superscript",
        "ref-25-digits",
        "driver-superscript",
        "driver-5000-digits",
        "driver-25-digits",
    ],
)
def test_ids_that_cannot_be_ours_are_recorded_and_ignored(client, data):
    response = post(client, body_of(result="clear", **data))
    assert response.status_code == 200 and response.json()["status"] == "ignored"
