"""The driver app in a real browser (Debian's Chromium, iPhone 13 viewport), end to end with the
store associate and the customer:

1. An active driver logs in, goes online with the phone's position, states a route on the map,
   receives a route-matched offer (countdown, pay breakdown, no customer address), accepts,
   checks in at the store and shows the pickup code; the associate hands the batch over on the
   dashboard in a second phone; the driver's page moves on to the stops by itself; each stop is
   delivered with a photo (the first upload is made to fail and is sent again by itself); the
   batch is completed. The customer of the first stop watches it all on /t/<token> in a third
   phone.
2. The customer's tracking page on its own: the batch goes through the same steps through the
   driver API (the calls the app makes) and the page follows by polling status.json: preparing,
   on the way with the driver's first name and vehicle (never the last name or plate) and the
   approximate position while the driver heads there, then delivered with the photo.
3. Alcohol: the ID check refuses an ID under 21 in the browser; the refusal path adds a return
   leg; an ID of 21+ with its photo delivers.

Photos are JPEGs made by Pillow with a GPS position in their EXIF; what is stored has none.
"""

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from io import BytesIO

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image
from playwright.sync_api import Page, expect

from dispatch import rounds
from dispatch import services as dispatch_services
from dispatch.models import Offer
from drivers.models import Driver, Location, Route
from drivers.tests.factories import DriverFactory
from orders.delivery import batch_check_in, batch_handoff
from orders.models import Batch, Order, Stop
from payments.tests.factories import PayPolicyFactory
from spark.money import format_cents
from stores.models import StoreMembership
from stores.tests.factories import StoreFactory, StoreMembershipFactory, ZoneFactory
from tests.browser.conftest import PASSWORD, verify_email
from tests.browser.flow_helpers import (
    AT_STORE,
    AUTO_ADVANCE_MS,
    SPOTS,
    jpeg,
    live_stops,
    make_orders,
    published_batch,
    slot_holder,
    top_offer,
    upload,
)

pytestmark = pytest.mark.slow


POLL_MS = 15_000  # static/js/tracking.js polls status.json this often


def _assert_no_exif(field_file) -> Image.Image:
    """The stored photo is a clean JPEG: no EXIF at all (so no GPS), no more than 1600 px."""
    with field_file.open("rb") as f:
        data = f.read()
    image = Image.open(BytesIO(data))
    assert image.format == "JPEG"
    assert not image.getexif(), f"EXIF left in {field_file.name}: {dict(image.getexif())}"
    assert "exif" not in image.info and b"Exif\x00\x00" not in data
    assert max(image.size) <= 1600
    return image


