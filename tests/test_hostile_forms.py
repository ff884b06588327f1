"""Every dashboard form and the driver's Help form, posted with what a hostile or broken client
sends: markup, NUL characters, a megabyte of text, ids that are not numbers or past bigint,
repeated fields, yes-words where "1" is expected. Each answer is below 500 and nothing about
the batch changes."""

import pytest
from django.urls import reverse

from dashboard import urls
from orders.batch_editing import batch_create
from orders.models import Batch
from orders.tests.factories import OrderFactory
from stores.models import StoreMembership
from stores.tests.factories import StoreMembershipFactory

pytestmark = pytest.mark.django_db

HOSTILE = {
    "markup": "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "nul": "a\x00b",
    "huge": "x" * 1_000_000,
    "not-an-id": "abc",
    "past-bigint": "9" * 30,
    "negative": "-1",
    "superscript": "²",
}
FIELDS = (
    "action", "order", "stop", "confirm", "confirmed", "answered", "template", "membership", "key",
    "ready_at", "pickup_code", "face_matches", "m-email", "m-role", "k-name", "start_time", "end_time",
    "weekday", "capacity", "window_start", "window_end", "topic", "batch", "text", "direction",
)  # fmt: skip


@pytest.fixture
def desk(client, store):
    manager = StoreMembershipFactory(store=store, role=StoreMembership.Role.MANAGER).user
    client.force_login(manager)
    batch = batch_create(store=store, orders=[OrderFactory(store=store), OrderFactory(store=store)])
    return store, batch


def dashboard_posts(store, batch) -> list[str]:
    stop = batch.stops.first()
    ids = {
        "store_id": store.pk,
        "batch_id": batch.pk,
        "stop_id": stop.pk,
        "run_id": 1,
        "claim_id": 1,
        "order_id": 1,
        "direction": "up",
    }
    out = []
    for pattern in urls.urlpatterns:
        if pattern.name == "batch_remove":
            continue  # the address is the whole request (remove this stop): no input to abuse
        names = set(pattern.pattern.converters)
        out.append(reverse(f"dashboard:{pattern.name}", kwargs={k: ids[k] for k in names}))
    return out


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_dashboard_posts_are_answered_below_500_and_change_nothing(client, desk, kind):
    store, batch = desk
    before = (batch.status, list(batch.stops.values_list("order_id", "sequence", "status")))
    value = HOSTILE[kind]
    data = {field: [value, value] for field in FIELDS}
    for path in dashboard_posts(store, batch):
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = client.post(path, data, **headers)
            assert response.status_code < 500, (path, kind, headers)
    batch.refresh_from_db()
    assert (batch.status, list(batch.stops.values_list("order_id", "sequence", "status"))) == before
    assert not Batch.objects.exclude(pk=batch.pk).exists()


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_help_reports_are_refused_or_kept_as_plain_text(client, driver, kind):
    client.force_login(driver.user)
    value = HOSTILE[kind]
    response = client.post(reverse("driver_app:help"), {"topic": value, "batch": value, "text": value})
    assert response.status_code < 500
    response = client.post(reverse("driver_app:help"), {"topic": "app", "batch": "", "text": value + " long enough"})
    assert response.status_code < 500
