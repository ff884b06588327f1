"""driver_set_status: applicant -> screening -> active -> suspended -> deactivated, with reasons."""

import pytest
from django.utils import timezone

from drivers.models import Driver
from drivers.services import driver_set_status
from drivers.tests.factories import DriverFactory
from spark.errors import DomainError, InvalidTransition

pytestmark = pytest.mark.django_db


def test_onboarding_path_writes_one_event_per_step(ops_user):
    # given an applicant
    driver = DriverFactory(status=Driver.Status.APPLICANT)
    # when ops moves them through screening to active
    r1 = driver_set_status(driver=driver, to=Driver.Status.SCREENING, actor=ops_user, note="documents in")
    r2 = driver_set_status(driver=driver, to=Driver.Status.ACTIVE, actor=ops_user, note="cleared")
    # then each step changed the row and wrote exactly one event with from/to/actor/reason
    assert r1.changed and r2.changed
    assert driver.status == Driver.Status.ACTIVE
    events = list(driver.events.all())
    assert [(e.from_status, e.to_status, e.actor, e.reason) for e in events] == [
        ("applicant", "screening", ops_user, "documents in"),
        ("screening", "active", ops_user, "cleared"),
    ]


def test_forbidden_transition_changes_nothing():
    driver = DriverFactory(status=Driver.Status.APPLICANT)
    with pytest.raises(InvalidTransition):
        driver_set_status(driver=driver, to=Driver.Status.ACTIVE)
    driver.refresh_from_db()
    assert driver.status == Driver.Status.APPLICANT
    assert driver.events.count() == 0


def test_repeat_is_a_no_op(ops_user):
    driver = DriverFactory(status=Driver.Status.APPLICANT)
    driver_set_status(driver=driver, to=Driver.Status.SCREENING, actor=ops_user)
    result = driver_set_status(driver=driver, to=Driver.Status.SCREENING, actor=ops_user)
    assert result.changed is False
    assert driver.events.count() == 1


@pytest.mark.parametrize("to", [Driver.Status.SUSPENDED, Driver.Status.DEACTIVATED])
def test_suspension_needs_a_reason_code(to):
    driver = DriverFactory(is_online=True, online_since=timezone.now())
    with pytest.raises(DomainError) as exc:
        driver_set_status(driver=driver, to=to, note="no code given")
    assert exc.value.code == "reason_required"
    driver.refresh_from_db()
    assert driver.status == Driver.Status.ACTIVE
    assert driver.is_online is True
    assert driver.events.count() == 0


def test_suspension_takes_the_driver_offline(ops_user):
    # given an active driver who is online
    driver = DriverFactory(is_online=True, online_since=timezone.now())
    # when ops suspends them for expired documents
    result = driver_set_status(
        driver=driver,
        to=Driver.Status.SUSPENDED,
        actor=ops_user,
        reason_code=Driver.ReasonCode.DOCUMENTS_EXPIRED,
        note="insurance expired",
    )
    # then they are offline, the reason is on the driver and on the event
    assert result.changed
    assert driver.status == Driver.Status.SUSPENDED
    assert driver.is_online is False
    assert driver.online_since is None
    assert driver.reason_code == Driver.ReasonCode.DOCUMENTS_EXPIRED
    assert driver.reason_note == "insurance expired"
    event = driver.events.get()
    assert (event.from_status, event.to_status, event.actor) == ("active", "suspended", ops_user)
    assert event.reason == "insurance expired"


def test_suspension_repeated_changes_nothing(ops_user):
    driver = DriverFactory()
    driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=Driver.ReasonCode.SAFETY)
    result = driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=Driver.ReasonCode.SAFETY)
    assert result.changed is False
    assert driver.events.count() == 1


def test_reinstating_clears_the_reason(ops_user):
    driver = DriverFactory()
    driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=Driver.ReasonCode.QUALITY, note="late")
    result = driver_set_status(driver=driver, to=Driver.Status.ACTIVE, actor=ops_user, note="appeal upheld")
    assert result.changed
    driver.refresh_from_db()
    assert driver.status == Driver.Status.ACTIVE
    assert (driver.reason_code, driver.reason_note) == ("", "")
    assert driver.is_online is False  # reinstating does not put anyone online
    assert driver.events.count() == 2


def test_deactivated_driver_reinstated_on_appeal():
    driver = DriverFactory()
    driver_set_status(driver=driver, to=Driver.Status.DEACTIVATED, reason_code=Driver.ReasonCode.FRAUD)
    with pytest.raises(InvalidTransition):
        driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=Driver.ReasonCode.FRAUD)
    driver_set_status(driver=driver, to=Driver.Status.ACTIVE, note="appeal upheld")
    assert driver.status == Driver.Status.ACTIVE
    assert driver.reason_code == ""


def test_suspension_event_records_the_reason_code():
    driver = DriverFactory()
    driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=Driver.ReasonCode.SAFETY, note="report")
    assert driver.events.get().reason_code == Driver.ReasonCode.SAFETY


def test_unknown_reason_code_is_refused():
    driver = DriverFactory()
    with pytest.raises(DomainError):
        driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code="because")
    driver.refresh_from_db()
    assert driver.status == Driver.Status.ACTIVE