@pytest.fixture(autouse=True)
def _media_and_cache(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"  # the live server runs in this process
    # DriverAPI.at() stands for pings minutes apart on the road, sent here seconds apart: store
    # each one (drivers.location_gate would keep the first of pings under 5 s apart).
    settings.SPARK_LOCATION_MIN_INTERVAL_SECONDS = 0
    cache.clear()  # local memory: the tracking page's rate limit starts from zero
    yield
    cache.clear()


@pytest.fixture
def phone_with_gps(new_page, phone_context_args):
    """A phone whose browser lets the page read a (fake) position: `phone_with_gps()`."""

    def make(position: dict = AT_STORE) -> Page:
        return new_page(**phone_context_args, geolocation=position, permissions=["geolocation"])

    return make


@pytest.fixture
def world(transactional_db):
    zone = ZoneFactory()
    zone.offer_ttl_seconds = 240  # long enough for a slow shared machine; the countdown still ticks
    zone.save()
    PayPolicyFactory(zone=zone)
    store = StoreFactory(
        zone=zone,
        name="Green Hills Market",
        pickup_instructions="Park by the blue sign",
        store_rules="Show the code at the pickup desk",
    )
    associate = StoreMembershipFactory(store=store, role=StoreMembership.Role.ASSOCIATE).user
    driver = DriverFactory(
        home_zone=zone,
        user__first_name="Ana",
        user__last_name="Quintero",
        vehicle_color="Blue",
        vehicle_make="Toyota",
        vehicle_model="Corolla",
        vehicle_plate="TN7Q4X2",
    )
    return {"zone": zone, "store": store, "associate": associate, "driver": driver}


def _login_driver(page: Page, user) -> None:
    """The real allauth login page, then on to the driver app."""
    verify_email(user)
    page.goto("/accounts/login/?next=/driver/")
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").first.click()
    expect(page).to_have_url(re.compile(r"/driver/$"))


def _customer_phone(customer: Page, order: Order) -> Page:
    """The customer's tracking page with its timers on Playwright's clock, stopped: the page
    polls status.json when `_poll_now` lets 15 s pass, and only then (no poll of its own in
    flight that could answer with the state from before a change)."""
    customer.clock.install()
    customer.clock.pause_at(datetime.now() + timedelta(minutes=1))  # no page yet: no timer fires
    customer.goto(f"/t/{order.tracking_token}")
    return customer


def _poll_now(customer: Page) -> None:
    """Let the tracking page's own 15 s timer fire and wait for the status.json answer it asks for."""
    with customer.expect_response(re.compile(r"/status\.json$")) as answer:
        customer.clock.run_for(POLL_MS)
    assert answer.value.ok


def test_active_driver_takes_a_batch_from_offer_to_completed_with_photos(
    world, phone_with_gps, page, new_page, phone_context_args, login, shot, htmx_settled, fits_width
):
    store, driver, associate = world["store"], world["driver"], world["associate"]
    driver_page = phone_with_gps()

    # --- Home: log in, go online where the phone is -------------------------------------------
    _login_driver(driver_page, driver.user)
    expect(driver_page.locator("h1")).to_have_text("Hi Ana")
    expect(driver_page.get_by_test_id("duty-state")).to_have_text("You are offline")
    with driver_page.expect_response("**/api/v1/driver/online/") as went_online:
        driver_page.get_by_test_id("go-online").click()
    assert went_online.value.status == 200
    expect(driver_page.get_by_test_id("go-offline")).to_be_visible()
    expect(driver_page.get_by_test_id("duty-pill")).to_have_text("Online")
    driver.refresh_from_db()
    assert driver.is_online and driver.online_since is not None
    here = Location.objects.get(driver=driver)
    assert (here.lat, here.lng) == (Decimal("36.150100"), Decimal("-86.790100"))

    # --- Route on the map: start at my location, tap where I am going ------------------------
    editor = driver_page.locator("#route-editor")
    expect(editor).to_have_attribute("open", "")
    route_map = driver_page.locator("#route-map")
    expect(route_map).to_have_class(re.compile(r"\bleaflet-container\b"))
    driver_page.get_by_test_id("route-use-location").click()
    expect(driver_page.locator("#route-points")).to_contain_text("Start: 36.150100, -86.790100")
    # The map zooms to the start (zoom 13). Once it has (tiles of zoom 13, no zoom animation), a
    # tap up and to the right of the start pin is a destination a couple of km north-east, past
    # both customers. The pin's tip is the bottom centre of its icon.
    expect(route_map.locator("img.leaflet-tile[src*='/13/']").first).to_be_attached()
    expect(route_map).not_to_have_class(re.compile(r"\bleaflet-zoom-anim\b"))
    map_box, pin = route_map.bounding_box(), route_map.locator(".leaflet-marker-icon").bounding_box()
    assert map_box is not None and pin is not None
    tip_x, tip_y = pin["x"] + pin["width"] / 2 - map_box["x"], pin["y"] + pin["height"] - map_box["y"]
    route_map.tap(position={"x": tip_x + 120, "y": tip_y - 80})
    expect(driver_page.locator("#route-points")).to_contain_text("Destination: 36.1")
    expect(route_map.locator(".leaflet-marker-icon")).to_have_count(2)
    dest_lat = Decimal(driver_page.locator("input[name=dest_lat]").input_value())
    dest_lng = Decimal(driver_page.locator("input[name=dest_lng]").input_value())
    assert Decimal("36.155") < dest_lat < Decimal("36.175") and Decimal("-86.78") < dest_lng < Decimal("-86.76")
    driver_page.locator("#max_detour_meters").select_option(label="8 mi")
    fits_width(driver_page)
    shot(top_offer(driver_page), "home-online-route")
    driver_page.get_by_test_id("route-save").click()
    expect(driver_page.locator("#toast")).to_contain_text("Route saved")
    expect(editor).not_to_have_attribute("open", "")
    expect(driver_page.get_by_test_id("route-summary")).to_contain_text("Trip")
    route = Route.objects.get(driver=driver, is_active=True)
    assert route.mode == Route.Mode.TRIP
    assert (route.origin_lat, route.origin_lng) == (Decimal("36.150100"), Decimal("-86.790100"))
    assert (route.dest_lat, route.dest_lng) == (dest_lat, dest_lng)
    assert route.max_detour_meters == 12_875  # 8 miles

    # --- The store publishes a batch of two; dispatch offers it to the driver on the route ----
    orders = make_orders(store)
    batch = published_batch(store, orders)
    assert rounds.dispatch_advance(batch_id=batch.pk) == Batch.Stage.ROUTE
    offer = Offer.objects.select_related("pay").get(batch=batch, driver=driver)
    assert offer.kind == Offer.Kind.ROUTE and offer.status == Offer.Status.PENDING

    # The customer of the first stop opens the link from their email on their own phone.
    customer = _customer_phone(new_page(**phone_context_args), orders[0])
    expect(customer.locator("#trk-headline")).to_have_text("The store is preparing your order")
    expect(customer.locator("#trk-timeline li.is-current")).to_contain_text("Preparing")
    expect(customer.locator("#trk-driver")).to_be_hidden()
    expect(customer.locator("#trk-eta-label")).to_have_text("Delivery window")
    fits_width(customer)
    shot(top_offer(customer), "customer-preparing")

    # --- Offers: countdown, pay breakdown, areas only ----------------------------------------
    driver_page.get_by_test_id("tab-offers").click()
    card = driver_page.locator(f"#offer-{offer.pk}")
    expect(card).to_be_visible()
    countdown = card.get_by_test_id("offer-countdown")
    expect(countdown).to_have_text(re.compile(r"^[1-4]:\d\d$"))
    first_reading = countdown.inner_text()
    expect(countdown).not_to_have_text(first_reading)  # it ticks
    expect(card.get_by_test_id("offer-pay")).to_have_text(format_cents(offer.pay.total_cents))
    breakdown = card.get_by_test_id("pay-breakdown")
    expect(breakdown).to_contain_text(format_cents(offer.pay.base_cents))
    expect(breakdown).to_contain_text(format_cents(offer.pay.stops_cents))
    expect(breakdown.locator("dd.total")).to_have_text(format_cents(offer.pay.total_cents))
    expect(card.locator(".flags")).to_contain_text("On your route")
    expect(card.locator(".facts")).to_contain_text("2stops")
    expect(card.get_by_test_id("pickup-instructions")).to_contain_text("Park by the blue sign")
    expect(card.get_by_test_id("offer-areas").locator("li")).to_have_count(2)
    expect(card.get_by_test_id("offer-areas")).to_contain_text("ZIP 37203")
    main = driver_page.locator("main")
    for o in orders:  # no customer address or name before the batch is the driver's
        expect(main).not_to_contain_text(o.address_line1)
        expect(main).not_to_contain_text(o.customer_name)
    # Decline opens the reasons; tapping it again closes them (we accept this one).
    card.get_by_test_id("offer-decline").click()
    expect(card.get_by_test_id("decline-form")).to_be_visible()
    expect(card.get_by_test_id("decline-reason-too_far")).to_be_visible()
    card.get_by_test_id("offer-decline").click()
    expect(card.get_by_test_id("decline-form")).to_be_hidden()
    fits_width(driver_page)
    shot(top_offer(driver_page), "offer")

    card.get_by_test_id("offer-accept").click()
    expect(driver_page).to_have_url(re.compile(r"/driver/batch/$"))
    batch.refresh_from_db()
    assert batch.status == Batch.Status.ASSIGNED and batch.driver_id == driver.pk
    assert Offer.objects.get(pk=offer.pk).status == Offer.Status.ACCEPTED

    # --- At the store: check in, show the pickup code -------------------------------------------
    expect(driver_page.locator("h1")).to_have_text("Pick up at Green Hills Market")
    expect(driver_page.get_by_test_id("store-card")).to_contain_text("Show the code at the pickup desk")
    expect(driver_page.get_by_test_id("pickup-code")).to_have_text(batch.pickup_code)
    expect(driver_page.get_by_test_id("store-navigate")).to_have_attribute(
        "href", re.compile(r"^https://www\.google\.com/maps/dir/\?api=1&destination=36\.150000,-86\.790000$")
    )
    for o in orders:  # the batch is the driver's from the claim on: the addresses show (DESIGN rule 6)
        expect(driver_page.get_by_test_id("stop-addresses")).to_contain_text(o.address_line1)
    driver_page.get_by_test_id("check-in").click()
    timer = driver_page.get_by_test_id("wait-timer")
    expect(timer).to_be_visible()
    expect(driver_page.get_by_test_id("batch-status")).to_have_attribute("data-phase", "at_store")
    expect(driver_page.get_by_test_id("check-in")).to_have_count(0)
    expect(timer).not_to_have_text("0:00")  # it counts up
    batch.refresh_from_db()
    assert batch.status == Batch.Status.AT_STORE and batch.arrived_at_store_at is not None
    fits_width(driver_page)
    shot(top_offer(driver_page), "batch-pickup-code")

    # --- The associate hands over on the dashboard, on their own phone ------------------------
    associate_page = page
    login(associate_page, associate, next_url=f"/dashboard/s/{store.pk}/handoff/")
    handoff = associate_page.locator(f"section.handoff[data-batch='{batch.pk}']")
    expect(handoff.locator("h3")).to_have_text("Ana Q.")
    expect(handoff).to_contain_text("Blue Toyota Corolla")
    expect(handoff.locator(".wait")).to_contain_text("waiting")
    shown_code = driver_page.get_by_test_id("pickup-code").inner_text()  # read off the driver's screen
    handoff.get_by_label("Driver's pickup code").fill(shown_code)
    handoff.get_by_label("ID checked: the name matches the driver").check()  # no photo on file
    shot(top_offer(associate_page), "associate-handoff")
    handoff.get_by_role("button", name="Hand over").click()
    expect(associate_page.locator("#messages .success")).to_have_text(f"Batch {batch.pk} handed over.")
    batch.refresh_from_db()
    assert batch.status == Batch.Status.PICKED_UP and batch.picked_up_at is not None

    # --- The driver's page moves on by itself to the stops, in order ------------------------------
    expect(driver_page.locator("h1")).to_have_text("Deliveries", timeout=AUTO_ADVANCE_MS)
    expect(driver_page.get_by_test_id("batch-status")).to_have_attribute("data-phase", "stops")
    stops = live_stops(batch)
    assert [s.order_id for s in stops] == [o.pk for o in orders]
    expect(driver_page.get_by_test_id("stop")).to_have_count(2)
    expect(driver_page.get_by_test_id("stop-arrive")).to_have_count(1)  # only the next stop
    expect(driver_page.get_by_test_id("complete-batch")).to_be_disabled()

    # The customer's page follows by itself: on the way, with the driver's first name and car.
    _poll_now(customer)
    expect(customer.locator("#trk-timeline li.is-current")).to_contain_text("On the way")
    expect(customer.locator("#trk-headline")).to_have_text("Your driver is heading to you")
    expect(customer.locator("#trk-driver-text")).to_have_text("Ana is delivering your order.")
    expect(customer.locator("#trk-vehicle")).to_have_text("Blue Toyota Corolla")
    expect(customer.locator("#trk-map-card")).to_be_visible()  # the first stop: the driver heads there
    shot(top_offer(customer), "customer-on-the-way")

    photo_bytes = jpeg()
    attempts: list[str] = []

    def drop_first(route):
        attempts.append(route.request.url)
        if len(attempts) == 1:
            route.abort("internetdisconnected")
        else:
            route.fallback()

    for i, stop in enumerate(stops):
        card = driver_page.locator(f"#stop-{stop.pk}")
        expect(card).to_have_class(re.compile(r"\bcurrent\b"))
        expect(card.get_by_test_id("stop-address")).to_contain_text(stop.order.address_line1)
        expect(card.get_by_test_id("stop-navigate")).to_have_attribute(
            "href", re.compile(rf"destination={float(stop.order.lat):.6f},{float(stop.order.lng):.6f}$")
        )
        # At the customer's door (the phone's position goes with "Arrived" and "Deliver").
        driver_page.context.set_geolocation(
            {"latitude": float(stop.order.lat), "longitude": float(stop.order.lng), "accuracy": 8}
        )
        card.get_by_test_id("stop-arrive").click()
        expect(card).to_have_attribute("data-stop-status", "arrived")
        photo_input = card.get_by_test_id("photo-input")
        expect(photo_input).to_have_attribute("capture", "environment")
        photo_input.set_input_files(upload(f"door-{i + 1}.jpg", photo_bytes))
        expect(card.locator("img.photo-preview")).to_be_visible()
        fits_width(driver_page)
        if i == 0:
            shot(top_offer(driver_page), "stop-arrived-with-photo")
            # The first upload dies on a weak signal; the app keeps the photo and sends it again.
            driver_page.route("**/api/v1/driver/stops/*/deliver/", drop_first)
            card.get_by_test_id("stop-deliver").click()
            expect(card.get_by_test_id("upload-state")).to_contain_text("Upload failed (attempt 1)")
            shot(top_offer(driver_page), "upload-retrying")
            expect(card).to_have_attribute("data-stop-status", "delivered")
            assert len(attempts) == 2
            driver_page.unroute("**/api/v1/driver/stops/*/deliver/")
        else:
            card.get_by_test_id("stop-deliver").click()
            expect(card).to_have_attribute("data-stop-status", "delivered")
        expect(card.get_by_test_id("stop-status")).to_have_text("Delivered")
        htmx_settled(driver_page)
        stop.refresh_from_db()
        assert stop.status == Stop.Status.DELIVERED and stop.proof_photo
        # Delivered at the door: within SPARK_DELIVERY_MAX_DISTANCE_M, so nothing to flag.
        assert stop.distance_from_address_m is not None and stop.distance_from_address_m <= 250
        _assert_no_exif(stop.proof_photo)
        if i == 0:
            # The customer sees the delivery and its photo.
            _poll_now(customer)
            expect(customer.locator("#trk-timeline li.is-current")).to_contain_text("Delivered")
            expect(customer.locator("#trk-headline")).to_have_text(re.compile(r"^Delivered at \d"))
            expect(customer.locator("#trk-photo-wrap")).to_be_visible()
            customer.wait_for_function(
                "() => { const i = document.getElementById('trk-photo'); return i.complete && i.naturalWidth > 0; }"
            )
            expect(customer.locator("#trk-map-card")).to_be_hidden()
            expect(customer.locator("#trk-foot")).to_be_hidden()  # nothing more to wait for
            shot(top_offer(customer), "customer-delivered")

    # --- Complete ---------------------------------------------------------------------------------
    expect(driver_page.get_by_test_id("stops").locator("h2")).to_have_text("Stops · 2 of 2 delivered")
    complete = driver_page.get_by_test_id("complete-batch")
    expect(complete).to_be_enabled()
    shot(top_offer(driver_page), "stops-delivered")
    complete.click()
    expect(driver_page.get_by_test_id("last-batch")).to_contain_text("Your batch from Green Hills Market was completed")
    expect(driver_page.get_by_test_id("batch-status")).to_have_attribute("data-phase", "none")
    fits_width(driver_page)
    shot(top_offer(driver_page), "completed")

    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED and batch.closed_at is not None
    assert set(Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("status", flat=True)) == {
        Order.Status.DELIVERED
    }
    for stop in live_stops(batch):
        assert stop.status == Stop.Status.DELIVERED and stop.delivered_at is not None
        _assert_no_exif(stop.proof_photo)
    assert Driver.objects.get(pk=driver.pk).is_online  # still online for the next batch

    # Customer privacy held all along: the driver's last name and plate never appeared.
    for text in (customer.locator("body").inner_text(), customer.content()):
        assert "Quintero" not in text and "TN7Q4X2" not in text


class DriverAPI:
    """The driver's phone speaking the driver API (/api/v1/driver/...), as static/js/driver.js does."""

    def __init__(self, driver):
        self.client = Client()
        self.client.force_login(driver.user)

    def post(self, path: str, data=None, *, json: bool = True):
        url = f"/api/v1/driver/{path}"
        if json:
            response = self.client.post(url, data or {}, content_type="application/json")
        else:
            response = self.client.post(url, data)  # multipart, like the app's photo upload
        assert response.status_code in (200, 201), (url, response.status_code, response.content[:500])
        return response

    def at(self, lat, lng) -> None:
        self.post("location/", {"lat": str(lat), "lng": str(lng), "accuracy_m": 8})

    def deliver(self, stop: Stop, **extra) -> None:
        photo = SimpleUploadedFile("IMG_0001.jpg", jpeg(color=(40, 140, 90)), content_type="image/jpeg")
        order = stop.order
        self.post(
            f"stops/{stop.pk}/deliver/",
            {"photo": photo, "lat": str(order.lat), "lng": str(order.lng), **extra},
            json=False,
        )


def test_customer_tracking_page_follows_the_same_batch(world, new_page, phone_context_args, shot, fits_width):
    """The second customer's page, from "preparing" to "delivered", updated by its own polling of
    status.json (Playwright's clock makes each 15 s poll happen at once). The driver's side goes
    through the driver API, with the photo sent as the phone took it (GPS in its EXIF)."""
    store, driver = world["store"], world["driver"]
    slot_holder(store, driver)
    orders = make_orders(store, prefix="TRK")
    batch = published_batch(store, orders)
    assert rounds.dispatch_advance(batch_id=batch.pk) == Batch.Stage.SLOT
    offer = Offer.objects.get(batch=batch, driver=driver, kind=Offer.Kind.SLOT)
    mine, other = orders[1], orders[0]  # the customer of the second stop

    customer = _customer_phone(new_page(**phone_context_args), mine)
    headline, current = customer.locator("#trk-headline"), customer.locator("#trk-timeline li.is-current")
    map_card = customer.locator("#trk-map-card")

    def private() -> None:
        """Never the driver's last name or plate, never the other customer."""
        html = customer.content()
        for secret in ("Quintero", "TN7Q4X2", other.customer_name, other.address_line1, other.tracking_token):
            assert secret not in html, secret

    expect(headline).to_have_text("The store is preparing your order")
    expect(current).to_contain_text("Preparing")
    expect(customer.locator(".trk-store")).to_have_text("Your order from Green Hills Market")
    expect(customer.locator("#trk-driver")).to_be_hidden()
    expect(customer.locator("#trk-eta-label")).to_have_text("Delivery window")
    expect(customer.locator("#trk-tip-amount")).to_have_text("$5.00")
    expect(customer.locator("#trk-foot")).to_contain_text("This page updates by itself.")
    fits_width(customer)
    private()
    shot(top_offer(customer), "preparing")

    api = DriverAPI(driver)
    api.post(f"offers/{offer.pk}/accept/")
    _poll_now(customer)
    expect(customer.locator("#trk-driver-text")).to_have_text("Ana will pick up your order at the store.")
    expect(customer.locator("#trk-vehicle")).to_have_text("Blue Toyota Corolla")
    expect(current).to_contain_text("Preparing")
    private()
    shot(top_offer(customer), "driver-assigned")

    api.at(store.lat, store.lng)
    api.post(f"batches/{batch.pk}/arrive/", {"lat": str(store.lat), "lng": str(store.lng)})
    batch.refresh_from_db()
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)  # the associate (test 1 drives it)

    _poll_now(customer)
    expect(current).to_contain_text("On the way")
    expect(headline).to_have_text("On the way: 1 stop before yours")
    expect(customer.locator("#trk-driver-text")).to_have_text("Ana is delivering your order.")
    expect(customer.locator("#trk-eta-label")).to_have_text("Estimated arrival")
    expect(map_card).to_be_hidden()  # the driver is going to someone else first
    private()
    shot(top_offer(customer), "on-the-way-one-stop-before")

    first, second = live_stops(batch)
    assert (first.order_id, second.order_id) == (other.pk, mine.pk)
    api.post(f"stops/{first.pk}/arrive/")
    api.deliver(first)
    # On the road from the first stop: a position the customer may see, but only roughly.
    exact = (Decimal("36.161234"), Decimal("-86.777654"))
    api.at(*exact)
    with customer.expect_response(re.compile(r"/status\.json$")) as answer:
        customer.clock.run_for(POLL_MS)
    position = answer.value.json()["position"]
    assert position["radius_m"] == 200
    assert (Decimal(str(position["lat"])), Decimal(str(position["lng"]))) != exact
    assert abs(position["lat"] - float(exact[0])) < 0.002 and abs(position["lng"] - float(exact[1])) < 0.002
    expect(headline).to_have_text("Your driver is heading to you")
    expect(customer.locator("#trk-eta-text")).to_have_text(re.compile(r"^Around \d{1,2}:\d\d [AP]M$"))
    expect(map_card).to_be_visible()
    expect(customer.locator("#trk-map.leaflet-container")).to_be_visible()
    expect(customer.locator("#trk-map .leaflet-overlay-pane path")).to_have_count(2)  # the driver's circle + home
    private()
    shot(top_offer(customer), "heading-here-with-map")

    api.post(f"stops/{second.pk}/arrive/")
    _poll_now(customer)
    expect(headline).to_have_text("Your driver has arrived")
    expect(customer.locator("#trk-eta-text")).to_have_text("Now")

    api.deliver(second)
    _poll_now(customer)
    expect(current).to_contain_text("Delivered")
    expect(headline).to_have_text(re.compile(r"^Delivered at \d{1,2}:\d\d [AP]M$"))
    expect(customer.locator("#trk-driver-text")).to_have_text("Delivered by Ana.")
    expect(map_card).to_be_hidden()
    expect(customer.locator("#trk-eta")).to_be_hidden()
    expect(customer.locator("#trk-foot")).to_be_hidden()
    photo = customer.locator("#trk-photo")
    expect(customer.locator("#trk-photo-wrap")).to_be_visible()
    customer.wait_for_function(
        "() => { const i = document.getElementById('trk-photo'); return i.complete && i.naturalWidth > 0; }"
    )
    fits_width(customer)
    private()
    shot(top_offer(customer), "delivered-with-photo")

    # The photo the customer is shown is the stored one, without the phone's EXIF/GPS.
    served = customer.context.request.get(photo.get_attribute("src"))
    assert served.ok and served.headers["content-type"] == "image/jpeg"
    assert served.headers["referrer-policy"] == "same-origin"
    image = Image.open(BytesIO(served.body()))
    assert not image.getexif() and b"Exif\x00\x00" not in served.body()
    second.refresh_from_db()
    _assert_no_exif(second.proof_photo)
    assert second.distance_from_address_m == 0
    # No more polling once the order is delivered.
    polls: list[str] = []
    customer.on("request", lambda r: polls.append(r.url) if r.url.endswith("/status.json") else None)
    customer.clock.run_for(4 * POLL_MS)
    customer.wait_for_timeout(300)  # a poll the timers started would have shown up by now
    assert polls == []


