"""The contact API (driver_app/api/contact.py): a masked number for the customer of an open stop
or for the store of the driver's active batch. The real numbers appear in no answer; finished
stops and closed batches are a 409; another driver's stop or batch, or an id that cannot be
ours, a JSON 404; nobody logged in, a 401."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from drivers.models import Driver
from drivers.tests.factories import DriverFactory
from orders.contact import CONSOLE_PROXY_NUMBER
from orders.delivery import stop_arrive, stop_fail
from orders.tests.helpers import make_batch

pytestmark = pytest.mark.django_db

API = "/api/v1/driver"
STORE_PHONE = "+16155550150"


def api_for(driver) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=driver.user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def trip(store, driver):
    store.phone = STORE_PHONE
    store.save()
    batch, stops = make_batch(store, driver)
    return batch, stops


def test_call_a_customer_gets_a_masked_number_and_never_the_real_one(driver, trip):
    batch, stops = trip
    client = api_for(driver)
    response = client.post(f"{API}/stops/{stops[0].pk}/contact/")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["party"] == "customer" and data["proxy_number"] == CONSOLE_PROXY_NUMBER
    assert data["call_url"] == f"tel:{CONSOLE_PROXY_NUMBER}" and data["text_url"] == f"sms:{CONSOLE_PROXY_NUMBER}"
    assert data["session_id"] and data["expires_at"]
    # the real number is in no answer the driver gets, the batch itself included
    real = stops[0].order.customer_phone
    assert real not in response.content.decode()
    active = client.get(f"{API}/batches/active/")
    assert active.status_code == 200 and real not in active.content.decode()
    assert "customer_phone" not in active.json()["stops"][0]


def test_call_the_store_from_the_pickup(store, driver):
    store.phone = STORE_PHONE
    store.save()
    batch, _ = make_batch(store, driver, picked_up=False)
    response = api_for(driver).post(f"{API}/batches/{batch.pk}/contact-store/")
    assert response.status_code == 200
    assert response.json()["party"] == "store" and STORE_PHONE not in response.content.decode()


def test_a_finished_stop_is_a_409(driver, trip):
    batch, stops = trip
    stop_arrive(stop=stops[0], driver=driver)
    stop_fail(stop=stops[0], driver=driver, reason="no_one_home")
    response = api_for(driver).post(f"{API}/stops/{stops[0].pk}/contact/")
    assert response.status_code == 409 and response.json()["code"] == "stop_finished"


def test_a_closed_batch_is_a_409_for_the_store_too(driver, trip):
    batch, stops = trip
    client = api_for(driver)
    for stop in stops:
        stop_arrive(stop=stop, driver=driver)
        stop_fail(stop=stop, driver=driver, reason="no_one_home")
    assert client.post(f"{API}/batches/{batch.pk}/complete/").status_code == 200  # returning: still active
    assert client.post(f"{API}/batches/{batch.pk}/contact-store/").status_code == 200
    batch.status = "returned"
    batch.save(update_fields=["status"])
    response = client.post(f"{API}/batches/{batch.pk}/contact-store/")
    assert response.status_code == 409 and response.json()["code"] == "batch_not_active"


def test_a_store_without_a_phone_is_a_409_with_a_way_out(store, driver):
    batch, _ = make_batch(store, driver)
    response = api_for(driver).post(f"{API}/batches/{batch.pk}/contact-store/")
    assert response.status_code == 409
    assert response.json()["code"] == "no_phone" and "help" in response.json()["detail"]


def test_another_drivers_stop_or_batch_is_a_404(trip):
    batch, stops = trip
    stranger = api_for(DriverFactory())
    for path in (f"stops/{stops[0].pk}/contact/", f"batches/{batch.pk}/contact-store/"):
        response = stranger.post(f"{API}/{path}")
        assert response.status_code == 404 and response.json()["code"] == "not_found", path


@pytest.mark.parametrize("bad", ["0", "abc", "9" * 25, "-1", "1%00", "%C2%B2"])
def test_ids_that_cannot_be_ours_are_json_404s(driver, trip, bad):
    client = api_for(driver)
    for path in (f"stops/{bad}/contact/", f"batches/{bad}/contact-store/"):
        response = client.post(f"{API}/{path}")
        assert response.status_code == 404, (path, response.status_code)
        assert response["Content-Type"].startswith("application/json")


def test_nobody_logged_in_is_a_401_and_an_applicant_a_403(trip, store):
    batch, stops = trip
    assert APIClient().post(f"{API}/stops/{stops[0].pk}/contact/").status_code == 401
    applicant = DriverFactory(status=Driver.Status.APPLICANT)
    assert api_for(applicant).post(f"{API}/stops/{stops[0].pk}/contact/").status_code == 403


def test_only_post(driver, trip):
    batch, stops = trip
    assert api_for(driver).get(f"{API}/stops/{stops[0].pk}/contact/").status_code == 405
