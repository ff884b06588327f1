"""Calls and texts without sharing numbers (orders.contact): the driver of an active batch gets
a masked number for the customer of an open stop or for the store, through the provider seam;
the provider alone gets the real numbers. Finished stops, closed batches, missing numbers and
another driver's batch are refused and rent nothing."""

import logging

import pytest

from drivers.tests.factories import DriverFactory
from orders.contact import CONSOLE_PROXY_NUMBER, contact_customer, contact_store, notes_ask_for_call
from orders.delivery import stop_arrive, stop_fail
from orders.models import Batch
from orders.tests import helpers
from orders.tests.helpers import make_batch
from orders.transitions import batch_set_status
from spark.errors import Conflict

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider(settings):
    settings.SPARK_CONTACT_BACKEND = "orders.tests.helpers.recording_proxy"
    helpers.proxy_requests.clear()
    yield helpers.proxy_requests
    helpers.proxy_requests.clear()


def test_console_backend_logs_the_session_and_lends_the_stand_in_number(settings, store, driver, caplog):
    # given the development backend and a picked-up batch
    settings.SPARK_CONTACT_BACKEND = "console"
    batch, stops = make_batch(store, driver)
    # when the driver asks to call the first customer
    with caplog.at_level(logging.INFO, logger="spark.contact"):
        session = contact_customer(driver=driver, stop=stops[0])
    # then they get the stand-in number and a session, and the log says who it bridges
    assert session.party == "customer" and session.proxy_number == CONSOLE_PROXY_NUMBER
    assert session.session_id.startswith("console-")
    assert session.proxy_number != stops[0].order.customer_phone
    assert session.session_id in caplog.text and stops[0].order.customer_phone in caplog.text


def test_the_provider_gets_both_real_numbers_and_a_repeat_reuses_the_session(provider, store, driver):
    batch, stops = make_batch(store, driver)
    first = contact_customer(driver=driver, stop=stops[0])
    again = contact_customer(driver=driver, stop=stops[0])
    assert again == first and first.proxy_number == "+16155550177"
    assert len(provider) == 1
    asked = provider[0]
    assert (asked.driver_phone, asked.other_phone) == (driver.phone, stops[0].order.customer_phone)
    assert asked.reference == f"batch-{batch.pk}-customer:{stops[0].pk}"
    # another stop is another session
    contact_customer(driver=driver, stop=stops[1])
    assert len(provider) == 2


def test_the_store_is_reachable_from_check_in_to_the_return(provider, store, driver):
    store.phone = "+16155550150"
    store.save()
    batch, _ = make_batch(store, driver, picked_up=False)
    session = contact_store(driver=driver, batch=batch)
    assert session.party == "store"
    assert provider[0].other_phone == "+16155550150"


@pytest.mark.parametrize("finish", ["fail", "arrive_then_fail"])
def test_a_finished_stop_is_refused_and_rents_nothing(provider, store, driver, finish):
    batch, stops = make_batch(store, driver)
    if finish == "arrive_then_fail":
        stop_arrive(stop=stops[0], driver=driver)
    stop_fail(stop=stops[0], driver=driver, reason="no_one_home")
    stops[0].refresh_from_db()
    with pytest.raises(Conflict) as refused:
        contact_customer(driver=driver, stop=stops[0])
    assert refused.value.code == "stop_finished"
    assert provider == []


def test_a_closed_batch_is_refused(provider, store, driver):
    batch, stops = make_batch(store, driver, picked_up=False)
    store.phone = "+16155550150"
    store.save()
    batch_set_status(batch=batch, to=Batch.Status.CANCELLED)
    batch.refresh_from_db()
    for call in (
        lambda: contact_store(driver=driver, batch=batch),
        lambda: contact_customer(driver=driver, stop=stops[0]),
    ):
        with pytest.raises(Conflict) as refused:
            call()
        assert refused.value.code == "batch_not_active"
    assert provider == []


def test_missing_numbers_and_another_drivers_batch_are_refused(provider, store, driver):
    batch, stops = make_batch(store, driver)
    order = stops[0].order
    order.customer_phone = ""
    order.save()
    with pytest.raises(Conflict) as no_customer_phone:
        contact_customer(driver=driver, stop=stops[0])
    with pytest.raises(Conflict) as no_store_phone:
        contact_store(driver=driver, batch=batch)
    with pytest.raises(Conflict) as not_theirs:
        contact_customer(driver=DriverFactory(), stop=stops[1])
    assert (no_customer_phone.value.code, no_store_phone.value.code) == ("no_phone", "no_phone")
    assert not_theirs.value.code == "not_your_batch"
    assert provider == []


@pytest.mark.parametrize(
    ("notes", "asks"),
    [
        ("Call me when here", True),
        ("please CALL on arrival", True),
        ("Phone me at the gate", True),
        ("Llámame cuando llegues", True),
        ("Marca a mi teléfono", True),
        ("Leave at the side door", False),
        ("Recall: dog in the yard", False),
        ("", False),
    ],
)
def test_notes_asking_for_a_call(notes, asks):
    assert notes_ask_for_call(notes) is asks
