"""The Celery app. Tasks take ids, are idempotent and are queued after the transaction commits."""

import os
from time import monotonic

from celery import Celery
from django.db import transaction
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.filesystem import Transport as FilesystemTransport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spark.settings.local")


def _worker_shutdown_requested() -> bool:
    from celery.worker import state

    # Celery sets these to an exit code (0 included) when asked to stop.
    return any(flag is not None and flag is not False for flag in (state.should_stop, state.should_terminate))


class EmbeddedFilesystemTransport(FilesystemTransport):
    """kombu's filesystem transport (the embedded default's broker) with a worker that stops quickly.

    The filesystem transport has no event loop, so the worker drains it in Celery's blocking
    loop, 2 s per call, and does one more such call after a shutdown request: a warm shutdown
    took about 5 s, which is when honcho (`make run`) SIGKILLs. A killed worker loses the
    countdown tasks it holds, since only a clean shutdown puts them back into the queue folder.
    Here a drain gives up within 0.25 s once a shutdown was requested; nothing else changes.
    """

    shutdown_check_seconds = 0.25

    def drain_events(self, connection, timeout=None):
        deadline = None if timeout is None else monotonic() + timeout
        while not _worker_shutdown_requested():
            step = self.shutdown_check_seconds
            if deadline is not None:
                step = min(step, deadline - monotonic())
                if step <= 0:
                    break
            try:
                return super().drain_events(connection, timeout=step)
            except TimeoutError:  # socket.timeout
                continue
        raise TimeoutError()


# `sparkfs://` is the broker URL of the embedded default (spark/settings/base.py).
TRANSPORT_ALIASES.setdefault("sparkfs", "spark.celery:EmbeddedFilesystemTransport")

app = Celery("spark")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def queue_on_commit(task, *args, countdown: float | None = None, eta=None, **kwargs) -> None:
    """Queue `task` with plain (JSON) arguments once the current transaction commits.

    Queueing inside the transaction lets a worker pick the task up before the rows it
    needs are visible; on_commit runs right away when there is no transaction.
    """
    from django.conf import settings

    if eta is not None:
        from django.utils import timezone

        countdown_equiv = (eta - timezone.now()).total_seconds()
        if countdown_equiv > settings.SPARK_MAX_TASK_COUNTDOWN_SECONDS:
            raise ValueError("eta beyond SPARK_MAX_TASK_COUNTDOWN_SECONDS; rely on the beat sweeper")
    if countdown is not None and countdown > settings.SPARK_MAX_TASK_COUNTDOWN_SECONDS:
        raise ValueError("countdown above SPARK_MAX_TASK_COUNTDOWN_SECONDS; rely on the beat sweeper")
    options = {"eta": eta} if eta is not None else {"countdown": countdown}
    transaction.on_commit(lambda: task.apply_async(args=args, kwargs=kwargs, **options))
