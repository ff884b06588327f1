"""The Celery app: JSON only, late acks, time limits, the sweeper scheduled, safe countdowns."""

from unittest import mock

import pytest
from django.conf import settings

from spark.celery import app, queue_on_commit


def test_app_is_json_only():
    assert app.conf.task_serializer == "json"
    assert app.conf.result_serializer == "json"
    assert list(app.conf.accept_content) == ["json"]


def test_tasks_are_acked_late_and_redelivered_when_a_worker_dies():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_tasks_have_time_limits():
    assert app.conf.task_time_limit and app.conf.task_time_limit > 0
    assert app.conf.task_soft_time_limit and 0 < app.conf.task_soft_time_limit < app.conf.task_time_limit


def test_beat_runs_the_offer_sweeper():
    import dispatch.tasks

    schedule = app.conf.beat_schedule
    sweepers = [entry for entry in schedule.values() if entry["task"] == "dispatch.tasks.sweep_expired_offers"]
    assert len(sweepers) == 1
    # the entry names a task that exists
    assert dispatch.tasks.sweep_expired_offers.name == "dispatch.tasks.sweep_expired_offers"
    assert "dispatch.tasks.sweep_expired_offers" in app.tasks
    # often enough that an offer is never left pending long past its deadline
    assert sweepers[0]["schedule"].total_seconds() <= 30


def test_tests_use_redis_as_the_broker():
    assert app.conf.broker_url.startswith("redis://")


def test_visibility_timeout_far_above_any_countdown():
    # Redis redelivers an unacked task after visibility_timeout; a countdown task merely
    # waiting must never be redelivered (it would run twice, or worse, loop).
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility == settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert visibility >= 2 * settings.SPARK_MAX_TASK_COUNTDOWN_SECONDS
    # and the offer TTL is far below the max countdown
    assert settings.SPARK_OFFER_TTL_SECONDS * 10 <= settings.SPARK_MAX_TASK_COUNTDOWN_SECONDS


def _fake_task():
    return mock.Mock(spec=["apply_async"])


def _sent(task) -> dict:
    """What the task was sent with, without the broker connection and retry options."""
    options = dict(task.apply_async.call_args.kwargs)
    for name in ("connection", "retry", "retry_policy"):
        options.pop(name, None)
    return options


def test_queue_on_commit_refuses_countdowns_above_the_max(django_capture_on_commit_callbacks, db):
    task = _fake_task()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(ValueError):
            queue_on_commit(task, 1, countdown=settings.SPARK_MAX_TASK_COUNTDOWN_SECONDS + 1)
    assert callbacks == []
    task.apply_async.assert_not_called()


def test_queue_on_commit_allows_the_max_countdown(django_capture_on_commit_callbacks, db):
    task = _fake_task()
    with django_capture_on_commit_callbacks(execute=True):
        queue_on_commit(task, 1, countdown=settings.SPARK_MAX_TASK_COUNTDOWN_SECONDS)
    task.apply_async.assert_called_once()
    assert _sent(task) == {"args": (1,), "kwargs": {}, "countdown": settings.SPARK_MAX_TASK_COUNTDOWN_SECONDS}


def test_queue_on_commit_waits_for_the_commit(django_capture_on_commit_callbacks, db):
    # given a task queued inside a transaction
    task = _fake_task()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queue_on_commit(task, 42, countdown=30, reason="x")
        # then nothing is sent while the transaction is open
        task.apply_async.assert_not_called()
    assert len(callbacks) == 1
    task.apply_async.assert_not_called()
    # when it commits, then the task is sent with plain arguments
    callbacks[0]()
    task.apply_async.assert_called_once()
    assert _sent(task) == {"args": (42,), "kwargs": {"reason": "x"}, "countdown": 30}


@pytest.mark.django_db(transaction=True)
def test_queue_on_commit_drops_the_task_on_rollback():
    from django.db import transaction

    task = _fake_task()
    with pytest.raises(RuntimeError), transaction.atomic():
        queue_on_commit(task, 1)
        raise RuntimeError("rolled back")
    task.apply_async.assert_not_called()


@pytest.mark.django_db(transaction=True)
def test_queue_on_commit_does_not_hide_a_bug_behind_the_broker_fallback():
    # A broker that is down is tolerated (tests/test_broker_down.py); arguments that cannot be
    # sent as JSON are a bug and still raise.
    from kombu.exceptions import EncodeError

    from dispatch.tasks import expire_offer

    with pytest.raises(EncodeError):
        queue_on_commit(expire_offer, object())


@pytest.mark.django_db(transaction=True)
def test_a_forked_process_opens_its_own_broker_connections():
    # Celery's prefork pool forks the worker: a child must not publish on its parent's sockets.
    import os

    from dispatch.tasks import expire_offer
    from spark import celery as spark_celery

    queue_on_commit(expire_offer, 0)  # the parent now has a connection pool
    parent_pool = spark_celery._publisher().pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it sees a fresh pool, then leave at once
        fresh = not spark_celery._publishers and spark_celery._publisher().pool is not parent_pool
        os.write(write, b"1" if fresh else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
