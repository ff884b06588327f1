"""DESIGN rule 6, one rule for every surface: a driver sees a batch's exact customer addresses
from the moment the batch is theirs (assigned) until SPARK_ADDRESS_VISIBLE_HOURS after it
closed, and never for a batch that is not theirs. The selector decides
(orders.selectors.batch_addresses_visible_to); the driver API and the driver app both ask it."""

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from drivers.tests.factories import DriverFactory
from orders import selectors
from orders.batch_editing import batch_create, batch_publish
from orders.delivery import batch_check_in, batch_handoff
from orders.models import Batch
from orders.tests.factories import OrderFactory
from orders.transitions import batch_set_status

pytestmark = pytest.mark.django_db

SECRET = "Secret Lane"


def batch_for(store, driver, *, to: str) -> Batch:
    """A two-stop batch of `driver`, taken to status `to` (assigned, at_store or picked_up)."""
    orders = [OrderFactory(store=store, address_line1=f"{700 + i} {SECRET}") for i in range(2)]
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    batch_set_status(batch=batch, to=Batch.Status.ASSIGNED, updates={"driver": driver})
    if to in ("at_store", "picked_up"):
        batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    if to == "picked_up":
        batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    batch.refresh_from_db()
    return batch


def api_sees(driver, batch) -> bool:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=driver.user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    res = client.get(f"/api/v1/driver/batches/{batch.pk}/")
    if res.status_code == 404:
        return False
    assert res.status_code == 200
    shown = SECRET in res.content.decode()
    assert res.json()["addresses_visible"] is shown
    return shown


def app_sees(driver) -> bool:
    client = Client()
    client.force_login(driver.user)
    res = client.get("/driver/batch/")
    assert res.status_code == 200
    return SECRET in res.content.decode()


@pytest.mark.parametrize("status", ["assigned", "at_store", "picked_up"])
def test_from_the_claim_on_both_surfaces_show_the_addresses(store, driver, status):
    batch = batch_for(store, driver, to=status)
    assert selectors.batch_addresses_visible_to(batch=batch, driver=driver) is True
    assert api_sees(driver, batch) is True
    assert app_sees(driver) is True


@pytest.mark.parametrize("status", ["assigned", "picked_up"])
def test_never_for_a_batch_that_is_not_theirs(store, driver, other_driver, status):
    batch = batch_for(store, other_driver, to=status)
    assert selectors.batch_addresses_visible_to(batch=batch, driver=driver) is False
    assert api_sees(driver, batch) is False
    assert app_sees(driver) is False


def test_never_before_the_batch_is_anyones(store, driver):
    orders = [OrderFactory(store=store, address_line1=f"1 {SECRET}")]
    batch = batch_create(store=store, orders=orders)
    assert selectors.batch_addresses_visible_to(batch=batch, driver=driver) is False
    batch_publish(batch=batch)
    batch.refresh_from_db()
    assert selectors.batch_addresses_visible_to(batch=batch, driver=driver) is False


def test_until_24_hours_after_close_and_not_a_second_longer(store, driver, settings):
    settings.SPARK_ADDRESS_VISIBLE_HOURS = 24
    batch = batch_for(store, driver, to="picked_up")
    closed = timezone.now()
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.COMPLETED, closed_at=closed)
    batch.refresh_from_db()
    with time_machine.travel(closed + timedelta(hours=24) - timedelta(seconds=1), tick=False):
        assert selectors.batch_addresses_visible_to(batch=batch, driver=driver) is True
        assert api_sees(driver, batch) is True
    with time_machine.travel(closed + timedelta(hours=24), tick=False):
        assert selectors.batch_addresses_visible_to(batch=batch, driver=driver) is False
        assert api_sees(driver, batch) is False
    # `now` may be passed in (a page renders many batches against one clock)
    assert selectors.batch_addresses_visible_to(batch=batch, driver=driver, now=closed + timedelta(hours=30)) is False


def test_a_batch_taken_back_from_the_driver_is_no_longer_theirs(store, driver):
    batch = batch_for(store, driver, to="assigned")
    other = DriverFactory()
    Batch.objects.filter(pk=batch.pk).update(driver=other)
    batch.refresh_from_db()
    assert selectors.batch_addresses_visible_to(batch=batch, driver=driver) is False
    assert api_sees(driver, batch) is False
