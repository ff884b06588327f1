"""The handlers payments installs on spark.hooks (PaymentsConfig.ready()): how orders, a lower
layer, sets off payments."""

from spark.celery import queue_on_commit

from . import tasks


def batch_closed(*, batch_id: int) -> None:
    """A batch completed or returned: settle its pay once the change is committed. Should the
    task be lost, the beat sweep (payments.tasks.sweep_unsettled_batches) settles it."""
    queue_on_commit(tasks.settle_batch, batch_id)
