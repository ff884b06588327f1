"""The seam between the lower layers and dispatch: dispatch installs the handlers of its hooks
(spark.hooks; that every hook has one is in spark/tests/test_hooks.py)."""

from dispatch import services
from spark import hooks


def test_dispatch_installs_its_handlers():
    assert hooks.batch_published._handler is services.batch_on_offer
    assert hooks.batch_withdrawn._handler is services.offers_withdraw
    assert hooks.batch_taken_from_driver._handler is services.batch_take_from_driver
    assert hooks.driver_cannot_act._handler is services.offers_withdraw_for_driver
    assert hooks.held_batch_to_dispatch._handler is services.batch_release_to_dispatch
