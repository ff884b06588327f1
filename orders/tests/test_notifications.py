"""Customer emails: "on the way" and "delivered" (orders.notifications).

Text + HTML with the absolute tracking link; the driver's first name and vehicle (never the last
name or plate); the delivery time and photo link; sent once however often the task runs; skipped
without an address or when the order has moved on; a failed send is retried, a send in progress
elsewhere is not duplicated.
"""

import smtplib
from datetime import timedelta
from unittest import mock

import pytest
import time_machine
from celery.exceptions import Retry
from django.core import mail
from django.utils import timezone

from orders import notifications
from orders.models import OrderEvent
from orders.notifications import send_delivered_email, send_on_the_way_email
from orders.tests.helpers import (
    DRIVER_LAST_NAME,
    DRIVER_PHONE,
    DRIVER_PLATE,
    NOW,
    deliver,
    make_trip,
    put_driver_at,
)
from spark.celery import app

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

    return ZoneFactory(name="Denver", slug="denver", timezone="America/Denver",
                       center_lat=Decimal("39.7392"), center_lng=Decimal("-104.9903"))


def markers(order, kind):
    return OrderEvent.objects.filter(order=order, reason__startswith=f"email:{kind}")


def html_of(message) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


def test_tasks_are_registered_by_name():
    assert "orders.notifications.send_on_the_way_email" in app.tasks
    assert "orders.notifications.send_delivered_email" in app.tasks


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
    assert markers(order, "on_the_way").get().reason == "email:on_the_way"


def test_on_the_way_email_is_sent_once_even_if_the_task_runs_twice(denver):
    order = make_trip(denver, stops=1).orders[0]
    assert send_on_the_way_email(order.pk) == "sent"
    assert send_on_the_way_email(order.pk) == "already_sent"
    assert send_on_the_way_email.apply(args=(order.pk,)).get() == "already_sent"
    assert len(mail.outbox) == 1
    assert markers(order, "on_the_way").count() == 1
    # the marker is not a status change: the tracking timeline ignores it
    from orders.views import tracking_state

    assert [s["key"] for s in tracking_state(order)["timeline"]] == ["received", "preparing", "on_the_way",
                                                                      "delivered"]


def test_delivered_email_has_time_photo_link_and_is_sent_once(denver):
    trip = make_trip(denver, stops=1)
    order = trip.orders[0]
    with time_machine.travel(NOW + timedelta(minutes=25), tick=False):
        deliver(trip.stop(0))
        assert send_delivered_email(order.pk) == "sent"
        assert send_delivered_email(order.pk) == "already_sent"
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
    assert send_on_the_way_email(order.pk) == "no_email"
    deliver(trip.stop(0))
    assert send_delivered_email(order.pk) == "no_email"
    assert mail.outbox == []
    assert not OrderEvent.objects.filter(order=order, reason__startswith="email:").exists()


def test_skipped_when_the_order_moved_on_or_is_gone(denver):
    trip = make_trip(denver, stops=1, until="published")
    order = trip.orders[0]
    assert send_on_the_way_email(order.pk) == "stale"  # not picked up yet
    assert send_delivered_email(order.pk) == "stale"
    assert send_on_the_way_email(10**9) == "missing"
    assert mail.outbox == []


def test_on_the_way_email_not_sent_once_delivered(denver):
    trip = make_trip(denver, stops=1)
    deliver(trip.stop(0))
    assert send_on_the_way_email(trip.orders[0].pk) == "stale"
    assert mail.outbox == []


def test_failed_send_is_retried_and_leaves_no_marker(denver):
    order = make_trip(denver, stops=1).orders[0]
    with mock.patch("django.core.mail.EmailMultiAlternatives.send", side_effect=smtplib.SMTPServerDisconnected()):
        with pytest.raises(smtplib.SMTPServerDisconnected):  # called directly, retry re-raises
            send_on_the_way_email(order.pk)
    assert not markers(order, "on_the_way").exists()
    assert send_on_the_way_email(order.pk) == "sent"
    assert len(mail.outbox) == 1


def test_a_send_in_progress_elsewhere_is_not_duplicated_but_a_dead_one_is_taken_over(denver):
    order = make_trip(denver, stops=1).orders[0]
    status = order.status
    # given another worker claimed the email a moment ago
    OrderEvent.objects.create(order=order, from_status=status, to_status=status,
                              reason="email:on_the_way:sending", created_at=timezone.now() - timedelta(seconds=10))
    # then this run sends nothing and retries after the claim would be stale
    with pytest.raises(Retry):
        send_on_the_way_email(order.pk)
    with pytest.raises(notifications.ClaimBusy) as busy:
        notifications.send_once(order.pk, notifications.ON_THE_WAY)
    assert 280 <= busy.value.retry_in <= 300
    assert mail.outbox == []
    # when the claim is older than any task can run (its worker died), the email goes out once
    with time_machine.travel(NOW + timedelta(minutes=6), tick=False):
        assert send_on_the_way_email(order.pk) == "sent"
        assert send_on_the_way_email(order.pk) == "already_sent"
    assert len(mail.outbox) == 1
    assert list(markers(order, "on_the_way").values_list("reason", flat=True)) == ["email:on_the_way"]


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
