"""The driver app's pages (Django test client): what each page shows to whom, the appeal, the
push subscription endpoint, Spanish, and the PWA files."""

import base64
import json
import os
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client
from django.utils import timezone
from PIL import Image

from dispatch import rounds
from dispatch import services as dispatch_services
from dispatch.models import Offer
from drivers.appeals import driver_appeal_submit
from drivers.models import Driver, DriverEvent, PushSubscription
from drivers.slot_services import slot_release_no_show
from drivers.tests.factories import DriverFactory, RouteFactory, SlotClaimFactory
from orders.batch_editing import batch_create, batch_publish
from orders.delivery import batch_check_in, batch_handoff, stop_arrive, stop_fail
from orders.models import Batch
from orders.tests.factories import OrderFactory
from orders.tests.helpers import make_late
from payments.services import pay_quote
from payments.tests.factories import PayPolicyFactory
from spark.errors import Conflict, DomainError
from spark.money import format_cents
from stores.tests.factories import DeliverySlotFactory, StoreFactory, UserFactory, ZoneFactory

SECRET_STREET = "Secret Lane"
SECRET_LAT, SECRET_LNG = "36.161234", "-86.781234"


@pytest.fixture
def zone(db):
    z = ZoneFactory()
    PayPolicyFactory(zone=z)
    return z


@pytest.fixture
def store(zone):
    return StoreFactory(
        zone=zone, name="Green Hills", pickup_instructions="Park by the pickup sign", store_rules="ID at the desk"
    )


@pytest.fixture
def driver(zone):
    return DriverFactory(home_zone=zone, user__first_name="Ana", user__last_name="Lopez")


def client_for(user, **headers) -> Client:
    client = Client(**headers)
    client.force_login(user)
    return client


def published(store, *, alcohol=False) -> Batch:
    start = timezone.now() + timedelta(hours=1)
    orders = [
        OrderFactory(
            store=store,
            window_start=start,
            window_end=start + timedelta(hours=2),
            lat=Decimal(SECRET_LAT),
            lng=Decimal(SECRET_LNG),
            contains_alcohol=alcohol,
            address_line1=f"{700 + i} {SECRET_STREET}",
            customer_name=f"Customer {i}",
        )
        for i in range(2)
    ]
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    batch.refresh_from_db()
    return batch


def offer_for(driver, store, **kw) -> Offer:
    """A targeted offer to `driver`, who holds a slot at the store that is under way."""
    slot = DeliverySlotFactory(
        store=store, starts_at=timezone.now() - timedelta(minutes=5), ends_at=timezone.now() + timedelta(hours=2)
    )
    SlotClaimFactory(driver=driver, slot=slot)
    batch = published(store, **kw)
    rounds.dispatch_advance(batch_id=batch.pk)
    return Offer.objects.get(batch=batch, driver=driver)


def assigned_batch(driver, store, **kw) -> Batch:
    offer = offer_for(driver, store, **kw)
    dispatch_services.offer_accept(offer=offer, driver=driver)
    return Batch.objects.get(pk=offer.batch_id)


def ids_in(html: str) -> set[str]:
    return set(re.findall(r'data-testid="([^"]+)"', html))


# --- Every page, for an active driver ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/driver/", "/driver/offers/", "/driver/batch/", "/driver/standing/"])
def test_each_page_renders_for_an_active_driver_with_the_app_shell(driver, store, path):
    res = client_for(driver.user).get(path)
    assert res.status_code == 200
    html = res.content.decode()
    assert '<link rel="manifest" href="/manifest.webmanifest">' in html
    assert 'data-sw-url="/sw.js"' in html and 'data-sw-scope="/driver/"' in html
    assert "vendor/htmx/htmx.min.js" in html and "js/driver.js" in html
    assert {"tab-home", "tab-offers", "tab-batch", "tab-standing", "lang-en", "lang-es"} <= ids_in(html)
    assert 'action="/i18n/setlang/"' in html
    assert 'name="csrf-token"' in html
    assert "no-store" in res["Cache-Control"]  # pages with addresses are never stored


