"""The document watch: a warning 14 days before a license or insurance expires (once), off
duty when one expired, back on duty when renewed."""

from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail

from drivers.models import Driver, Location, Route
from drivers.services import driver_set_status
from drivers.tests.factories import DriverFactory, RouteFactory
from outbox.services import messages_send_due
from payments import tasks
from payments.contractor import services
from payments.models import DriverNotice
from stores.tests.factories import ZoneFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 17, 0, tzinfo=UTC)  # noon in Nashville
TODAY = date(2026, 6, 1)
FAR = TODAY + timedelta(days=300)


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """`with commit():` runs what the code queued for after the commit (tasks), then sends what
    it owes through the outbox, as the outbox's worker does."""

    @contextmanager
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            yield
        messages_send_due()

    return run


def run_check(commit) -> dict:
    with commit():
        return tasks.check_document_expiry()


def online_driver(**dates):
    driver = DriverFactory(
        **{"license_expires_on": FAR, "insurance_expires_on": FAR, **dates}, is_online=True, online_since=NOW
    )
    RouteFactory(driver=driver, mode=Route.Mode.ONLINE, dest_lat=None, dest_lng=None)
    Location.objects.create(driver=driver, lat=Decimal("36.15"), lng=Decimal("-86.78"))
    return driver


def test_warning_14_days_ahead_is_sent_once(commit):
    # given a driver whose license expires in exactly 14 days, and others not due
    due = DriverFactory(license_expires_on=TODAY + timedelta(days=14), insurance_expires_on=FAR)
    DriverFactory(license_expires_on=TODAY + timedelta(days=15), insurance_expires_on=FAR)
    DriverFactory(
        license_expires_on=TODAY + timedelta(days=3),
        insurance_expires_on=FAR,
        status=Driver.Status.DEACTIVATED,
        reason_code="fraud",
    )
    # when the beat task runs twice
    assert run_check(commit) == {"warned": 1, "suspended": 0}
    assert run_check(commit) == {"warned": 0, "suspended": 0}
    # then one email went to that driver
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [due.user.email]
    assert message.subject == "Spark: your driver's license expires soon"
    assert "expires on Monday, June 15, 2026 (in 14 days)" in message.body
    assert "June 15, 2026" in message.alternatives[0][0]
    assert DriverNotice.objects.get().kind == DriverNotice.Kind.DOCUMENTS_EXPIRING


def test_a_document_inside_the_window_not_yet_warned_is_warned_once(commit):
    # a driver whose insurance, entered late, expires in 5 days
    driver = DriverFactory(license_expires_on=FAR, insurance_expires_on=TODAY + timedelta(days=5))
    assert run_check(commit)["warned"] == 1
    with time_machine.travel(NOW + timedelta(days=1), tick=False):
        assert run_check(commit)["warned"] == 0
    assert [m.subject for m in mail.outbox] == ["Spark: your proof of insurance expires soon"]
    # a renewal with a new date is a new document: warned again when that one comes close
    Driver.objects.filter(pk=driver.pk).update(insurance_expires_on=TODAY + timedelta(days=10))
    assert run_check(commit)["warned"] == 1


def test_expired_document_takes_an_active_driver_off_duty(commit):
    # given an online driver whose insurance expired yesterday
    driver = online_driver(insurance_expires_on=TODAY - timedelta(days=1))
    # when the check runs
    assert run_check(commit) == {"warned": 0, "suspended": 1}
    # then they are suspended for documents, offline, their online route ended, and told
    driver.refresh_from_db()
    assert (driver.status, driver.reason_code, driver.is_online) == ("suspended", "documents_expired", False)
    assert "insurance expired on May 31, 2026" in driver.reason_note
    assert not Route.objects.filter(driver=driver, is_active=True).exists()
    assert not Location.objects.filter(driver=driver).exists()
    event = driver.events.get()
    assert (event.to_status, event.reason_code) == ("suspended", "documents_expired")
    assert [m.subject for m in mail.outbox] == [
        "Spark: your proof of insurance expired; you are off duty until renewed"
    ]
    assert "expired on Sunday, May 31, 2026" in mail.outbox[0].body
    # and a second run changes nothing and sends nothing
    assert run_check(commit) == {"warned": 0, "suspended": 0}
    assert driver.events.count() == 1 and len(mail.outbox) == 1


def test_a_document_valid_through_today_is_not_expired(commit):
    driver = DriverFactory(license_expires_on=TODAY, insurance_expires_on=FAR)
    assert run_check(commit) == {"warned": 1, "suspended": 0}  # "expires today" warning
    driver.refresh_from_db()
    assert driver.status == Driver.Status.ACTIVE
    assert "(today)" in mail.outbox[0].body


def test_other_suspensions_are_left_alone(commit):
    driver = DriverFactory(license_expires_on=TODAY - timedelta(days=3))
    driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code="safety")
    assert run_check(commit)["suspended"] == 0
    driver.refresh_from_db()
    assert driver.reason_code == "safety"
    # and renewing the document does not lift a safety suspension
    Driver.objects.filter(pk=driver.pk).update(license_expires_on=FAR)
    assert services.documents_renewed(driver=driver, actor=None) is False
    driver.refresh_from_db()
    assert driver.status == Driver.Status.SUSPENDED


def test_renewed_documents_reinstate_the_driver(commit, ops_user):
    # given a driver taken off duty for an expired license and insurance
    driver = online_driver(license_expires_on=TODAY - timedelta(days=2), insurance_expires_on=TODAY - timedelta(days=1))
    run_check(commit)
    assert mail.outbox[0].subject.startswith("Spark: your driver's license and proof of insurance expired")
    # when only the license is renewed: still off duty
    Driver.objects.filter(pk=driver.pk).update(license_expires_on=FAR)
    assert services.documents_renewed(driver=driver, actor=ops_user) is False
    driver.refresh_from_db()
    assert driver.status == Driver.Status.SUSPENDED
    # when the insurance is renewed too: active again, the reason cleared
    Driver.objects.filter(pk=driver.pk).update(insurance_expires_on=FAR)
    assert services.documents_renewed(driver=driver, actor=ops_user) is True
    driver.refresh_from_db()
    assert (driver.status, driver.reason_code, driver.reason_note) == ("active", "", "")
    last = driver.events.last()
    assert (last.from_status, last.to_status, last.actor) == ("suspended", "active", ops_user)
    # and a repeat changes nothing
    assert services.documents_renewed(driver=driver, actor=ops_user) is False
    assert driver.events.count() == 2


def test_each_zone_uses_its_own_date(commit):
    # 17:00 UTC on June 1 is already June 2 in a zone far east; a document valid through June 1 expired there
    east = ZoneFactory(name="Guam", slug="guam", timezone="Pacific/Guam")
    there = DriverFactory(home_zone=east, license_expires_on=TODAY, insurance_expires_on=FAR)
    here = DriverFactory(license_expires_on=TODAY, insurance_expires_on=FAR)
    assert run_check(commit)["suspended"] == 1
    assert Driver.objects.get(pk=there.pk).status == Driver.Status.SUSPENDED
    assert Driver.objects.get(pk=here.pk).status == Driver.Status.ACTIVE


def test_beat_runs_the_document_check_and_the_screening_sweeper():
    from spark.celery import app

    schedule = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    assert schedule["payments.tasks.check_document_expiry"] <= timedelta(hours=24)
    assert schedule["payments.tasks.sweep_screening"] <= timedelta(minutes=15)
    assert {
        "payments.tasks.check_document_expiry",
        "payments.tasks.sweep_screening",
        "payments.tasks.enrol_contractor",
    } <= set(app.tasks)
