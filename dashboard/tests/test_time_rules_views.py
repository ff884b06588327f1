"""The dashboard's time rules (orders/time_rules.py) as an associate meets them: confirm steps
before publishing over a draft's own ready-at, a ready-at in the past, a reorder or a publish
that makes orders late; the queue's flags and the at-risk box's real lateness.

The clock is pinned at 22:10 in the store's zone (America/Chicago), 04:10 UTC the next day."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone, translation

from dashboard.tests.helpers import url
from orders.batch_editing import batch_create, batch_publish, batch_schedule_publish
from orders.models import Batch, BatchingRun
from orders.tests.helpers import CENTRAL_NIGHT, order_in_window, stop_sequence

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def night():
    with time_machine.travel(CENTRAL_NIGHT, tick=False):
        yield
    translation.activate("en")


def status(batch) -> str:
    return Batch.objects.get(pk=batch.pk).status


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- "Publish all drafts now" ------------------------------------------------------------------


def _run_with_drafts(store):
    run = BatchingRun.objects.create(
        store=store, status=BatchingRun.Status.DONE, window_from=timezone.now(), window_to=timezone.now()
    )
    free = batch_create(store=store, orders=[order_in_window(store, starts_in=60)], batching_run=run)
    scheduled = batch_create(store=store, orders=[order_in_window(store, starts_in=60)], batching_run=run)
    batch_schedule_publish(batch=scheduled, ready_at=timezone.now() + timedelta(minutes=30))
    return run, free, scheduled


def test_publish_all_asks_before_overriding_a_drafts_own_ready_at(staff, store):
    run, free, scheduled = _run_with_drafts(store)
    publish_all = url(store, f"auto/{run.pk}/publish/")

    asked = staff.post(publish_all, **HTMX)

    assert asked.status_code == 200
    body = asked.content.decode()
    assert 'id="confirm-step"' in body and "<html" not in body  # a fragment swapped in by htmx
    assert f'data-batch="{scheduled.pk}"' in body and f'data-batch="{free.pk}"' not in body
    assert f"Publish batch {scheduled.pk} now instead of at 10:40 PM" in body  # the store's time
    assert (status(free), status(scheduled)) == ("draft", "draft")  # nothing published on the question

    # Answered without ticking it: the others go, the scheduled one keeps its time.
    done = staff.post(publish_all, {"answered": "1"}, follow=True)
    assert (status(free), status(scheduled)) == ("published", "draft")
    assert Batch.objects.get(pk=scheduled.pk).ready_at == timezone.now() + timedelta(minutes=30)
    assert f"Batch {scheduled.pk} stays scheduled: it publishes itself at 10:40 PM." in messages_of(done)

    # Ticked: published early.
    staff.post(publish_all, {"answered": "1", "confirm": [str(scheduled.pk)]})
    assert status(scheduled) == "published"


def test_publish_all_without_questions_publishes_at_once(staff, store):
    run, free, scheduled = _run_with_drafts(store)
    Batch.objects.filter(pk=scheduled.pk).update(ready_at=None)
    res = staff.post(url(store, f"auto/{run.pk}/publish/"), **HTMX)
    assert res.status_code == 204 and res["HX-Redirect"] == url(store, f"auto/{run.pk}/")
    assert (status(free), status(scheduled)) == ("published", "published")


def test_publish_all_with_a_tampered_tick_publishes_nothing(staff, store):
    run, free, scheduled = _run_with_drafts(store)
    res = staff.post(url(store, f"auto/{run.pk}/publish/"), {"answered": "1", "confirm": ["x"]}, follow=True)
    assert (status(free), status(scheduled)) == ("draft", "draft")
    assert any("did not understand" in m for m in messages_of(res))


def test_publish_all_without_htmx_shows_the_question_as_a_page(staff, store):
    run, _free, scheduled = _run_with_drafts(store)
    res = staff.post(url(store, f"auto/{run.pk}/publish/"))
    assert res.status_code == 200 and "<html" in res.content.decode()
    assert f'name="confirm" value="{scheduled.pk}"' in res.content.decode()


# --- "Ready at" in the past -------------------------------------------------------------------------


def test_a_past_ready_at_asks_to_publish_now_and_is_never_scheduled(staff, store):
    batch = batch_create(store=store, orders=[order_in_window(store, starts_in=60)])
    typed = "2026-12-02T22:05"  # five minutes ago, in the store's zone

    res = staff.post(url(store, f"batches/{batch.pk}/ready-at/"), {"ready_at": typed}, **HTMX)

    body = res.content.decode()
    assert res.status_code == 200 and 'id="confirm-step"' in body
    assert "10:05 PM has already passed. Publish the batch now instead?" in body
    assert "will publish itself" not in body
    assert f'hx-post="{url(store, f"batches/{batch.pk}/publish/")}"' in body
    batch.refresh_from_db()
    assert batch.status == "draft" and batch.ready_at is None

    staff.post(url(store, f"batches/{batch.pk}/publish/"), **HTMX)  # "Publish now"
    assert status(batch) == "published"


def test_a_ready_at_ahead_is_scheduled_in_the_stores_time(staff, store):
    batch = batch_create(store=store, orders=[order_in_window(store, starts_in=60)])
    res = staff.post(url(store, f"batches/{batch.pk}/ready-at/"), {"ready_at": "2026-12-02T22:45"}, **HTMX)
    assert "will publish itself at the time you set" in res.content.decode()
    batch.refresh_from_db()
    assert batch.ready_at == timezone.now() + timedelta(minutes=35)


# --- Reordering and publishing late -----------------------------------------------------------------


def test_moving_a_stop_out_of_window_order_warns_and_waits_for_confirmation(staff, store):
    early = order_in_window(store, starts_in=10, external_id="EARLY", customer_name="Ana Pérez")
    later = order_in_window(store, starts_in=120, external_id="LATER")
    batch = batch_create(store=store, orders=[early, later])
    stop = batch.stops.get(order=later)

    res = staff.post(url(store, f"batches/{batch.pk}/stops/{stop.pk}/up/"), **HTMX)

    body = res.content.decode()
    assert res.status_code == 200 and 'id="confirm-step"' in body
    warned = re.search(r'<li data-order="EARLY">(.*?)</li>', body, re.S).group(1)
    assert "Ana Pérez" in warned and "10:20 PM–11:20 PM" in warned and "arrives about 12:" in warned
    assert 'data-order="LATER"' not in body.split('id="confirm-step"')[1].split("</section>")[0]
    assert stop_sequence(batch) == ["EARLY", "LATER"]

    # "Use this order anyway" sends the proposed sequence again, confirmed.
    proposal = re.findall(r'<input type="hidden" name="stop" value="(\d+)">', body.split('id="confirm-step"')[1])
    assert proposal[:2] == [str(stop.pk), str(batch.stops.get(order=early).pk)]
    res = staff.post(url(store, f"batches/{batch.pk}/reorder/"), {"stop": proposal[:2], "confirm": "1"}, **HTMX)
    assert res.status_code == 200 and 'id="confirm-step"' not in res.content.decode()
    assert stop_sequence(batch) == ["LATER", "EARLY"]


def test_publishing_a_batch_whose_pickup_passed_warns_with_the_orders(staff, store):
    closing = order_in_window(store, starts_in=-58, external_id="CLOSING")
    batch = batch_create(store=store, orders=[closing, order_in_window(store, starts_in=30, external_id="FINE")])

    res = staff.post(url(store, f"batches/{batch.pk}/publish/"), **HTMX)

    body = res.content.decode()
    assert res.status_code == 200 and re.search(r"Its pickup time \(10:\d\d PM\) has passed", body)
    step = body.split('id="confirm-step"')[1].split("</section>")[0]
    assert 'data-order="CLOSING"' in step and 'data-order="FINE"' not in step
    assert "9:12 PM–10:12 PM" in step
    assert status(batch) == "draft"

    staff.post(url(store, f"batches/{batch.pk}/publish/"), {"confirm": "1"}, **HTMX)
    assert status(batch) == "published"


# --- The queue -----------------------------------------------------------------------------------------


def test_queue_flags_orders_in_their_window_without_a_batch_at_the_top(staff, store):
    order_in_window(store, starts_in=-25, external_id="WAITING")
    order_in_window(store, starts_in=30, external_id="LATER-ONE")
    batch_create(store=store, orders=[order_in_window(store, starts_in=-10, external_id="BATCHED")])

    body = staff.get(url(store)).content.decode()

    flagged = body.split('id="window-started"')[1].split("</section>")[0]
    assert 'data-order="WAITING"' in flagged and "9:45 PM–10:45 PM" in flagged and "started 25" in flagged
    assert "LATER-ONE" not in flagged and "BATCHED" not in flagged
    assert body.index('id="window-started"') < body.index('id="build-form"')
    # The 20-second poll of the queue refreshes the flags too.
    polled = staff.get(url(store), **HTMX, HTTP_HX_TARGET="queue").content.decode()
    assert 'id="window-started"' in polled


def test_at_risk_box_says_how_late_not_pickup_soon(staff, store):
    batch = batch_create(store=store, orders=[order_in_window(store, starts_in=60, hours=3)])
    batch_publish(batch=batch)
    Batch.objects.filter(pk=batch.pk).update(pickup_by=timezone.now() - timedelta(minutes=12))

    body = staff.get(url(store)).content.decode()

    box = body.split('id="at-risk"')[1].split("</section>")[0]
    assert "12 min late" in box and "pick up by 9:58 PM" in box
    assert "pickup soon" not in body


def test_the_new_questions_are_in_spanish(store, associate):
    client = Client(HTTP_ACCEPT_LANGUAGE="es")
    client.force_login(associate)
    batch = batch_create(store=store, orders=[order_in_window(store, starts_in=60)])
    body = client.post(
        url(store, f"batches/{batch.pk}/ready-at/"), {"ready_at": "2026-12-02T22:05"}, **HTMX
    ).content.decode()
    assert "ya pasó" in body and "Publicar ahora" in body
    run, _free, _scheduled = _run_with_drafts(store)
    body = client.post(url(store, f"auto/{run.pk}/publish/"), **HTMX).content.decode()
    assert "Algunos borradores necesitan tu visto bueno" in body
