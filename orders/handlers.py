"""What orders does when drivers (a lower layer) set it off or ask it: the handlers of
spark.hooks that orders installs."""

from spark import hooks

from . import delivery, held_batches, selectors


def install() -> None:
    """Called once by OrdersConfig.ready()."""
    hooks.held_batch_plan.install(held_batches.held_batch_plan)
    hooks.held_batch_apply.install(held_batches.held_batch_apply)
    hooks.driver_holds_batch.install(selectors.driver_holds_batch)
    hooks.driver_at_store.install(delivery.batch_check_in_present)
