"""Issue 12, the driver's phone in a real browser (Chromium, iPhone 13 viewport):

1. Offers are hard to miss: an offer arriving while the app is open chimes and vibrates (on
   Offers through the live list, elsewhere through the tab bar's badge); Accept and Decline stay
   on screen while the pay breakdown scrolls; open-board cards show the same breakdown; the
   notification permission is asked when the driver goes online, after a sheet that says why,
   and a refusal is explained.
2. Dead zones: the active batch (pickup code, stops, addresses) shows with no signal from what
   was last loaded, says it is offline and since when, and is gone once the batch completes.

The browser's own devices are stubbed with add_init_script (navigator.vibrate, AudioContext,
Notification's permission), recording what the app asks of them; the app's code is not.
"""

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from playwright.sync_api import Page, expect

from dispatch import rounds
from dispatch import services as dispatch_services
from dispatch.models import Offer
from drivers.tests.factories import DriverFactory
from orders.delivery import batch_check_in, batch_complete, batch_handoff, stop_deliver
from orders.models import Batch
from orders.tests.factories import OrderFactory
from payments.services import pay_quote
from payments.tests.factories import PayPolicyFactory
from spark import vapidkeys
from spark.money import format_cents
from stores.tests.factories import StoreFactory, ZoneFactory
from tests.browser.conftest import SCREENSHOT_DIR
from tests.browser.flow_helpers import (
    AT_STORE,
    DEVICE_STUBS,
    jpeg,
    live_stops,
    make_orders,
    notification_stub,
    published_batch,
    slot_holder,
)

pytestmark = pytest.mark.slow

OFFLINE_KEY = "spark-active-batch"  # static/js/driver.js

# Notification permission starts at "default"; the browser's question is answered "denied".
NOTIFICATION_STUB = notification_stub("denied")


