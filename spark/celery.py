"""The Celery app. Tasks take ids, are idempotent and are queued after the transaction commits."""

import os

from celery import Celery
from django.db import transaction

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spark.settings.local")

app = Celery("spark")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def queue_on_commit(task, *args, countdown: float | None = None, **kwargs) -> None:
    """Queue `task` with plain (JSON) arguments once the current transaction commits.

    Queueing inside the transaction lets a worker pick the task up before the rows it
    needs are visible; on_commit runs right away when there is no transaction.
    """
    from django.conf import settings

    if countdown is not None and countdown > settings.SPARK_MAX_TASK_COUNTDOWN_SECONDS:
        raise ValueError("countdown above SPARK_MAX_TASK_COUNTDOWN_SECONDS; rely on the beat sweeper")
    transaction.on_commit(lambda: task.apply_async(args=args, kwargs=kwargs, countdown=countdown))
