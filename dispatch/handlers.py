"""What dispatch does when a lower layer sets it off: the handlers of spark.hooks."""

from spark import hooks

from . import services


def install() -> None:
    """Called once by DispatchConfig.ready()."""
    hooks.batch_published.install(services.batch_on_offer)
    hooks.batch_withdrawn.install(services.offers_withdraw)
    hooks.batch_taken_from_driver.install(services.batch_take_from_driver)
    hooks.driver_cannot_act.install(services.offers_withdraw_for_driver)
    hooks.held_batch_to_dispatch.install(services.batch_release_to_dispatch)