@pytest.fixture
def world(transactional_db, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"  # the live server runs in this process
    zone = ZoneFactory()
    zone.offer_ttl_seconds = 600  # a slow shared machine must not expire the offer mid-test
    zone.save()
    PayPolicyFactory(zone=zone)
    store = StoreFactory(
        zone=zone,
        name="Green Hills Market",
        pickup_instructions="Park by the blue sign, walk to the pickup desk at the back of the store",
        store_rules="Show the code at the pickup desk; bags stay sealed",
    )
    driver = DriverFactory(home_zone=zone, user__first_name="Ana", user__last_name="Quintero")
    return {"zone": zone, "store": store, "driver": driver}


@pytest.fixture
def phone(new_page, phone_context_args):
    """A phone with a (fake) position whose vibration and sound are recorded."""

    def make(*init_scripts: str) -> Page:
        page = new_page(**phone_context_args, geolocation=AT_STORE, permissions=["geolocation"])
        for script in (DEVICE_STUBS, *init_scripts):
            page.add_init_script(script)
        return page

    return make


def _offer(store, driver, *, prefix: str, stops: int = 2) -> Offer:
    """A slot offer of a fresh batch to `driver` (they hold a seat in a slot of the store)."""
    orders = make_orders(store, prefix=prefix)
    start = timezone.now() + timedelta(minutes=50)
    orders += [
        OrderFactory(
            store=store, external_id=f"{prefix}-x{i}", window_start=start, window_end=start + timedelta(hours=2)
        )
        for i in range(stops - len(orders))
    ]
    batch = published_batch(store, orders)
    rounds.dispatch_advance(batch_id=batch.pk)
    return Offer.objects.select_related("pay").get(batch=batch, driver=driver)


def _device(page: Page) -> dict:
    return page.evaluate("() => window.__device")


def _viewport_shot(page: Page, name: str) -> None:
    """What the phone's screen shows (the conftest's shots are full-page: no sticky bar there)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), animations="disabled")


def test_an_offer_arriving_while_the_app_is_open_chimes_and_vibrates(world, phone, force_login, htmx_settled, shot):
    store, driver = world["store"], world["driver"]
    slot_holder(store, driver)
    page = phone()
    force_login(page, driver.user)

    # given the driver on the Offers screen with nothing offered yet
    page.goto("/driver/offers/")
    expect(page.get_by_test_id("no-offers")).to_be_visible()
    assert _device(page) == {"vibrate": [], "tones": [], "contexts": 0}

    # when an offer comes in (the list refreshes itself every 5 s)
    offer = _offer(store, driver, prefix="RING")
    card = page.locator(f"#offer-{offer.pk}")
    expect(card).to_be_visible(timeout=15_000)

    # then the phone chimes and vibrates once, and the new card is marked
    page.wait_for_function("() => window.__device.vibrate.length > 0")
    device = _device(page)
    assert device["vibrate"] == [[250, 120, 250]]
    assert device["tones"] == [880, 1320]
    expect(card).to_have_class("card offer-card fresh")
    expect(page.locator("#toast")).to_have_text("New offer below.")
    expect(page.get_by_test_id("offers-badge")).to_have_text("1")
    shot(page, "offer-arrived")

    # and the next refresh, with the same offer, stays quiet
    htmx_settled(page)
    page.evaluate("() => htmx.trigger(document.body, 'spark:push')")
    htmx_settled(page)
    assert len(_device(page)["vibrate"]) == 1

    # given the driver on Home, when a second offer comes, pushed to the phone (the service
    # worker tells open pages, which refresh the tab bar's badge)
    page.get_by_test_id("tab-home").click()
    expect(page.get_by_test_id("offers-badge")).to_have_text("1")
    assert _device(page)["vibrate"] == []  # the offer already seen is not news on this screen
    _offer(store, driver, prefix="PUSH")
    page.evaluate("() => htmx.trigger(document.body, 'spark:push')")

    # then it rings there too (this page's record starts empty), and the badge counts two
    expect(page.get_by_test_id("offers-badge")).to_have_text("2")
    page.wait_for_function("() => window.__device.vibrate.length > 0")
    expect(page.locator("#toast")).to_have_text("New offer! Open Offers to see it.")
    assert _device(page) == {"vibrate": [[250, 120, 250]], "tones": [880, 1320], "contexts": 1}
    shot(page, "offer-arrived-on-home")


def test_accept_and_decline_stay_on_screen_while_the_pay_breakdown_scrolls(world, phone, force_login, shot):
    store, driver = world["store"], world["driver"]
    slot_holder(store, driver)
    offer = _offer(store, driver, prefix="TALL", stops=4)
    page = phone()
    force_login(page, driver.user)
    page.goto("/driver/offers/")
    card = page.locator(f"#offer-{offer.pk}")
    accept, decline = card.get_by_test_id("offer-accept"), card.get_by_test_id("offer-decline")
    viewport = page.viewport_size
    assert viewport is not None

    # The card is taller than the screen: without sticking, Accept would be below the fold.
    card_box = card.bounding_box()
    assert card_box is not None and card_box["y"] + card_box["height"] > viewport["height"]

    # when the driver scrolls to read the pay breakdown
    breakdown = card.get_by_test_id("pay-breakdown")
    breakdown.evaluate("el => el.scrollIntoView({block: 'center'})")
    expect(breakdown).to_be_in_viewport()

    # then Accept and Decline are on screen, above the tab bar, and nothing covers them
    tabbar = page.locator(".tabbar").bounding_box()
    card_box = card.bounding_box()
    assert tabbar is not None and card_box is not None
    assert card_box["y"] + card_box["height"] > tabbar["y"] + 100  # the card's end is still far below
    for button in (accept, decline):
        box = button.bounding_box()
        assert box is not None
        assert 0 <= box["y"] and box["y"] + box["height"] <= tabbar["y"], (box, tabbar)
        hit = page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y).closest('[data-testid]').dataset.testid",
            [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
        )
        assert hit == button.get_attribute("data-testid")
    _viewport_shot(page, "offer-sticky-actions--scrolled-to-breakdown")

    # and a tap on Accept takes the batch
    accept.click()
    expect(page).to_have_url(f"{page.url.split('/driver/')[0]}/driver/batch/")
    assert Offer.objects.get(pk=offer.pk).status == Offer.Status.ACCEPTED
    shot(page, "accepted")


def test_board_cards_show_the_pay_breakdown(world, phone, force_login, fits_width, shot):
    store, driver = world["store"], world["driver"]
    batch = published_batch(store, make_orders(store, prefix="BOARD"))
    assert rounds.dispatch_advance(batch_id=batch.pk) == Batch.Stage.BOARD
    quote = pay_quote(batch=Batch.objects.select_related("store__zone").get(pk=batch.pk))
    page = phone()
    force_login(page, driver.user)
    page.goto("/driver/offers/")
    card = page.locator(f"[data-testid=board-card][data-batch-id='{batch.pk}']")
    breakdown = card.get_by_test_id("pay-breakdown")
    expect(breakdown).to_be_visible()
    for label, key in (("Base", "base_cents"), ("Stops", "stops_cents"), ("Customer tips", "tip_cents")):
        expect(breakdown.locator(f"dt:text-is('{label}') + dd")).to_have_text(format_cents(quote[key]))
    expect(breakdown.locator("dd.total")).to_have_text(format_cents(quote["total_cents"]))
    expect(card.get_by_test_id("board-claim")).to_be_visible()
    fits_width(page)
    shot(page, "board-card-breakdown")


def test_going_online_explains_then_asks_for_notifications_and_a_refusal_is_explained(
    world, phone, force_login, settings, shot
):
    settings.SPARK_VAPID_PUBLIC_KEY = vapidkeys.new_pair().public_key  # push is configured
    driver = world["driver"]
    page = phone(NOTIFICATION_STUB)
    force_login(page, driver.user)

    # given the Home screen: nothing asked on page load
    page.goto("/driver/")
    sheet = page.get_by_test_id("push-prompt")
    expect(page.get_by_test_id("go-online")).to_be_visible()
    expect(sheet).to_be_hidden()

    # when the driver goes online, the sheet says why, and the browser has not asked yet
    page.get_by_test_id("go-online").click()
    expect(page.get_by_test_id("go-offline")).to_be_visible()
    expect(sheet).to_be_visible()
    expect(sheet).to_contain_text("Offers last only a minute or two")
    assert page.evaluate("() => window.__permission.asked") == 0
    shot(page, "notification-sheet")

    # when they tap Allow, the browser asks; refused, the sheet says what still works and how to fix it
    page.get_by_test_id("push-allow").click()
    expect(page.get_by_test_id("push-prompt-denied")).to_be_visible()
    expect(page.get_by_test_id("push-allow")).to_be_hidden()
    assert page.evaluate("() => window.__permission.asked") == 1
    shot(page, "notifications-refused")
    page.get_by_test_id("push-close").click()
    expect(sheet).to_be_hidden()

    # and going online again does not nag
    page.get_by_test_id("go-offline").click()
    page.get_by_test_id("go-online").click()
    expect(page.get_by_test_id("go-offline")).to_be_visible()
    expect(page.locator("#toast")).to_have_text("You are online.")
    expect(sheet).to_be_hidden()
    assert page.evaluate("() => window.__permission.asked") == 1


def _kept(page: Page):
    return json.loads(page.evaluate(f"() => localStorage.getItem('{OFFLINE_KEY}') || 'null'"))


def test_the_active_batch_shows_offline_and_is_wiped_once_it_completes(world, phone, force_login, shot):
    store, driver = world["store"], world["driver"]
    slot_holder(store, driver)
    offer = _offer(store, driver, prefix="DEAD")
    dispatch_services.offer_accept(offer=offer, driver=driver)
    batch = Batch.objects.get(pk=offer.batch_id)
    stops = live_stops(batch)
    page = phone()
    force_login(page, driver.user)

    # given the Batch screen loaded once with a signal, under the app's service worker
    page.goto("/driver/batch/")
    expect(page.get_by_test_id("pickup-code")).to_have_text(batch.pickup_code)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=20_000)
    page.wait_for_function(f"() => localStorage.getItem('{OFFLINE_KEY}') !== null")
    assert _kept(page)["batch_id"] == batch.pk

    # when the phone loses its signal and the screen is opened again
    page.context.set_offline(True)
    page.reload()

    # then the offline screen says so and since when, and shows the pickup code and the stops
    expect(page.get_by_test_id("offline")).to_be_visible()
    expect(page.get_by_test_id("offline-saved-at")).to_contain_text("You are offline. Your batch as of")
    expect(page.get_by_test_id("pickup-code")).to_have_text(batch.pickup_code)
    expect(page.get_by_test_id("offline-batch")).to_contain_text("Green Hills Market")
    offline_stops = page.get_by_test_id("offline-stop")
    expect(offline_stops).to_have_count(2)
    for shown, stop in zip(offline_stops.all(), stops, strict=True):
        expect(shown).to_contain_text(stop.order.customer_name)
        expect(shown).to_contain_text(stop.order.address_line1)
    shot(page, "offline-batch")

    # given the signal back and the batch delivered and completed
    page.context.set_offline(False)
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    for stop in stops:
        stop_deliver(stop=stop, driver=driver, photo=SimpleUploadedFile("door.jpg", jpeg(), "image/jpeg"))
    batch_complete(batch=Batch.objects.get(pk=batch.pk), driver=driver)

    # when the app loads again, the kept batch is wiped
    page.goto("/driver/batch/")
    expect(page.get_by_test_id("last-batch")).to_contain_text("was completed")
    page.wait_for_function(f"() => localStorage.getItem('{OFFLINE_KEY}') === null")

    # and with no signal, no customer's name or address, and no pickup code, is left to show
    page.context.set_offline(True)
    page.reload()
    expect(page.get_by_test_id("offline")).to_be_visible()
    expect(page.get_by_test_id("offline-batch")).to_be_hidden()
    body = page.locator("body")
    expect(body).not_to_contain_text(batch.pickup_code)
    for stop in stops:
        expect(body).not_to_contain_text(stop.order.address_line1)
        expect(body).not_to_contain_text(stop.order.customer_name)
    shot(page, "offline-after-completion")
    page.context.set_offline(False)


def test_logging_out_wipes_the_kept_batch(world, phone, force_login):
    store, driver = world["store"], world["driver"]
    slot_holder(store, driver)
    offer = _offer(store, driver, prefix="OUT")
    dispatch_services.offer_accept(offer=offer, driver=driver)
    page = phone()
    force_login(page, driver.user)
    page.goto("/driver/batch/")
    page.wait_for_function(f"() => localStorage.getItem('{OFFLINE_KEY}') !== null")

    # a screen without the batch keeps it while the batch is active
    page.get_by_test_id("tab-standing").click()
    expect(page.get_by_test_id("logout")).to_be_visible()
    assert _kept(page)["batch_id"] == offer.batch_id

    # logging out leaves no customer's address on the phone
    page.get_by_test_id("logout").click()
    page.wait_for_url(lambda url: "/driver/standing/" not in url)
    assert _kept(page) is None
