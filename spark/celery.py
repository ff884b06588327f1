"""The Celery app. Tasks take ids, are idempotent and are queued after the transaction commits."""

import logging
import os
import threading
from time import monotonic

from celery import Celery
from django.db import transaction
from kombu.connection import ConnectionPool
from kombu.exceptions import LimitExceeded, OperationalError
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.filesystem import Transport as FilesystemTransport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spark.settings.local")

logger = logging.getLogger(__name__)


def _worker_shutdown_requested() -> bool:
    from celery.worker import state

    # Celery sets these to an exit code (0 included) when asked to stop.
    return any(flag is not None and flag is not False for flag in (state.should_stop, state.should_terminate))


class EmbeddedFilesystemTransport(FilesystemTransport):
    """kombu's filesystem transport (the embedded default's broker) with a worker that stops quickly.

    The filesystem transport has no event loop, so the worker drains it in Celery's blocking
    loop, 2 s per call, and does one more such call after a shutdown request: a warm shutdown
    took about 5 s, which is when `make run` (then under honcho) SIGKILLed. A killed worker loses
    the countdown tasks it holds, since only a clean shutdown puts them back into the queue folder.
    Here a drain gives up within 0.25 s once a shutdown was requested; nothing else changes.
    """

    shutdown_check_seconds = 0.25

    def drain_events(self, connection, timeout=None, **kwargs):
        deadline = None if timeout is None else monotonic() + timeout
        while not _worker_shutdown_requested():
            step = self.shutdown_check_seconds
            if deadline is not None:
                step = min(step, deadline - monotonic())
                if step <= 0:
                    break
            try:
                return super().drain_events(connection, timeout=step, **kwargs)
            except TimeoutError:  # socket.timeout
                continue
        raise TimeoutError()


# `sparkfs://` is the broker URL of the embedded default (spark/settings/base.py).
TRANSPORT_ALIASES.setdefault("sparkfs", "spark.celery:EmbeddedFilesystemTransport")

app = Celery("spark")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Publishing after a commit must neither hold a request for long when the broker is down nor turn
# the committed change into an error page. Publishes from queue_on_commit therefore go through
# their own connections with short socket timeouts (the worker's long-lived BRPOP connections
# keep kombu's defaults: a read timeout there would break its blocking reads) and get one
# immediate reconnect instead of Celery's default three retries. A publish that still fails is
# logged and dropped: the beat sweeper behind each task does the same work later (DESIGN rule 3).
# After a failure, publishes are skipped for PUBLISH_BACKOFF_SECONDS, so a request that queues
# several tasks, or a crowd of requests, does not wait out the timeout once per task.
PUBLISH_TIMEOUT_SECONDS = 1.0
PUBLISH_BACKOFF_SECONDS = 5.0
_PUBLISH_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": PUBLISH_TIMEOUT_SECONDS,  # Redis: connect
    "socket_timeout": PUBLISH_TIMEOUT_SECONDS,  # Redis: every reply (PING, LPUSH)
    "max_retries": 0,  # establishing the connection: no retry loop (kombu retries until connect_timeout)
}
_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}


def _fast_connection():
    """A new broker connection with the short timeouts above (not connected yet)."""
    return app.connection_for_write(
        connect_timeout=PUBLISH_TIMEOUT_SECONDS, transport_options=_PUBLISH_TRANSPORT_OPTIONS
    )


def _broker_errors(connection) -> tuple[type[BaseException], ...]:
    # What a broker that is down, hung or overloaded raises (kombu wraps most of it in
    # OperationalError). Not caught: encoding errors and the like, which are bugs.
    return (OperationalError, LimitExceeded, *connection.connection_errors)


class _Publisher:
    """The connection pool of queue_on_commit for one broker URL, and its back-off."""

    def __init__(self) -> None:
        self.pool: ConnectionPool = _fast_connection().Pool(limit=app.conf.broker_pool_limit)
        self.errors = _broker_errors(self.pool.connection)
        self.skip_until = 0.0  # monotonic time

    def publish(self, task, args: tuple, kwargs: dict, options: dict) -> bool:
        name = getattr(task, "name", task)
        if monotonic() < self.skip_until:
            logger.warning(
                "broker unavailable (failed less than %s s ago), task %s%r not queued "
                "(the beat sweepers redo swept work)",
                PUBLISH_BACKOFF_SECONDS,
                name,
                args,
            )
            return False
        try:
            with self.pool.acquire(block=True, timeout=PUBLISH_TIMEOUT_SECONDS) as conn:
                task.apply_async(
                    args=args, kwargs=kwargs, connection=conn, retry=True, retry_policy=_PUBLISH_RETRY_POLICY, **options
                )
        except self.errors as exc:
            self.skip_until = monotonic() + PUBLISH_BACKOFF_SECONDS
            logger.warning(
                "broker unavailable, task %s%r not queued (the beat sweepers redo swept work): %s: %s",
                name,
                args,
                type(exc).__name__,
                exc,
            )
            return False
        return True


_publishers: dict[str, _Publisher] = {}
_publishers_lock = threading.Lock()


def _forget_publishers_after_fork() -> None:
    # A forked process (Celery's prefork pool, gunicorn --preload) must not share its parent's
    # broker sockets, nor inherit a lock another thread of the parent held at the fork.
    global _publishers_lock
    _publishers.clear()
    _publishers_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_publishers_after_fork)


def _publisher() -> _Publisher:
    # One per broker URL: the URL only changes in tests that point Celery elsewhere.
    url = app.conf.broker_write_url or app.conf.broker_url
    with _publishers_lock:
        if url not in _publishers:
            _publishers[url] = _Publisher()
        return _publishers[url]


def broker_check() -> str | None:
    """None when the broker answers (a fresh connection: Redis is PINGed), else what failed.
    Bounded by the publish timeouts, so a health check never hangs on a dead broker."""
    conn = _fast_connection()
    try:
        with conn:
            conn.ensure_connection(max_retries=0, timeout=PUBLISH_TIMEOUT_SECONDS)
    except _broker_errors(conn) as exc:
        logger.warning("broker check failed: %s: %s", type(exc).__name__, exc)
        return type(exc).__name__
    return None


def queue_on_commit(task, *args, countdown: float | None = None, eta=None, **kwargs) -> None:
    """Queue `task` with plain (JSON) arguments once the current transaction commits.

    Queueing inside the transaction lets a worker pick the task up before the rows it
    needs are visible; on_commit runs right away when there is no transaction. When the
    broker is down the task is not sent (see _Publisher) and the caller carries on: the change
    is committed, and the task's beat sweeper does its work once the broker is back.
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
    transaction.on_commit(lambda: _publisher().publish(task, args, kwargs, options))