def test_home_has_duty_route_slots_and_feed(driver, store):
    slot = DeliverySlotFactory(store=store)
    res = client_for(driver.user).get("/driver/")
    html = res.content.decode()
    ids = ids_in(html)
    assert {"go-online", "route-form", "route-save", "route-use-location", "slots", "feed"} <= ids
    assert 'id="go-online"' in html and 'data-url="/api/v1/driver/online/"' in html
    assert 'data-url="/api/v1/driver/route/"' in html
    assert f'data-url="/api/v1/driver/slots/{slot.pk}/claim/"' in html
    assert "vendor/leaflet/leaflet.js" in html
    assert 'data-on-duty="0"' in html


def test_home_for_an_online_driver_with_a_claimed_slot_and_a_route_feed(driver, store):
    driver.is_online = True
    driver.online_since = timezone.now()
    driver.save()
    slot = DeliverySlotFactory(
        store=store,
        starts_at=timezone.now() + timedelta(minutes=20),
        ends_at=timezone.now() + timedelta(hours=2),
        claimed=1,
    )
    SlotClaimFactory(driver=driver, slot=slot)
    RouteFactory(
        driver=driver,
        origin_lat="36.150000",
        origin_lng="-86.790000",
        dest_lat="36.170000",
        dest_lng="-86.770000",
        max_detour_meters=20000,
    )
    batch = published(store)
    html = client_for(driver.user).get("/driver/").content.decode()
    assert 'data-on-duty="1"' in html and "go-offline" in ids_in(html)
    assert {"my-slot", "slot-check-in", "slot-cancel"} <= ids_in(html)  # check-in opens 30 min ahead
    # The feed card shows the batch by area only.
    assert f'data-batch-id="{batch.pk}"' in html and "feed-card" in ids_in(html)
    assert SECRET_STREET not in html and SECRET_LAT not in html