def test_alcohol_stop_needs_an_id_of_21_or_older(world, phone_with_gps, force_login, shot, htmx_settled):
    store, driver = world["store"], world["driver"]
    slot_holder(store, driver)
    orders = make_orders(store, alcohol=(True, True), prefix="ALC")
    batch = published_batch(store, orders)
    rounds.dispatch_advance(batch_id=batch.pk)
    offer = Offer.objects.get(batch=batch, driver=driver)
    dispatch_services.offer_accept(offer=offer, driver=driver)
    batch.refresh_from_db()
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    first, second = live_stops(batch)

    page = phone_with_gps({"latitude": float(SPOTS[0][0]), "longitude": float(SPOTS[0][1]), "accuracy": 10})
    force_login(page, driver.user)
    deliver_posts: list[str] = []
    page.on("request", lambda r: deliver_posts.append(r.url) if "/deliver/" in r.url else None)
    page.goto("/driver/batch/")
    toast = page.locator("#toast")

    # Stop 1: the customer is 20. The app refuses before anything is sent.
    card = page.locator(f"#stop-{first.pk}")
    expect(card.locator(".flag.alcohol")).to_have_text("Alcohol · ID check")
    card.get_by_test_id("stop-arrive").click()
    expect(card.get_by_test_id("id-check")).to_be_visible()
    card.get_by_test_id("photo-input").set_input_files(upload("door.jpg", jpeg()))
    card.get_by_test_id("stop-deliver").click()
    expect(toast).to_have_text("Alcohol: enter the date of birth and take a photo of the ID.")
    minor = date.today() - timedelta(days=365 * 20)
    card.get_by_test_id("id-birth-date").fill(minor.isoformat())
    card.get_by_test_id("id-photo-input").set_input_files(
        upload("id.jpg", jpeg(color=(230, 230, 210), size=(800, 500)))
    )
    card.get_by_test_id("stop-deliver").click()
    expect(toast).to_contain_text("The customer is under 21: alcohol cannot be delivered.")
    expect(toast).to_have_attribute("data-kind", "error")
    shot(top_offer(page), "under-21-refused")
    assert deliver_posts == []
    first.refresh_from_db()
    assert first.status == Stop.Status.ARRIVED and not first.proof_photo

    # The refusal path: "Can't deliver" with "alcohol refused" already chosen; a return leg appears.
    card.get_by_test_id("stop-fail").click()
    expect(card.get_by_test_id("fail-reason-refused_alcohol")).to_be_checked()
    card.get_by_test_id("stop-fail-confirm").click()
    expect(card).to_have_attribute("data-stop-status", "failed")
    expect(page.get_by_test_id("return-leg")).to_contain_text("Stop 1 · Customer ALC 1")
    htmx_settled(page)

    # Stop 2: an ID of someone 21 or older, with its photo: delivered.
    card = page.locator(f"#stop-{second.pk}")
    expect(card).to_have_class(re.compile(r"\bcurrent\b"))
    card.get_by_test_id("stop-arrive").click()
    expect(card.get_by_test_id("id-check")).to_be_visible()
    card.get_by_test_id("photo-input").set_input_files(upload("door.jpg", jpeg()))
    card.get_by_test_id("id-birth-date").fill("1990-01-02")
    card.get_by_test_id("id-photo-input").set_input_files(
        upload("id.jpg", jpeg(color=(230, 230, 210), size=(800, 500)))
    )
    card.get_by_test_id("stop-deliver").click()
    expect(card).to_have_attribute("data-stop-status", "delivered")
    assert len(deliver_posts) == 1
    complete = page.get_by_test_id("complete-batch")
    expect(complete).to_be_enabled()
    shot(top_offer(page), "return-leg")
    complete.click()
    expect(page.get_by_test_id("batch-status")).to_have_attribute("data-phase", "returning")
    expect(page.get_by_test_id("batch-status")).to_contain_text("Bring 1 order back to the store.")
    shot(top_offer(page), "returning")

    first.refresh_from_db()
    second.refresh_from_db()
    batch.refresh_from_db()
    assert first.status == Stop.Status.FAILED and first.failure_reason == "refused_alcohol"
    assert Order.objects.get(pk=first.order_id).status == Order.Status.UNDELIVERABLE
    assert second.status == Stop.Status.DELIVERED and second.id_checked
    assert second.id_birth_date == date(1990, 1, 2)
    _assert_no_exif(second.proof_photo)
    _assert_no_exif(second.id_photo)
    assert batch.status == Batch.Status.RETURNING
