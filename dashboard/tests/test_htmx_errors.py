"""Every htmx action of the batch editor that is refused answers 4xx with the message as plain
text (dashboard.js shows it next to the control); nothing changes. Before, the editor came back
with a 4xx that htmx does not swap: the associate saw nothing."""

import pytest

from dashboard.tests.helpers import make_orders, url
from orders.batch_editing import batch_create, batch_publish
from orders.models import Batch, Order, Stop

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def refused(response, status: int, text: str) -> None:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/plain")
    assert text in response.content.decode()


def sequence(batch) -> list[int]:
    return list(batch.stops.exclude(status=Stop.Status.REMOVED).order_by("sequence").values_list("pk", flat=True))


def test_adding_past_the_vehicles_totes_answers_400_with_the_message(staff, store):
    batch = batch_create(store=store, orders=make_orders(store, 2, totes=8))
    big = make_orders(store, 1, totes=8)[0]
    response = staff.post(url(store, f"batches/{batch.pk}/add/"), {"order": [big.pk]}, **HTMX)
    refused(response, 400, f"That is 24 totes; one vehicle takes at most {store.batch_max_totes}.")
    assert batch.stops.count() == 2 and Order.objects.get(pk=big.pk).status == "received"


def test_adding_nothing_or_another_stores_order_answers_400(staff, store, other_store):
    batch = batch_create(store=store, orders=make_orders(store, 1))
    refused(staff.post(url(store, f"batches/{batch.pk}/add/"), {}, **HTMX), 400, "Pick at least one order to add.")
    theirs = make_orders(other_store, 1)[0]
    response = staff.post(url(store, f"batches/{batch.pk}/add/"), {"order": [theirs.pk]}, **HTMX)
    refused(response, 400, "Some of those orders are not this store's.")
    assert batch.stops.count() == 1


def test_moving_or_removing_a_stop_that_is_gone_answers_404_with_the_message(staff, store):
    batch = batch_create(store=store, orders=make_orders(store, 3))
    first, *_ = sequence(batch)
    Stop.objects.filter(pk=first).update(status=Stop.Status.REMOVED)  # removed in another tab
    before = sequence(batch)
    for path in (f"stops/{first}/up/", f"stops/{first}/down/", f"stops/{first}/remove/"):
        refused(staff.post(url(store, f"batches/{batch.pk}/{path}"), **HTMX), 404, "That stop is not in this batch.")
    assert sequence(batch) == before


def test_reordering_with_a_stop_missing_answers_400(staff, store):
    batch = batch_create(store=store, orders=make_orders(store, 3))
    before = sequence(batch)
    response = staff.post(url(store, f"batches/{batch.pk}/reorder/"), {"stop": before[:2]}, **HTMX)
    assert response.status_code == 400 and response["Content-Type"].startswith("text/plain")
    assert response.content.decode().strip()
    assert sequence(batch) == before


def test_editing_a_batch_published_meanwhile_answers_4xx_with_the_message(staff, store):
    batch = batch_create(store=store, orders=make_orders(store, 2))
    second = sequence(batch)[1]
    batch_publish(batch=batch)  # from another tab
    response = staff.post(url(store, f"batches/{batch.pk}/stops/{second}/up/"), **HTMX)
    assert 400 <= response.status_code < 500 and response["Content-Type"].startswith("text/plain")
    assert response.content.decode().strip()
    assert Batch.objects.get(pk=batch.pk).status == "published"


def test_without_htmx_a_refusal_still_goes_back_to_the_batch_with_the_message(staff, store):
    batch = batch_create(store=store, orders=make_orders(store, 2, totes=8))
    big = make_orders(store, 1, totes=8)[0]
    response = staff.post(url(store, f"batches/{batch.pk}/add/"), {"order": [big.pk]}, follow=True)
    assert response.redirect_chain[-1][0] == url(store, f"batches/{batch.pk}/")
    assert "one vehicle takes at most" in response.content.decode()


def test_an_htmx_action_after_the_session_ended_answers_401_with_the_message(client, store):
    batch = batch_create(store=store, orders=make_orders(store, 2))
    second = sequence(batch)[1]
    for response in (
        client.post(url(store, f"batches/{batch.pk}/stops/{second}/up/"), **HTMX),
        client.get(url(store, "batches/"), **HTMX),  # a poll
    ):
        refused(response, 401, "Your session has ended. Log in again to go on.")
    assert client.get(url(store, "batches/")).status_code == 302  # a page still goes to the login