def test_a_released_seat_shows_on_home_with_the_reason_in_the_drivers_language(driver, store):
    started = timezone.now() - timedelta(minutes=20)
    slot = DeliverySlotFactory(store=store, starts_at=started, ends_at=started + timedelta(hours=2), claimed=1)
    seat = SlotClaimFactory(driver=driver, slot=slot, release_at=started + timedelta(minutes=15))
    assert slot_release_no_show(claim_id=seat.pk)
    client = client_for(driver.user)
    html = client.get("/driver/").content.decode()
    assert "released-slot" in ids_in(html) and "slot-check-in" not in ids_in(html)
    assert "Released: you had not checked in 15 minutes after the slot started." in html
    spanish = client.get("/driver/slots/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Liberado: no te habías registrado 15 minutos después del inicio del turno." in spanish


def test_htmx_partials_render(driver, store):
    client = client_for(driver.user)
    for path in (
        "/driver/duty/",
        "/driver/route/",
        "/driver/slots/",
        "/driver/feed/",
        "/driver/offers/live/",
        "/driver/batch/status/",
        "/driver/standing/log/",
    ):
        res = client.get(path, HTTP_HX_REQUEST="true")
        assert res.status_code == 200, path
        assert b"<html" not in res.content, path


# --- Offers -----------------------------------------------------------------------------------


def test_offer_card_shows_pay_countdown_flags_rules_and_areas_but_no_address(driver, store):
    offer = offer_for(driver, store, alcohol=True)
    pay = offer.pay
    res = client_for(driver.user).get("/driver/offers/")
    html = res.content.decode()
    card = html[html.index('data-testid="offer-card"') :]
    assert f'data-offer-id="{offer.pk}"' in html
    assert f'data-expires-at="{timezone.localtime(offer.expires_at).isoformat()}"' in html
    assert (
        re.search(r'data-seconds-left="(\d+)"', card)
        and 0 < int(re.search(r'data-seconds-left="(\d+)"', card)[1]) <= 60
    )
    assert "pay-breakdown" in ids_in(html)
    total = f"${pay.total_cents // 100}.{pay.total_cents % 100:02d}"
    assert total in card
    for label in ("Base", "Stops", "Miles (with the drive back)", "Heavy orders", "Incentive", "Customer tips"):
        assert label in card
    assert "flag-alcohol" in ids_in(html)
    assert "Park by the pickup sign" in html and "ID at the desk" in html
    assert "ZIP 37203" in html
    assert {"offer-accept", "offer-decline", "offer-decline-confirm", "offer-countdown"} <= ids_in(html)
    assert f'data-url="/api/v1/driver/offers/{offer.pk}/accept/"' in html
    assert f'data-url="/api/v1/driver/offers/{offer.pk}/decline/"' in html
    assert "never count against you" in html
    for key in ("too_far", "pay_too_low", "alcohol", "other"):
        assert f'value="{key}"' in html
    # DESIGN rule 6: no exact address before the batch is theirs.
    assert SECRET_STREET not in html and SECRET_LAT not in html and SECRET_LNG not in html
    assert "Customer 0" not in html
    # The live list polls every 5 s and on push.
    assert 'hx-trigger="every 5s, spark:push from:body"' in html


def test_open_board_lists_batches_with_a_claim_button(driver, store):
    batch = published(store)
    assert rounds.dispatch_advance(batch_id=batch.pk) == "board"
    html = client_for(driver.user).get("/driver/offers/live/").content.decode()
    assert "board-card" in ids_in(html) and "board-claim" in ids_in(html)
    assert f'data-url="/api/v1/driver/batches/{batch.pk}/claim/"' in html
    assert SECRET_STREET not in html


def test_no_offers_says_so(driver, store):
    html = client_for(driver.user).get("/driver/offers/").content.decode()
    assert {"no-offers", "board-empty"} <= ids_in(html)


# --- Batch ------------------------------------------------------------------------------------


def test_batch_page_before_pickup_shows_store_code_photo_and_the_addresses(driver, store):
    batch = assigned_batch(driver, store)
    html = client_for(driver.user).get("/driver/batch/").content.decode()
    ids = ids_in(html)
    assert {"check-in", "pickup-code", "store-navigate", "store-navigate-geo", "driver-photo", "batch-status"} <= ids
    assert re.search(rf'data-testid="pickup-code"[^>]*>{batch.pickup_code}<', html)
    assert "https://www.google.com/maps/dir/?api=1&amp;destination=36.150000,-86.790000" in html
    assert "geo:36.150000,-86.790000" in html
    assert f'data-url="/api/v1/driver/batches/{batch.pk}/arrive/"' in html
    assert 'data-phase="to_store"' in html
    assert "Park by the pickup sign" in html
    assert SECRET_STREET in html and "stop-addresses" in ids  # the batch is theirs from the claim on (rule 6)
    assert "Ana Lopez" in html


def test_batch_page_at_the_store_shows_a_wait_timer(driver, store):
    batch = assigned_batch(driver, store)
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    client = client_for(driver.user)
    html = client.get("/driver/batch/").content.decode()
    assert 'data-phase="at_store"' in html and "wait-timer" in ids_in(html)
    assert "check-in" not in ids_in(html) and "pickup-code" in ids_in(html)
    status = client.get("/driver/batch/status/").content.decode()
    assert 'data-phase="at_store"' in status and 'hx-trigger="every 5s, spark:refresh"' in status


def test_after_the_handoff_the_status_partial_changes_phase_and_the_stops_show(driver, store):
    batch = assigned_batch(driver, store, alcohol=True)
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    client = client_for(driver.user)
    assert 'data-phase="at_store"' in client.get("/driver/batch/status/").content.decode()
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    # The page polls this partial; a new phase makes driver.js reload into the stops.
    assert 'data-phase="stops"' in client.get("/driver/batch/status/").content.decode()
    html = client.get("/driver/batch/").content.decode()
    ids = ids_in(html)
    assert 'data-phase="stops"' in html and "pickup-code" not in ids
    assert SECRET_STREET in html  # the batch is theirs and on the road
    assert {"stop", "stop-navigate", "stop-arrive", "stop-fail", "stop-fail-confirm", "complete-batch"} <= ids
    first = batch.stops.order_by("sequence").first()
    assert f'data-url="/api/v1/driver/stops/{first.pk}/arrive/"' in html
    assert html.count('data-testid="stop-arrive"') == 1  # stops unlock in order
    assert re.search(r'id="complete-batch"[^>]*disabled', html)
    assert 'value="refused_alcohol"' in html


def test_arrived_stop_shows_the_camera_input_and_the_id_check(driver, store):
    batch = assigned_batch(driver, store, alcohol=True)
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    first = batch.stops.order_by("sequence").first()
    stop_arrive(stop=first, driver=driver)
    html = client_for(driver.user).get("/driver/batch/stops/").content.decode()
    assert {"photo-input", "stop-deliver", "id-check", "id-birth-date", "id-photo-input"} <= ids_in(html)
    assert 'accept="image/*" capture="environment"' in html
    assert f'data-url="/api/v1/driver/stops/{first.pk}/deliver/"' in html


def test_undeliverable_stop_shows_the_return_leg(driver, store):
    batch = assigned_batch(driver, store)
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    first = batch.stops.order_by("sequence").first()
    stop_fail(stop=first, driver=driver, reason="no_one_home")
    html = client_for(driver.user).get("/driver/batch/").content.decode()
    assert "return-leg" in ids_in(html) and "return-navigate" in ids_in(html)


def test_no_active_batch_and_another_drivers_batch_is_not_shown(driver, store, zone):
    other = DriverFactory(home_zone=zone)
    batch = assigned_batch(other, store)
    html = client_for(driver.user).get("/driver/batch/").content.decode()
    assert "no-batch" in ids_in(html) and 'data-phase="none"' in html
    assert batch.pickup_code not in html and SECRET_STREET not in html


def test_completed_batch_is_shown_as_the_last_one(driver, store):
    batch = assigned_batch(driver, store)
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.COMPLETED, closed_at=timezone.now())
    html = client_for(driver.user).get("/driver/batch/").content.decode()
    assert "last-batch" in ids_in(html) and "was completed" in html


