"""The one outbox (outbox.services): every message is owed in the transaction of its change,
sent once even with several senders at once, retried with backoff when the mail server fails,
and carried over from the screening notices' old outbox across the deploy."""

import time
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.mail import EmailMessage
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from orders.delivery import batch_check_in, batch_handoff
from orders.tests.helpers import make_batch
from outbox import senders
from outbox import services as outbox
from outbox.models import Message
from payments.models import DriverNotice as Notice
from tests.helpers import run_in_threads

KIND = "tests.hello"


def _slow_build(message, now):
    time.sleep(0.05)  # widen the window between claiming and sending
    return EmailMessage("Hello", f"message {message.key}", "spark@example.test", ["someone@example.test"])


senders.register(KIND, build=_slow_build)


@pytest.mark.django_db(transaction=True)
def test_two_sweepers_at_once_send_each_message_once():
    # given ten messages owed
    for i in range(10):
        outbox.message_enqueue(kind=KIND, key=f"hello:{i}", payload={})
    # when four sweepers run at the same moment (threads on PostgreSQL)
    results = run_in_threads(4, lambda i: outbox.messages_send_due())
    # then every message went out exactly once, and the sends add up
    assert all(isinstance(r, int) for r in results), results
    assert sum(results) == 10
    assert sorted(m.body for m in mail.outbox) == sorted(f"message hello:{i}" for i in range(10))
    assert not Message.objects.filter(sent_at__isnull=True).exists()
    assert set(Message.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db
def test_a_failed_send_is_retried_later_with_backoff_and_counted(settings):
    message = outbox.message_enqueue(kind=KIND, key="hello:retry", payload={})
    settings.EMAIL_BACKEND = "payments.tests.test_contractor_screening.FailingEmailBackend"
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        assert outbox.message_send(message_id=message.pk) is False
    message.refresh_from_db()
    assert (message.attempts, message.sent_at, message.claimed_until) == (1, None, None)
    assert "mail server down" in message.last_error and message.due_at == now + timedelta(seconds=30)
    with time_machine.travel(now + timedelta(seconds=31), tick=False):
        assert outbox.messages_send_due() == 0  # fails again: the next try waits twice as long
    message.refresh_from_db()
    assert message.attempts == 2 and message.due_at == now + timedelta(seconds=31 + 60)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with time_machine.travel(now + timedelta(seconds=60), tick=False):
        assert outbox.messages_send_due() == 0  # not due yet
    with time_machine.travel(now + timedelta(seconds=31 + 60), tick=False):
        assert outbox.messages_send_due() == 1
        assert outbox.messages_send_due() == 0
    message.refresh_from_db()
    assert message.attempts == 3 and message.sent_at is not None and message.last_error == ""
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_rolled_back_change_owes_nothing(store, driver, django_capture_on_commit_callbacks):
    batch, _ = make_batch(store, driver, picked_up=False)
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            batch_handoff(batch=batch, pickup_code=batch.pickup_code)
            assert Message.objects.filter(kind="orders.on_the_way").exists()  # owed with the change...
            raise RuntimeError("the rest of the request failed")
    # ...and gone with it: nothing owed, nothing queued, nothing sent
    assert not Message.objects.exists() and callbacks == [] and mail.outbox == []
    assert outbox.messages_send_due() == 0


@pytest.mark.django_db
def test_owing_the_same_message_twice_creates_it_once_and_an_unknown_kind_is_refused():
    first = outbox.message_enqueue(kind=KIND, key="hello:once", payload={"n": 1})
    again = outbox.message_enqueue(kind=KIND, key="hello:once", payload={"n": 2})
    assert again.pk == first.pk and Message.objects.get().payload == {"n": 1}
    with pytest.raises(LookupError):
        outbox.message_enqueue(kind="tests.no_such_kind", key="nope", payload={})
    assert Message.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_screening_notices_move_into_the_outbox_without_loss_or_a_second_send(driver):
    """The deploy: notices in the old outbox (sent, unsent, held by a sender of the old code)
    become outbox messages in the same state."""
    old, new = [("payments", "0003_screening")], [("payments", "0004_driver_notices_in_the_outbox")]
    executor = MigrationExecutor(connection)
    executor.migrate(old)
    apps = executor.loader.project_state(old).apps
    DriverNotice = apps.get_model("payments", "DriverNotice")
    now = timezone.now()
    sent = DriverNotice.objects.create(
        driver_id=driver.pk, kind="screening_cleared", key="sent", sent_at=now, attempts=1
    )
    unsent = DriverNotice.objects.create(
        driver_id=driver.pk, kind="screening_cleared", key="unsent", attempts=3, last_error="SMTPError: down"
    )
    held = DriverNotice.objects.create(
        driver_id=driver.pk, kind="screening_cleared", key="held", attempts=1, claimed_until=now + timedelta(minutes=4)
    )
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(new)
    finally:
        call_command("migrate", verbosity=0)  # whatever happened, leave the database at the latest state
    by_key = {m.key: m for m in Message.objects.all()}
    assert set(by_key) == {"driver-notice:sent", "driver-notice:unsent", "driver-notice:held"}
    assert by_key["driver-notice:sent"].sent_at == now
    assert (by_key["driver-notice:unsent"].attempts, by_key["driver-notice:unsent"].last_error) == (
        3,
        "SMTPError: down",
    )
    assert by_key["driver-notice:held"].claimed_until == now + timedelta(minutes=4)
    # the sweeper sends the unsent one only: not the sent one, not the one a sender still holds
    assert outbox.messages_send_due() == 1
    assert [m.to for m in mail.outbox] == [[driver.user.email]]
    assert Notice.objects.get(pk=unsent.pk).sent_at is not None
    assert Notice.objects.get(pk=held.pk).sent_at is None and Notice.objects.get(pk=sent.pk).sent_at == now
