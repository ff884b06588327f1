"""Customer emails: "on the way" and "delivered" (orders.notifications, sent through the outbox).

Text + HTML with the absolute tracking link; the driver's first name and vehicle (never the last
name or plate); the delivery time and photo link; sent once however often the send runs; skipped
without an address or when the order has moved on; a failed send is retried later, a send in
progress elsewhere is not duplicated.
"""

import smtplib
from datetime import timedelta
from unittest import mock

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from orders import notifications
from orders.models import OrderEvent
from orders.tests.helpers import (
    DRIVER_LAST_NAME,
    DRIVER_PHONE,
    DRIVER_PLATE,
    NOW,
    deliver,
    make_trip,
    put_driver_at,
)
from outbox import senders
from outbox import services as outbox
from outbox.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _env(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SPARK_PUBLIC_URL = "https://spark.example/"
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def denver(db):
    from decimal import Decimal

    from stores.tests.factories import ZoneFactory

    return ZoneFactory(
        name="Denver",
        slug="denver",
        timezone="America/Denver",
        center_lat=Decimal("39.7392"),
        center_lng=Decimal("-104.9903"),
    )


def send(order_id: int, kind: str) -> str:
    """Owe the email (a no-op when the status change already did) and run the outbox's send:
    "sent", "not_sent" (already sent, or held elsewhere) or the reason it was skipped."""
    message = notifications.queue_email(order_id=order_id, kind=kind)
    if outbox.message_send(message_id=message.pk):
        return "sent"
    message.refresh_from_db()
    return message.skipped or "not_sent"


def send_on_the_way_email(order_id: int) -> str:
    return send(order_id, notifications.ON_THE_WAY)


def send_delivered_email(order_id: int) -> str:
    return send(order_id, notifications.DELIVERED)


def message_of(order, kind) -> Message:
    return Message.objects.get(key=notifications.message_key(order.pk, kind))


def html_of(message) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


def test_senders_are_registered_with_the_outbox():
    for kind in (notifications.ON_THE_WAY, notifications.DELIVERED):
        assert senders.sender_for(notifications.message_kind(kind)).build


def test_on_the_way_email_has_link_driver_first_name_and_vehicle(denver):
    # given an order just picked up
    trip = make_trip(denver, stops=2)
    order = trip.orders[1]
    put_driver_at(trip.driver, "39.742000", "-104.988000")
    # when the task runs
    assert send_on_the_way_email(order.pk) == "sent"
    # then one email, text + HTML, to the customer, with the absolute tracking link
    [message] = mail.outbox
    assert message.to == [order.customer_email]
    assert message.subject == f"Your order from {trip.store.name} is on the way"
    link = f"https://spark.example/t/{order.tracking_token}"
    html = html_of(message)
    for body in (message.body, html):
        assert link in body
        assert "Dana" in body and "Blue Toyota Corolla" in body
        assert "Estimated arrival" in body and "Around " in body
        assert DRIVER_LAST_NAME not in body and DRIVER_PLATE not in body and DRIVER_PHONE not in body
        assert trip.orders[0].customer_name not in body and trip.orders[0].address_line1 not in body
    assert f'href="{link}"' in html
    assert "&#x27;" not in message.body and "&amp;" not in message.body  # the text part is not HTML-escaped
    assert message.body.startswith("Hi Customer1,")
    assert message_of(order, "on_the_way").sent_at == NOW
    assert not OrderEvent.objects.filter(reason__startswith="email:").exists()  # no markers in the history


def test_on_the_way_email_is_sent_once_even_if_the_send_runs_twice(denver):
    order = make_trip(denver, stops=1).orders[0]
    # the handoff owed it (in its own transaction); owing it again changes nothing
    assert message_of(order, "on_the_way").sent_at is None
    assert send_on_the_way_email(order.pk) == "sent"
    assert send_on_the_way_email(order.pk) == "not_sent"
    assert outbox.messages_send_due() == 0
    assert len(mail.outbox) == 1
    assert Message.objects.filter(key=notifications.message_key(order.pk, "on_the_way")).count() == 1


def test_delivered_email_has_time_photo_link_and_is_sent_once(denver):
    trip = make_trip(denver, stops=1)
    order = trip.orders[0]
    with time_machine.travel(NOW + timedelta(minutes=25), tick=False):
        deliver(trip.stop(0))
        assert send_delivered_email(order.pk) == "sent"
        assert send_delivered_email(order.pk) == "not_sent"
    [message] = mail.outbox
    assert message.subject == f"Your order from {trip.store.name} was delivered"
    photo = f"https://spark.example/t/{order.tracking_token}/photo"
    html = html_of(message)
    for body in (message.body, html):
        assert "delivered at 12:25 PM" in body  # Denver time
        assert photo in body and f"https://spark.example/t/{order.tracking_token}" in body
        assert "Dana" in body and DRIVER_LAST_NAME not in body
        assert "$6.50" in body
    assert f'href="{photo}"' in html
    assert "/media/" not in message.body + html


def test_delivered_email_without_photo_has_no_photo_link(denver):
    trip = make_trip(denver, stops=1)
    deliver(trip.stop(0), photo=False)
    send_delivered_email(trip.orders[0].pk)
    [message] = mail.outbox
    assert "/photo" not in message.body and "/photo" not in html_of(message)


def test_skipped_without_an_email_address(denver):
    trip = make_trip(denver, stops=1, email=False)
    order = trip.orders[0]
    assert send_on_the_way_email(order.pk) == "no email address"
    deliver(trip.stop(0))
    assert send_delivered_email(order.pk) == "no email address"
    assert mail.outbox == []
    assert outbox.messages_send_due() == 0  # closed: never tried again


def test_skipped_when_the_order_moved_on_or_is_gone(denver):
    trip = make_trip(denver, stops=1, until="published")
    order = trip.orders[0]
    assert send_on_the_way_email(order.pk) == "order moved on"  # not picked up yet
    assert send_delivered_email(order.pk) == "order moved on"
    assert send_on_the_way_email(10**9) == "order missing"
    assert mail.outbox == []


def test_on_the_way_email_not_sent_once_delivered(denver):
    trip = make_trip(denver, stops=1)
    deliver(trip.stop(0))
    assert send_on_the_way_email(trip.orders[0].pk) == "order moved on"
    assert mail.outbox == []


def test_failed_send_is_retried_later_and_counted(denver):
    order = make_trip(denver, stops=1).orders[0]
    with mock.patch("django.core.mail.EmailMultiAlternatives.send", side_effect=smtplib.SMTPServerDisconnected()):
        assert send_on_the_way_email(order.pk) == "not_sent"
    message = message_of(order, "on_the_way")
    assert (message.sent_at, message.attempts, message.claimed_until) == (None, 1, None)
    assert "SMTPServerDisconnected" in message.last_error and message.due_at == NOW + outbox.retry_delay(1)
    # not before it is due again
    assert outbox.messages_send_due() == 0 and mail.outbox == []
    with time_machine.travel(message.due_at, tick=False):
        assert outbox.messages_send_due() == 1
        assert outbox.messages_send_due() == 0
    message.refresh_from_db()
    assert message.attempts == 2 and message.sent_at is not None and message.last_error == ""
    assert len(mail.outbox) == 1


def test_a_send_in_progress_elsewhere_is_not_duplicated_but_a_dead_one_is_taken_over(denver):
    order = make_trip(denver, stops=1).orders[0]
    message = message_of(order, "on_the_way")
    # given another worker claimed the email a moment ago
    Message.objects.filter(pk=message.pk).update(claimed_until=timezone.now() + outbox.CLAIM - timedelta(seconds=10))
    # then this run sends nothing
    assert send_on_the_way_email(order.pk) == "not_sent"
    assert outbox.messages_send_due() == 0
    assert mail.outbox == []
    # when the claim ran out (its worker died), the email goes out once
    with time_machine.travel(NOW + timedelta(minutes=6), tick=False):
        assert outbox.messages_send_due() == 1
        assert send_on_the_way_email(order.pk) == "not_sent"
    assert len(mail.outbox) == 1


def test_templates_render_both_parts_with_the_link(denver):
    trip = make_trip(denver, stops=1)
    order = trip.orders[0]
    link = f"https://spark.example/t/{order.tracking_token}"
    message = notifications.build_email(order, notifications.ON_THE_WAY)
    assert link in message.body and link in html_of(message)
    deliver(trip.stop(0))
    order.refresh_from_db()
    message = notifications.build_email(order, notifications.DELIVERED)
    assert link in message.body and link in html_of(message)
    assert html_of(message).lstrip().startswith("<!doctype html>")


def test_tasks_queued_by_the_previous_release_owe_the_email_once(denver):
    trip = make_trip(denver, stops=2)
    done, todo = trip.orders
    Message.objects.all().delete()  # as if the handoff ran on the previous release
    status = done.status
    OrderEvent.objects.create(order=done, from_status=status, to_status=status, reason="email:on_the_way")
    assert notifications.send_on_the_way_email(done.pk) == "already_sent"
    assert notifications.send_on_the_way_email(todo.pk) == "queued"
    assert notifications.send_on_the_way_email(todo.pk) == "queued"  # a redelivery: still one message
    assert list(Message.objects.values_list("key", flat=True)) == [notifications.message_key(todo.pk, "on_the_way")]
    assert outbox.messages_send_due() == 1 and [m.to for m in mail.outbox] == [[todo.customer_email]]