# --- Standing and appeals ---------------------------------------------------------------------


def test_standing_shows_numbers_and_that_declines_never_count(driver, store):
    offer = offer_for(driver, store)
    dispatch_services.offer_decline(offer=offer, driver=driver, reason="too_far")
    client = client_for(driver.user)
    html = client.get("/driver/standing/").content.decode()
    assert {
        "on-time",
        "completed",
        "declines",
        "timeouts",
        "rating",
        "dispatch-log-show",
        "dispatch-log-json",
    } <= ids_in(html)
    assert "never held against you" in html
    assert "No ratings yet" in html
    assert re.search(r'data-testid="declines">\s*<b>1</b>', html)
    log = client.get("/driver/standing/log/").content.decode()
    assert f'data-offer-id="{offer.pk}"' in log and "Too far / off my route" in log and "Declined" in log


def test_suspended_driver_sees_the_reason_and_can_appeal_once(zone, store):
    driver = DriverFactory(
        home_zone=zone,
        status=Driver.Status.SUSPENDED,
        reason_code="quality",
        reason_note="Three missing-item reports this week.",
    )
    client = client_for(driver.user)
    home = client.get("/driver/").content.decode()
    assert "cannot-work" in ids_in(home) and "Repeated delivery problems" in home
    assert "appeal-link" in ids_in(home) and "go-online" not in ids_in(home)
    offers = client.get("/driver/offers/").content.decode()
    assert "cannot-work" in ids_in(offers) and "offer-card" not in ids_in(offers)

    standing = client.get("/driver/standing/").content.decode()
    assert {"suspension", "suspension-reason", "appeal-form"} <= ids_in(standing)
    assert "Three missing-item reports this week." in standing

    too_short = client.post("/driver/standing/", {"text": "no"})
    assert too_short.status_code == 400 and "appeal-error" in ids_in(too_short.content.decode())
    driver.refresh_from_db()
    assert driver.appeal_submitted_at is None

    text = "The items were missing when the associate handed the totes over; the store confirmed it."
    res = client.post("/driver/standing/", {"text": text})
    assert res.status_code == 302 and res["Location"] == "/driver/standing/"
    driver.refresh_from_db()
    assert driver.appeal_text == text and driver.appeal_submitted_at is not None
    assert DriverEvent.objects.filter(driver=driver, reason="appeal submitted").count() == 1

    after = client.get("/driver/standing/").content.decode()
    assert "appeal-pending" in ids_in(after) and "appeal-form" not in ids_in(after)
    again = client.post("/driver/standing/", {"text": text + " Again."})
    assert again.status_code == 400 and "already appealed" in again.content.decode()
    driver.refresh_from_db()
    assert driver.appeal_text == text  # the second one changed nothing
    assert DriverEvent.objects.filter(driver=driver, reason="appeal submitted").count() == 1


