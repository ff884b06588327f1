"""Drivers' help requests (orders.support): filed with a topic, a short plain text and
optionally one of the driver's batches; bad input files nothing; a flood is refused; ops
resolve once, and a second resolve changes nothing."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from drivers.tests.factories import DriverFactory
from orders.models import SupportRequest
from orders.support import MAX_PER_HOUR, TEXT_MAX, support_request_create, support_request_resolve
from orders.tests.helpers import make_batch
from spark.errors import DomainError, NotFound, RateLimited
from stores.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_report_lands_in_the_queue_with_its_batch(store, driver):
    batch, _ = make_batch(store, driver)
    report = support_request_create(
        driver=driver, topic="order", text="  The gate code did not work.\r\nCustomer not answering.\x00 ", batch=batch
    )
    assert (report.status, report.topic, report.batch, report.driver) == ("open", "order", batch, driver)
    # stored as plain text: trimmed, Windows line ends and control characters gone
    assert report.text == "The gate code did not work.\nCustomer not answering."


@pytest.mark.parametrize(
    ("topic", "text", "field"),
    [
        ("order", "short", "text"),
        ("order", "\x00\x01\x02" * 10, "text"),
        ("order", "x" * (TEXT_MAX + 1), "text"),
        ("weather", "It is raining a lot today", "topic"),
        ("", "It is raining a lot today", "topic"),
    ],
)
def test_bad_input_files_nothing(driver, topic, text, field):
    with pytest.raises(DomainError) as refused:
        support_request_create(driver=driver, topic=topic, text=text)
    assert field in refused.value.fields
    assert not SupportRequest.objects.exists()


def test_another_drivers_batch_is_not_found(store, driver):
    batch, _ = make_batch(store, DriverFactory())
    with pytest.raises(NotFound):
        support_request_create(driver=driver, topic="store", text="The store was closed at pickup", batch=batch)
    assert not SupportRequest.objects.exists()


def test_a_flood_of_reports_is_refused_until_the_hour_is_over(driver):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for _ in range(MAX_PER_HOUR):
            support_request_create(driver=driver, topic="app", text="The app froze on the stop screen")
        with pytest.raises(RateLimited) as refused:
            support_request_create(driver=driver, topic="app", text="The app froze on the stop screen")
    assert refused.value.retry_after == 3601
    assert SupportRequest.objects.count() == MAX_PER_HOUR
    with time_machine.travel(start + timedelta(hours=1, seconds=1), tick=False):
        support_request_create(driver=driver, topic="app", text="The app froze on the stop screen")


def test_resolving_is_done_once(driver):
    ops = UserFactory(is_staff=True)
    report = support_request_create(driver=driver, topic="pay", text="Batch pay missing the tip")
    assert support_request_resolve(support_request=report, by=ops) is True
    resolved_at = report.resolved_at
    assert (report.status, report.resolved_by) == ("resolved", ops) and resolved_at
    assert support_request_resolve(support_request=report, by=UserFactory(is_staff=True)) is False
    report.refresh_from_db()
    assert (report.resolved_at, report.resolved_by) == (resolved_at, ops)
