"""The seam between drivers and orders: orders installs the handlers of its hooks
(spark.hooks), through which drivers asks about the batch a driver holds without importing
orders (the whole story of a held batch is in drivers/tests/test_held_batches.py)."""

import pytest

from drivers.models import Driver, DriverEvent
from drivers.services import driver_set_status
from drivers.tests.factories import DriverFactory
from orders import held_batches, selectors
from orders.models import Batch
from orders.tests.factories import BatchFactory
from spark import hooks
from spark.errors import DomainError

pytestmark = pytest.mark.django_db


def test_orders_installs_its_handlers():
    assert hooks.held_batch_plan._handler is held_batches.held_batch_plan
    assert hooks.held_batch_apply._handler is held_batches.held_batch_apply
    assert hooks.driver_holds_batch._handler is selectors.driver_holds_batch


def test_driver_holds_batch_counts_only_an_active_batch(store):
    driver = DriverFactory(home_zone=store.zone)
    assert hooks.driver_holds_batch(driver_id=driver.pk) is False
    BatchFactory(store=store, driver=driver, status=Batch.Status.COMPLETED)
    assert hooks.driver_holds_batch(driver_id=driver.pk) is False
    BatchFactory(store=store, driver=driver, status=Batch.Status.ASSIGNED)
    assert hooks.driver_holds_batch(driver_id=driver.pk) is True


def test_an_unknown_batch_decision_is_refused_whatever_the_new_status():
    driver = DriverFactory(status=Driver.Status.SUSPENDED, reason_code=Driver.ReasonCode.SAFETY)
    with pytest.raises(DomainError) as err:
        driver_set_status(driver=driver, to=Driver.Status.ACTIVE, batch_decision="keep")
    assert err.value.code == "bad_batch_decision"
    driver.refresh_from_db()
    assert driver.status == Driver.Status.SUSPENDED
    assert not DriverEvent.objects.filter(driver=driver).exists()


def test_no_plan_without_a_held_batch_or_going_back_to_work(store):
    driver = DriverFactory(home_zone=store.zone)
    assert hooks.held_batch_plan(driver=driver, to=Driver.Status.SUSPENDED, decision=None) is None
    batch = BatchFactory(store=store, driver=driver, status=Batch.Status.PICKED_UP)
    assert hooks.held_batch_plan(driver=driver, to=Driver.Status.ACTIVE, decision=None) is None
    plan = hooks.held_batch_plan(driver=driver, to=Driver.Status.SUSPENDED, decision=None)
    assert (plan.batch.pk, plan.decision, plan.summary) == (
        batch.pk,
        "finish",
        f"held batch {batch.pk}: may finish it first",
    )
    with pytest.raises(DomainError) as err:
        hooks.held_batch_plan(driver=driver, to=Driver.Status.SUSPENDED, decision="dispatch")
    assert err.value.code == "batch_picked_up"