def test_appeal_service_guards(zone):
    active = DriverFactory(home_zone=zone)
    with pytest.raises(DomainError) as err:
        driver_appeal_submit(driver=active, text="x" * 40)
    assert err.value.code == "not_appealable"
    suspended = DriverFactory(
        home_zone=zone,
        status=Driver.Status.DEACTIVATED,
        reason_code="fraud",
        status_changed_at=timezone.now() - timedelta(days=2),
    )
    driver_appeal_submit(driver=suspended, text="I was never at that address; see my location history.")
    with pytest.raises(Conflict):
        driver_appeal_submit(driver=suspended, text="Second try at the same decision, please review.")
    with pytest.raises(DomainError) as err:
        driver_appeal_submit(driver=suspended, text="x" * 2001)
    assert err.value.code == "appeal_too_long"
    # Reinstated, then suspended again later: a new decision, a new appeal.
    Driver.objects.filter(pk=suspended.pk).update(status=Driver.Status.SUSPENDED, status_changed_at=timezone.now())
    suspended.refresh_from_db()
    driver_appeal_submit(driver=suspended, text="A new suspension, a new appeal with the details.")


def test_applicant_is_told_to_wait_for_screening(zone):
    applicant = DriverFactory(home_zone=zone, status=Driver.Status.APPLICANT)
    html = client_for(applicant.user).get("/driver/").content.decode()
    assert "not approved yet" in html and "application-link" in ids_in(html)


def test_expired_license_is_the_reason(zone):
    driver = DriverFactory(home_zone=zone, license_expires_on=timezone.localdate() - timedelta(days=3))
    html = client_for(driver.user).get("/driver/").content.decode()
    assert "driver&#x27;s license expired" in html and "documents-link" in ids_in(html)


# --- Who may see the app ----------------------------------------------------------------------


def test_anonymous_goes_to_login_and_non_drivers_get_403(db):
    for path in ("/driver/", "/driver/offers/", "/driver/batch/", "/driver/standing/", "/driver/offers/live/"):
        res = Client().get(path)
        assert res.status_code == 302 and res["Location"].startswith("/accounts/login/"), path
    # A poll after the session ended sends the whole page to the login.
    res = Client().get(
        "/driver/offers/live/", HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/driver/offers/"
    )
    assert res.status_code == 204 and res["HX-Redirect"] == "/accounts/login/?next=%2Fdriver%2Foffers%2F"
    staff = UserFactory(email="associate-only@example.test")
    for path in ("/driver/", "/driver/offers/", "/driver/batch/status/", "/driver/standing/"):
        res = client_for(staff).get(path)
        assert res.status_code == 403, path
        assert "not-driver" in ids_in(res.content.decode())
    assert client_for(staff).post("/driver/push/subscribe/", "{}", content_type="application/json").status_code == 403


# --- Spanish ----------------------------------------------------------------------------------


def test_spanish_follows_the_browser(driver, store):
    offer_for(driver, store)
    client = client_for(driver.user, HTTP_ACCEPT_LANGUAGE="es")
    home = client.get("/driver/").content.decode()
    assert '<html lang="es">' in home
    assert "Conectarse" in home and "Ofertas" in home and "Go online" not in home
    offers = client.get("/driver/offers/").content.decode()
    assert "Aceptar" in offers and "Rechazar" in offers and "Accept" not in offers
    assert "Demasiado lejos" in offers  # decline reasons are translated
    standing = client.get("/driver/standing/").content.decode()
    assert "Sin calificaciones todavía" in standing


