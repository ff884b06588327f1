"""The driver's Call / Text buttons and the Help screen (Django test client): the buttons show
where a masked call is possible (the note asking for a call gets its own), the real numbers
are never in a page; the Help screen files a report with the driver's own batch only, shows
refusals on the form and lists the driver's reports."""

from datetime import timedelta

import pytest
from django.test import Client

from drivers.tests.factories import DriverFactory
from orders.delivery import stop_arrive, stop_fail
from orders.models import SupportRequest
from orders.support import MAX_PER_HOUR
from orders.tests.helpers import make_batch

pytestmark = pytest.mark.django_db

STORE_PHONE = "+16155550150"


def client_for(user, **headers) -> Client:
    client = Client(**headers)
    client.force_login(user)
    return client


def test_stops_show_call_and_text_and_the_note_asking_for_a_call_gets_its_button(store, driver):
    store.phone = STORE_PHONE
    store.save()
    batch, stops = make_batch(store, driver)
    order = stops[0].order
    order.notes = "Call me when here, the buzzer is broken"
    order.save()
    page = client_for(driver.user).get("/driver/batch/").content.decode()
    assert 'data-testid="stop-call"' in page and 'data-testid="stop-text"' in page
    assert 'data-testid="note-call"' in page
    assert f'data-url="/api/v1/driver/stops/{stops[0].pk}/contact/"' in page
    assert order.customer_phone not in page and STORE_PHONE not in page
    assert 'data-testid="batch-help"' in page and f"/driver/help/?batch={batch.pk}" in page


def test_no_call_button_once_the_stop_is_finished_or_without_a_phone(store, driver):
    batch, stops = make_batch(store, driver, n=1)
    order = stops[0].order
    order.customer_phone = ""
    order.notes = "Call me"
    order.save()
    page = client_for(driver.user).get("/driver/batch/").content.decode()
    assert 'data-testid="stop-call"' not in page and 'data-testid="note-call"' not in page
    order.customer_phone = "+16155550100"
    order.save()
    stop_arrive(stop=stops[0], driver=driver)
    stop_fail(stop=stops[0], driver=driver, reason="no_one_home")
    page = client_for(driver.user).get("/driver/batch/").content.decode()
    assert 'data-testid="stop-call"' not in page and 'data-testid="note-call"' not in page


def test_the_pickup_screen_calls_the_store_when_it_has_a_phone(store, driver):
    batch, _ = make_batch(store, driver, picked_up=False)
    client = client_for(driver.user)
    assert 'data-testid="store-call"' not in client.get("/driver/batch/").content.decode()
    store.phone = STORE_PHONE
    store.save()
    page = client.get("/driver/batch/").content.decode()
    assert 'data-testid="store-call"' in page and f"/api/v1/driver/batches/{batch.pk}/contact-store/" in page
    assert STORE_PHONE not in page


def test_help_is_in_the_app_bar_and_preselects_the_batch(store, driver):
    batch, _ = make_batch(store, driver)
    client = client_for(driver.user)
    assert 'data-testid="menu-help"' in client.get("/driver/").content.decode()
    page = client.get(f"/driver/help/?batch={batch.pk}").content.decode()
    assert f'<option value="{batch.pk}" selected>' in page


def test_a_report_is_filed_with_the_batch_and_listed_as_text(store, driver):
    batch, _ = make_batch(store, driver)
    client = client_for(driver.user)
    text = "<script>alert(1)</script> The store had no totes ready"
    response = client.post("/driver/help/", {"topic": "store", "batch": str(batch.pk), "text": text})
    assert response.status_code == 302 and response["Location"] == "/driver/help/"
    report = SupportRequest.objects.get()
    assert (report.driver, report.batch, report.topic, report.text) == (driver, batch, "store", text)
    page = client.get("/driver/help/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; The store had no totes ready" in page
    assert "<script>alert(1)" not in page
    assert "Waiting for ops" in page


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"topic": "store", "text": "short"}, "text"),
        ({"topic": "store", "text": "x" * 1001}, "text"),
        ({"topic": "cats", "text": "The store had no totes ready"}, "topic"),
        ({"text": "The store had no totes ready"}, "topic"),
        ({"topic": "store", "batch": "abc", "text": "The store had no totes ready"}, "batch"),
        ({"topic": "store", "batch": "9" * 30, "text": "The store had no totes ready"}, "batch"),
    ],
)
def test_bad_reports_are_refused_on_the_form_and_file_nothing(driver, data, field):
    response = client_for(driver.user).post("/driver/help/", data)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert not SupportRequest.objects.exists()


def test_another_drivers_batch_cannot_be_attached(store, driver):
    theirs, _ = make_batch(store, DriverFactory())
    response = client_for(driver.user).post(
        "/driver/help/", {"topic": "order", "batch": str(theirs.pk), "text": "Wrong order in the totes"}
    )
    assert response.status_code == 400 and "batch" in response.context["form"].errors
    assert not SupportRequest.objects.exists()


def test_a_flood_is_refused_with_a_429_on_the_form(driver):
    client = client_for(driver.user)
    for _ in range(MAX_PER_HOUR):
        assert client.post("/driver/help/", {"topic": "app", "text": "The map does not load"}).status_code == 302
    response = client.post("/driver/help/", {"topic": "app", "text": "The map does not load"})
    assert response.status_code == 429
    assert "several reports in the last hour" in response.content.decode()
    assert SupportRequest.objects.count() == MAX_PER_HOUR


def test_old_batches_are_not_offered(store, driver):
    batch, _ = make_batch(store, driver)
    batch.assigned_at -= timedelta(days=30)
    batch.save(update_fields=["assigned_at"])
    page = client_for(driver.user).get("/driver/help/").content.decode()
    assert f'<option value="{batch.pk}"' not in page


def test_help_needs_a_driver(client, db):
    assert client.get("/driver/help/").status_code == 302


def test_call_and_help_speak_spanish(store, driver):
    make_batch(store, driver)
    client = client_for(driver.user, HTTP_ACCEPT_LANGUAGE="es-US,es;q=0.9")
    page = client.get("/driver/batch/").content.decode()
    assert ">Llamar</button>" in page and "Tu línea privada para este lote:" in page
    assert "¿Un problema con este lote? Pide ayuda" in page and ">Ayuda</a>" in page
    help_page = client.get("/driver/help/").content.decode()
    assert "Reportar un problema" in help_page and "Mi pago" in help_page and "Enviar a operaciones" in help_page
    refused = client.post("/driver/help/", {"topic": "app", "text": "corto"})
    assert "Cuéntanos qué pasó en pocas palabras (al menos 10 caracteres)." in refused.content.decode()
