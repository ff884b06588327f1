"""Fixtures shared by this folder's test modules."""

from contextlib import contextmanager

import pytest

from outbox.services import messages_send_due
from payments import tasks


@pytest.fixture
def queued(monkeypatch):
    """Celery tasks queued on commit, recorded instead of sent to the broker."""
    sent = []
    monkeypatch.setattr(
        tasks.enrol_contractor,
        "apply_async",
        lambda args=(), kwargs=None, countdown=None, **options: sent.append(("enrol_contractor", args)),
    )
    return sent


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """`with commit():` runs what the code queued for after the commit (tasks), then sends what
    it owes through the outbox, as the outbox's worker does."""

    @contextmanager
    def run():
        with django_capture_on_commit_callbacks(execute=True):
            yield
        messages_send_due()

    return run