def test_language_switch_sets_spanish(driver):
    client = client_for(driver.user)
    res = client.post("/i18n/setlang/", {"language": "es", "next": "/driver/"})
    assert res.status_code == 302 and res["Location"] == "/driver/"
    assert "Conectarse" in client.get("/driver/").content.decode()


# --- Web Push subscription --------------------------------------------------------------------


def _browser_keys() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    return b64(point), b64(os.urandom(16))


def test_push_subscription_is_saved_for_the_driver(driver):
    p256dh, auth = _browser_keys()
    body = {
        "endpoint": "https://fcm.googleapis.com/fcm/send/abc",
        "expirationTime": None,
        "keys": {"p256dh": p256dh, "auth": auth},
    }
    client = client_for(driver.user)
    res = client.post("/driver/push/subscribe/", json.dumps(body), content_type="application/json")
    assert res.status_code == 201
    sub = PushSubscription.objects.get(driver=driver)
    assert sub.endpoint == body["endpoint"] and sub.p256dh == p256dh
    # Saving again is an update, not a second row.
    assert client.post("/driver/push/subscribe/", json.dumps(body), content_type="application/json").status_code == 201
    assert PushSubscription.objects.filter(driver=driver).count() == 1
    bad = client.post(
        "/driver/push/subscribe/",
        json.dumps({**body, "keys": {"p256dh": "nope", "auth": auth}}),
        content_type="application/json",
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_subscription"
    res = client.post(
        "/driver/push/unsubscribe/", json.dumps({"endpoint": body["endpoint"]}), content_type="application/json"
    )
    assert res.status_code == 200 and not PushSubscription.objects.filter(driver=driver).exists()


def test_push_subscribe_needs_the_csrf_token(driver):
    client = Client(enforce_csrf_checks=True)
    client.force_login(driver.user)
    assert client.post("/driver/push/subscribe/", "{}", content_type="application/json").status_code == 403


def test_the_vapid_key_is_handed_to_the_page(driver, settings):
    settings.SPARK_VAPID_PUBLIC_KEY = "BPublicKeyForTheBrowser"
    html = client_for(driver.user).get("/driver/").content.decode()
    assert 'data-vapid-key="BPublicKeyForTheBrowser"' in html


# --- PWA files --------------------------------------------------------------------------------


def test_manifest_is_served_as_a_web_app_manifest(db):
    res = Client().get("/manifest.webmanifest")
    assert res.status_code == 200
    assert res["Content-Type"] == "application/manifest+json"
    data = json.loads(res.content)
    assert data["start_url"] == "/driver/" and data["display"] == "standalone" and data["scope"] == "/driver/"
    assert data["name"] and data["short_name"] and data["theme_color"]
    sizes = {(i["sizes"], i["purpose"]) for i in data["icons"]}
    assert {("192x192", "maskable"), ("512x512", "maskable"), ("192x192", "any"), ("512x512", "any")} <= sizes
    for icon in data["icons"]:
        assert icon["src"].startswith("/static/icons/")
        # The file collectstatic publishes (whitenoise serves it), at the size the manifest says.
        path = finders.find(icon["src"].removeprefix(settings.STATIC_URL))
        assert path, f"{icon['src']} is not a static file"
        with Image.open(path) as image:
            assert f"{image.width}x{image.height}" == icon["sizes"], icon["src"]


def test_service_worker_is_served_from_the_root_with_its_scope_header(db):
    res = Client().get("/sw.js")
    assert res.status_code == 200
    assert res["Content-Type"].startswith("application/javascript")
    assert res["Service-Worker-Allowed"] == "/"
    assert res["Cache-Control"] == "no-cache"
    script = res.content.decode()
    config = json.loads(script.split("self.SPARK_SW = ", 1)[1].split(";\n", 1)[0])
    assert config["offline"] == "/driver/offline/"
    assert {
        "/static/css/driver.css",
        "/static/js/driver.js",
        "/static/vendor/htmx/htmx.min.js",
        "/static/vendor/leaflet/leaflet.js",
    } <= set(config["shell"])
    for event in ('"install"', '"fetch"', '"push"', '"notificationclick"'):
        assert f"addEventListener({event}" in script
    # A revalidation with the same version is a 304.
    again = Client().get("/sw.js", HTTP_IF_NONE_MATCH=res["ETag"])
    assert again.status_code == 304 and again["Service-Worker-Allowed"] == "/"


def test_offline_page_needs_no_login(db):
    res = Client().get("/driver/offline/")
    assert res.status_code == 200 and "offline" in ids_in(res.content.decode())


# --- Offers hard to miss, dead zones (issue 12) -------------------------------------------------


def json_script(html: str, element_id: str):
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(found[1]) if found else None


def test_board_card_shows_the_same_pay_breakdown_as_an_offer(driver, store):
    batch = published(store)
    assert rounds.dispatch_advance(batch_id=batch.pk) == "board"
    quote = pay_quote(batch=batch)
    html = client_for(driver.user).get("/driver/offers/live/").content.decode()
    card = html[html.index('data-testid="board-card"') :]
    breakdown = card[card.index('data-testid="pay-breakdown"') : card.index("</dl>")]
    for label, key in (("Base", "base_cents"), ("Stops", "stops_cents"), ("Customer tips", "tip_cents")):
        assert re.search(rf"<dt>{label}</dt><dd>{re.escape(format_cents(quote[key]))}</dd>", breakdown)
    assert f'<dd class="total">{format_cents(quote["total_cents"])}</dd>' in breakdown


def test_the_offers_badge_carries_the_pending_offer_ids_and_polls_off_the_offers_screen(driver, store):
    offer = offer_for(driver, store)
    client = client_for(driver.user)
    badge = client.get("/driver/offers/badge/").content.decode()
    assert f'data-offer-ids="{offer.pk}"' in badge and 'hx-get="/driver/offers/badge/"' in badge
    home = client.get("/driver/").content.decode()
    assert 'hx-get="/driver/offers/badge/"' in home and f'data-offer-ids="{offer.pk}"' in home
    # On Offers the live list brings the badge along: no second poll.
    assert 'hx-get="/driver/offers/badge/"' not in client.get("/driver/offers/").content.decode()
    dispatch_services.offer_decline(offer=offer, driver=driver, reason="too_far")
    assert 'data-offer-ids=""' in client.get("/driver/offers/badge/").content.decode()


def test_going_online_and_a_slot_sign_up_offer_the_notification_sheet(driver, store):
    DeliverySlotFactory(store=store, starts_at=timezone.now() + timedelta(hours=3))
    html = client_for(driver.user).get("/driver/").content.decode()
    assert {"push-prompt", "push-allow", "push-later", "push-prompt-denied"} <= ids_in(html)
    assert re.search(r'<section class="sheet" id="push-prompt"[^>]*hidden>', html)  # never on page load
    assert re.search(r'data-testid="slot-claim"', html) and 'data-push-prompt="1"' in html


def test_the_batch_status_carries_what_a_dead_zone_needs_while_the_batch_is_active(driver, store):
    batch = assigned_batch(driver, store)
    client = client_for(driver.user)
    page = client.get("/driver/batch/").content.decode()
    assert f'data-active-batch="{batch.pk}"' in page
    kept = json_script(client.get("/driver/batch/status/").content.decode(), "batch-offline")
    assert kept["batch_id"] == batch.pk and kept["pickup_code"] == batch.pickup_code
    assert kept["store"] == f"Green Hills #{store.number}" and kept["pickup_instructions"] == "Park by the pickup sign"
    assert [s["title"] for s in kept["stops"]] == ["1. Customer 0 · To deliver", "2. Customer 1 · To deliver"]
    assert SECRET_STREET in kept["stops"][0]["address"]
    # On the road: no pickup code any more, the stops as they stand.
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    stop_fail(stop=batch.stops.order_by("sequence").first(), driver=driver, reason="no_one_home")
    kept = json_script(client.get("/driver/batch/status/").content.decode(), "batch-offline")
    assert kept["pickup_code"] == "" and kept["stops"][0]["title"] == "1. Customer 0 · Not delivered"
    # Closed: nothing to keep, and every screen says there is no active batch (driver.js wipes).
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.COMPLETED, closed_at=timezone.now())
    status = client.get("/driver/batch/status/").content.decode()
    assert json_script(status, "batch-offline") is None
    assert 'data-active-batch=""' in client.get("/driver/").content.decode()


