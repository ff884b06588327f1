"""Dashboard forms whose posted ids are not ids (a tampered or garbled form): a clear message,
never a 500, nothing changed. Single-id forms of the manager pages answer 400 with the page
and the message; the batch editor's lists keep its way of refusing (a message where the
associate was)."""

from datetime import time, timedelta

import pytest
from django.utils import timezone

from orders.batch_editing import batch_create
from orders.models import Batch, Order
from orders.tests.factories import OrderFactory
from stores.models import SlotTemplate, StoreApiKey, StoreMembership
from stores.tests.factories import StoreApiKeyFactory

NOT_IDS = ["abc", "", "12abc", "\u00b2", "9" * 5000, "99999999999999999999", "-1", "1.0", " 1"]
NOT_IDS_IDS = [
    "abc",
    "empty",
    "digits-then-text",
    "superscript",
    "5000-digits",
    "past-bigint",
    "negative",
    "decimal",
    "space",
]

pytestmark = pytest.mark.django_db


def url(store, path=""):
    return f"/dashboard/s/{store.pk}/{path}"


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def as_manager(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def as_associate(client, associate):
    client.force_login(associate)
    return client


@pytest.mark.parametrize("bad", NOT_IDS, ids=NOT_IDS_IDS)
def test_revoking_a_key_that_is_not_an_id_is_a_400_with_a_message(as_manager, store, bad):
    key = StoreApiKeyFactory(store=store)
    response = as_manager.post(url(store, "team/"), {"key": bad, "action": "revoke_key"})
    assert response.status_code == 400
    assert "reload the page" in " ".join(messages_of(response))
    assert StoreApiKey.objects.get(pk=key.pk).revoked_at is None


@pytest.mark.parametrize("bad", NOT_IDS, ids=NOT_IDS_IDS)
def test_removing_a_member_that_is_not_an_id_is_a_400_with_a_message(as_manager, store, associate, bad):
    response = as_manager.post(url(store, "team/"), {"membership": bad, "action": "remove_member"})
    assert response.status_code == 400
    assert "reload the page" in " ".join(messages_of(response))
    assert StoreMembership.objects.filter(store=store).count() == 2


@pytest.mark.parametrize("bad", NOT_IDS, ids=NOT_IDS_IDS)
@pytest.mark.parametrize("action", ["pause", "resume"])
def test_pausing_a_template_that_is_not_an_id_is_a_400_with_a_message(as_manager, store, action, bad):
    template = SlotTemplate.objects.create(
        store=store, weekdays="0", start_time=time(10), end_time=time(12), capacity=2
    )
    response = as_manager.post(url(store, "slots/"), {"template": bad, "action": action})
    assert response.status_code == 400
    page = response.content.decode()
    assert "reload the page" in page
    assert "This field is required" not in page  # the new-template form is not shown as if it were sent
    assert SlotTemplate.objects.get(pk=template.pk).is_active is True


def test_a_real_template_id_still_pauses(as_manager, store):
    template = SlotTemplate.objects.create(
        store=store, weekdays="0", start_time=time(10), end_time=time(12), capacity=2
    )
    response = as_manager.post(url(store, "slots/"), {"template": str(template.pk), "action": "pause"})
    assert response.status_code == 302
    assert SlotTemplate.objects.get(pk=template.pk).is_active is False


def _orders(store, n):
    start = timezone.now() + timedelta(hours=2)
    return [OrderFactory(store=store, window_start=start, window_end=start + timedelta(hours=2)) for _ in range(n)]


@pytest.mark.parametrize(
    "bad",
    ["\u00b2", "9" * 5000, "99999999999999999999", "abc"],
    ids=["superscript", "5000-digits", "past-bigint", "abc"],
)
def test_building_a_batch_with_an_order_that_is_not_an_id_is_refused_with_a_message(as_associate, store, bad):
    order = _orders(store, 1)[0]
    response = as_associate.post(url(store, "batches/new/"), {"order": [order.pk, bad]})
    assert response.status_code == 302 and response.url == url(store)
    assert not Batch.objects.exists() and Order.objects.get(pk=order.pk).status == "received"
    assert messages_of(as_associate.get(url(store)))


@pytest.mark.parametrize(
    "bad",
    ["\u00b2", "9" * 5000, "99999999999999999999", "abc"],
    ids=["superscript", "5000-digits", "past-bigint", "abc"],
)
def test_adding_or_reordering_with_ids_that_are_not_ids_is_refused_with_a_message(as_associate, store, bad):
    first, second, spare = _orders(store, 3)
    batch = batch_create(store=store, orders=[first, second])
    stops = list(batch.stops.order_by("sequence").values_list("pk", flat=True))

    response = as_associate.post(url(store, f"batches/{batch.pk}/add/"), {"order": [spare.pk, bad]})
    assert response.status_code == 302
    assert batch.stops.count() == 2 and Order.objects.get(pk=spare.pk).status == "received"

    response = as_associate.post(url(store, f"batches/{batch.pk}/reorder/"), {"stop": [stops[1], stops[0], bad]})
    assert response.status_code == 302
    assert list(batch.stops.order_by("sequence").values_list("pk", flat=True)) == stops
    assert len(messages_of(as_associate.get(url(store, f"batches/{batch.pk}/")))) == 2
