"""Hostile input found by hand on the HTML surfaces next to the API: each is a clear 4xx (or
simply handled), never a 500, and changes nothing."""

import pytest

from drivers.models import PushSubscription
from orders.tests.factories import OrderFactory

pytestmark = pytest.mark.django_db

DEEP_LIST = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"keys":' * 2000 + "1" + "}" * 2000


@pytest.mark.parametrize("raw", [DEEP_LIST, DEEP_OBJECT], ids=["list", "object"])
def test_deeply_nested_json_to_the_push_subscription_endpoints_is_handled_like_any_unreadable_body(client, driver, raw):
    client.force_login(driver.user)
    response = client.post("/driver/push/subscribe/", data=raw, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_subscription"
    assert not PushSubscription.objects.exists()
    response = client.post("/driver/push/unsubscribe/", data=raw, content_type="application/json")
    assert response.status_code == 200 and response.json()["deleted"] == 0


def test_a_nul_character_in_the_dashboard_search_is_searched_without_it(client, associate, store):
    OrderFactory(store=store, external_id="WM-NUL-1")
    client.force_login(associate)
    response = client.get(f"/dashboard/s/{store.pk}/", {"q": "WM-NUL\x00-1"})
    assert response.status_code == 200
    assert "WM-NUL-1" in response.content.decode()