def test_another_drivers_batch_is_never_kept_for_a_dead_zone(driver, store, zone):
    assigned_batch(DriverFactory(home_zone=zone), store)
    status = client_for(driver.user).get("/driver/batch/status/").content.decode()
    assert json_script(status, "batch-offline") is None and SECRET_STREET not in status


def test_the_offline_page_has_its_strings_and_no_personal_data(db):
    html = Client().get("/driver/offline/").content.decode()
    assert "offline-batch" in ids_in(html)
    assert json_script(html, "driver-i18n")["offline_saved_at"].startswith("You are offline")


# --- Late batches and distances ----------------------------------------------------------------


def late_marks(html: str) -> int:
    return len(re.findall(r'data-testid="late"', html))


def test_a_late_batch_is_marked_on_the_board_the_feed_the_offer_and_the_batch_screen(driver, store):
    on_board = published(store)
    assert rounds.dispatch_advance(batch_id=on_board.pk) == "board"  # before anyone is online on a route
    driver.is_online, driver.online_since = True, timezone.now()
    driver.save()
    RouteFactory(driver=driver, origin_lat="36.150000", origin_lng="-86.790000", dest_lat="36.170000",
                 dest_lng="-86.770000", max_detour_meters=20000)  # fmt: skip
    client = client_for(driver.user)
    assert late_marks(client.get("/driver/offers/").content.decode()) == 0
    assert late_marks(client.get("/driver/").content.decode()) == 0
    make_late(on_board)
    rounds.dispatch_sweep()
    board = client.get("/driver/offers/live/").content.decode()
    start = board.index(f'data-batch-id="{on_board.pk}"')
    card = board[start : board.index("</article>", start)]
    assert late_marks(card) == 1 and ">Late<" in card
    feed = client.get("/driver/feed/").content.decode()
    assert f'data-batch-id="{on_board.pk}"' in feed and late_marks(feed) == 1
    # The pay shown includes the late incentive (the zone's cap).
    on_board.refresh_from_db()
    assert on_board.incentive_cents == driver.home_zone.pay_policy.incentive_cap_cents > 0
    other = DriverFactory(home_zone=store.zone)
    offer = offer_for(other, store)
    make_late(offer.batch)
    rounds.dispatch_sweep()
    offers = client_for(other.user).get("/driver/offers/").content.decode()
    start = offers.index('data-testid="offer-card"')
    card = offers[start : offers.index("</article>", start)]
    assert late_marks(card) == 1
    fresh = Offer.objects.get(batch=offer.batch, driver=other, status="pending")
    assert f"+${fresh.pay.incentive_cents // 100}.00 incentive" in card
    dispatch_services.offer_accept(offer=fresh, driver=other)
    assert late_marks(client_for(other.user).get("/driver/batch/").content.decode()) == 1


def test_distances_read_in_miles_and_feet(driver, store):
    RouteFactory(driver=driver, max_detour_meters=8047)
    batch = published(store)
    client = client_for(driver.user)
    home = client.get("/driver/").content.decode()
    assert "Up to 5 mi out of your way." in home
    assert '<option value="8047" selected>5 mi</option>' in home and " km" not in home
    assert rounds.dispatch_advance(batch_id=batch.pk) == "board"
    board = client.get("/driver/offers/live/").content.decode()
    assert re.search(r"Stop 1 · ZIP 37203 · [\d.]+ (mi|ft) from the store", board)
    assert " km" not in board


def test_the_dispatch_log_says_why_in_the_drivers_language(driver, store):
    offer_for(driver, store)
    log = client_for(driver.user, HTTP_ACCEPT_LANGUAGE="es").get("/driver/standing/log/").content.decode()
    assert "Tienes un turno en esta tienda (n.º 1 por equidad)." in log
    assert "holds a slot" not in log
