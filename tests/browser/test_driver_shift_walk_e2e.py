"""Issue 12's browser walk of a shift, on one phone (Chromium, iPhone 13 viewport), the way a new
driver lives it: sign up, slot, check in, offer with push, deliver, help report.

1. Sign up: a newcomer goes through the funnel (allauth sign-up, the emailed link, the texted
   code, every onboarding step) until "application under review"; ops record a clear
   background check (the service the admin calls), which makes the driver active.
2. Slot: from Home they sign up for a slot at the store starting soon. That is the first moment
   offers can come, so the app explains notifications in a sheet and then the browser asks:
   granted, the app subscribes to Web Push and gives the server its subscription.
3. Check in: in the store's parking lot (the browser's geolocation), the slot checks in.
4. Offer with push: they go online (not asked again); the store publishes a batch and dispatch
   offers it to them as the slot holder. The open Offers screen chimes and vibrates, and the
   push for the offer is queued; run as the worker would, our sender posts it, encrypted, to the
   subscription's endpoint (a local push service: a real one is not reachable here), and only
   the phone's keys open it. They accept.
5. Deliver: check in for the batch at the store, the associate hands it over, each stop is
   delivered with a photo, the batch is completed; the screen says what it paid.
6. Help report: from Help they report a problem with the batch attached and see it waiting;
   ops find it in the admin queue (desk size).

The phone's devices are stubbed with add_init_script (vibration, sound, the Notification
permission, PushManager.subscribe: headless Chromium has no push service); the app's code is not.
"""

import base64
import json
import re
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.core import mail
from django.core.cache import cache
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from dispatch import rounds
from dispatch.models import Offer
from dispatch.push import send_offer_push_task
from dispatch.tests.helpers import Browser, PushService
from drivers import sms
from drivers.models import Driver, PushSubscription, SlotClaim
from orders.delivery import batch_handoff
from orders.models import Batch, SupportRequest
from payments.contractor.services import screening_record_result
from payments.models import BatchPay, ScreeningCase
from payments.tasks import sweep_unsettled_batches
from payments.tests.factories import PayPolicyFactory
from spark import vapidkeys
from spark.money import format_cents
from stores.tests.factories import DeliverySlotFactory, StoreFactory, UserFactory, ZoneFactory
from tests.browser.flow_helpers import (
    AT_STORE,
    AUTO_ADVANCE_MS,
    DEVICE_STUBS,
    born_years_ago,
    fill_birth_date,
    fill_documents,
    fill_profile,
    fill_vehicle,
    jpeg,
    live_stops,
    make_orders,
    notification_stub,
    published_batch,
    sign_consent,
    submit_application,
    top_offer,
    upload,
)

pytestmark = pytest.mark.slow

EMAIL = "sam.rivera@example.test"
PASSWORD = "Groceries-4-all!"
PUSH_PATH = "/push/sam-phone"

# PushManager as the app uses it (getSubscription, then subscribe), answering with a subscription
# whose endpoint is the local push service and whose keys are the test's Browser: what the app
# does with it (POST it to the server) is the app's own code.
PUSH_MANAGER_STUB = """
window.__pushSubscription = null;
PushManager.prototype.getSubscription = function () { return Promise.resolve(window.__pushSubscription); };
PushManager.prototype.subscribe = function () {
  var json = SUBSCRIPTION;
  window.__pushSubscription = { endpoint: json.endpoint, toJSON: function () { return json; } };
  return Promise.resolve(window.__pushSubscription);
};
"""


@pytest.fixture
def shift(transactional_db, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"  # the live server runs in this process
    settings.SPARK_SMS_BACKEND = "locmem"
    settings.SPARK_LOCATION_MIN_INTERVAL_SECONDS = 0
    pair = vapidkeys.new_pair()
    settings.SPARK_VAPID_PRIVATE_KEY, settings.SPARK_VAPID_PUBLIC_KEY = pair.private_key, pair.public_key
    settings.SPARK_VAPID_SUBJECT = "mailto:ops@spark.test"
    settings.SPARK_PUSH_ALLOW_INSECURE_ENDPOINTS = True  # the local push service is plain http
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # the push must reach 127.0.0.1 itself
    sms.outbox.clear()
    cache.clear()
    zone = ZoneFactory()
    zone.offer_ttl_seconds = 600  # a slow shared machine must not expire the offer mid-test
    zone.save()
    PayPolicyFactory(zone=zone)
    store = StoreFactory(zone=zone, name="Green Hills Market", pickup_instructions="Park by the blue sign")
    now = timezone.now()
    slot = DeliverySlotFactory(store=store, starts_at=now + timedelta(minutes=15), ends_at=now + timedelta(hours=3))
    push_service = PushService()
    yield {"zone": zone, "store": store, "slot": slot, "push_service": push_service}
    push_service.close()
    sms.outbox.clear()
    cache.clear()


@pytest.fixture
def phone(new_page, phone_context_args, shift) -> tuple[Page, Browser]:
    """The driver's phone in the store's parking lot, with its devices recorded and a push
    subscription ready for when the app asks."""
    browser_keys = Browser()
    subscription = {
        "endpoint": shift["push_service"].url(PUSH_PATH),
        "expirationTime": None,
        "keys": {"p256dh": browser_keys.p256dh, "auth": browser_keys.auth},
    }
    page = new_page(**phone_context_args, geolocation=AT_STORE, permissions=["geolocation"])
    for script in (DEVICE_STUBS, notification_stub("granted"), PUSH_MANAGER_STUB):
        page.add_init_script(script.replace("SUBSCRIPTION", json.dumps(subscription)))
    return page, browser_keys


def _sign_up(page: Page, zone, shot) -> Driver:
    """The funnel, without its detours (test_signup_e2e.py takes those)."""
    page.goto("/driver/join/")
    page.locator("#signup").click()
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.locator("#signup-form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/accounts/confirm-email/"))
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[-1].body).group(0)
    page.goto(link)
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/driver/join/profile/$"))
    fill_profile(page, zone, first="Sam", last="Rivera", phone="(615) 555-0142")
    shot(page, "sign up: profile")
    page.locator("#profile-form button[type=submit]").click()
    page.get_by_role("button", name="Text me a code").click()
    page.fill("input[name=code]", re.search(r"\b(\d{6})\b", sms.outbox[-1].body).group(1))
    page.get_by_role("button", name="Verify").click()
    fill_vehicle(page)
    page.locator("#vehicle-form button[type=submit]").click()
    fill_documents(page, insurance_expires_on=timezone.localdate() + timedelta(days=150))
    page.locator("#documents-form button[type=submit]").click()
    fill_birth_date(page, born_years_ago(30))
    sign_consent(page, "Sam Rivera")
    page.locator("#consent-form button[type=submit]").click()
    submit_application(page)
    shot(page, "sign up: under review")
    return Driver.objects.get(user__email=EMAIL)


def _broker_queue() -> tuple[redis.Redis, str]:
    return redis.Redis.from_url(django_settings.CELERY_BROKER_URL), "celery"


def _pushes_queued_since(length_before: int) -> list[int]:
    """The offer ids of the send_offer_push_task messages queued since the broker's queue was
    `length_before` long. Tests run no Celery worker, so what dispatch queued on commit is still
    there, newest first."""
    broker, queue = _broker_queue()
    fresh = broker.lrange(queue, 0, broker.llen(queue) - length_before - 1)
    offer_ids = []
    for raw in fresh:
        message = json.loads(raw)
        if message["headers"].get("task") == send_offer_push_task.name:
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            offer_ids.append(args[0])
    return offer_ids


def _in_sight(target: Locator) -> bool:
    """Nothing fixed on screen (a toast, a sheet, the tab bar) covers the middle of `target`."""
    return target.evaluate(
        "el => { const r = el.getBoundingClientRect();"
        " return el.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2)); }"
    )


def _device(page: Page) -> dict:
    return page.evaluate("() => ({ vibrate: window.__device.vibrate, tones: window.__device.tones })")


def test_a_new_driver_signs_up_takes_a_slot_checks_in_gets_an_offer_delivers_and_reports_a_problem(
    shift, phone, desktop_page, force_login, shot, fits_width, htmx_settled, settings
):
    store, slot, push_service = shift["store"], shift["slot"], shift["push_service"]
    page, browser_keys = phone

    # --- 1. Sign up, then ops clear the background check ---------------------------------------
    driver = _sign_up(page, shift["zone"], shot)
    assert driver.status == Driver.Status.SCREENING
    ops = UserFactory(email="ops-walk@example.test", is_staff=True, is_superuser=True)
    screening_record_result(case=ScreeningCase.objects.get(driver=driver), result="clear", actor=ops)
    driver.refresh_from_db()
    assert driver.status == Driver.Status.ACTIVE

    # --- 2. Slot: sign up from Home; the sheet explains notifications, the browser asks --------
    page.goto("/driver/")
    expect(page.locator("h1")).to_have_text("Hi Sam")
    open_slot = page.locator(f"[data-testid=open-slot][data-slot-id='{slot.pk}']")
    expect(open_slot).to_contain_text("Green Hills Market")
    fits_width(page)
    shot(page, "home: open slot")
    open_slot.get_by_test_id("slot-claim").click()
    sheet = page.get_by_test_id("push-prompt")
    expect(sheet).to_be_visible()
    expect(page.locator("#toast")).to_have_text("You have a seat in this slot.")
    assert _in_sight(page.locator("#toast")), "the sheet hides that the slot was taken"
    expect(sheet).to_contain_text("Offers last only a minute or two")
    assert page.evaluate("() => window.__permission.asked") == 0  # the sheet first, then the browser
    shot(page, "slot taken: notifications sheet", full_page=False)
    with page.expect_response("**/driver/push/subscribe/") as subscribed:
        page.get_by_test_id("push-allow").click()
    assert subscribed.value.status == 201
    expect(sheet).to_be_hidden()
    expect(page.locator("#toast")).to_have_text("Offer notifications are on.")
    assert PushSubscription.objects.get(driver=driver).endpoint == push_service.url(PUSH_PATH)

    # --- 3. Check in at the store (the phone is in its parking lot) ------------------------------
    my_slot = page.get_by_test_id("my-slot")
    my_slot.get_by_test_id("slot-check-in").click()
    expect(my_slot).to_contain_text("Checked in")
    expect(page.get_by_test_id("slot-check-in")).to_have_count(0)
    fits_width(page)
    shot(top_offer(page), "slot checked in")
    assert SlotClaim.objects.get(driver=driver, slot=slot).status == SlotClaim.Status.CHECKED_IN

    # --- 4. Online; an offer arrives on the open app, and as a push ------------------------------
    page.get_by_test_id("go-online").click()
    expect(page.get_by_test_id("duty-pill")).to_have_text("Online")
    assert page.evaluate("() => window.__permission.asked") == 1  # granted once: not asked again
    page.get_by_test_id("tab-offers").click()
    expect(page.get_by_test_id("no-offers")).to_be_visible()
    assert _device(page) == {"vibrate": [], "tones": []}

    broker, queue = _broker_queue()
    queued_before = broker.llen(queue)
    orders = make_orders(store, prefix="WALK")
    batch = published_batch(store, orders)
    assert rounds.dispatch_advance(batch_id=batch.pk) == Batch.Stage.SLOT
    offer = Offer.objects.select_related("pay").get(batch=batch, driver=driver)
    card = page.locator(f"#offer-{offer.pk}")
    expect(card).to_be_visible(timeout=15_000)  # the list refreshes itself every 5 s
    page.wait_for_function("() => window.__device.vibrate.length > 0")
    assert _device(page) == {"vibrate": [[250, 120, 250]], "tones": [880, 1320]}
    expect(page.locator("#toast")).to_have_text("New offer below.")
    assert _in_sight(card.get_by_test_id("offer-accept")), "the toast covers Accept"
    expect(card.get_by_test_id("offer-pay")).to_have_text(format_cents(offer.pay.total_cents))
    shot(top_offer(page), "offer arrived", full_page=False)

    # The push: queued by dispatch, sent by our sender (run here as the worker would run it).
    assert _pushes_queued_since(queued_before) == [offer.pk]
    assert send_offer_push_task.apply(args=(offer.pk,)).get() == 1
    [request] = push_service.requests
    assert request["path"] == PUSH_PATH and request["headers"]["urgency"] == "high"
    notification = browser_keys.decrypt(request["body"])
    assert (notification["offer_id"], notification["url"]) == (offer.pk, "/driver/offers/")
    assert notification["title"] == f"New offer: {format_cents(offer.pay.total_cents)}"

    card.get_by_test_id("offer-accept").click()
    expect(page).to_have_url(re.compile(r"/driver/batch/$"))

    # --- 5. Deliver: check in for the batch, handoff, each stop with a photo, complete ----------
    expect(page.locator("h1")).to_have_text("Pick up at Green Hills Market")
    page.get_by_test_id("check-in").click()
    expect(page.get_by_test_id("batch-status")).to_have_attribute("data-phase", "at_store")
    batch.refresh_from_db()
    expect(page.get_by_test_id("pickup-code")).to_have_text(batch.pickup_code)
    fits_width(page)
    shot(top_offer(page), "at the store: pickup code")
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)  # the associate (test_driver_flow_e2e drives it)

    expect(page.locator("h1")).to_have_text("Deliveries", timeout=AUTO_ADVANCE_MS)
    for i, stop in enumerate(live_stops(batch)):
        stop_card = page.locator(f"#stop-{stop.pk}")
        expect(stop_card).to_have_class(re.compile(r"\bcurrent\b"))
        page.context.set_geolocation({"latitude": float(stop.order.lat), "longitude": float(stop.order.lng)})
        stop_card.get_by_test_id("stop-arrive").click()
        expect(stop_card).to_have_attribute("data-stop-status", "arrived")
        stop_card.get_by_test_id("photo-input").set_input_files(upload(f"door-{i + 1}.jpg", jpeg()))
        expect(stop_card.locator("img.photo-preview")).to_be_visible()
        if i == 0:
            shot(top_offer(page), "stop with photo")
        stop_card.get_by_test_id("stop-deliver").click()
        expect(stop_card).to_have_attribute("data-stop-status", "delivered")
        htmx_settled(page)
    page.get_by_test_id("complete-batch").click()
    expect(page.get_by_test_id("last-batch")).to_contain_text("Your batch from Green Hills Market was completed")
    # The pay settles in a task (no worker here): the beat sweep production falls back on.
    assert sweep_unsettled_batches() == 1
    page.reload()
    paid = BatchPay.objects.get(batch=batch).final_cents
    expect(page.get_by_test_id("last-batch-pay")).to_contain_text(f"This batch paid {format_cents(paid)}.")
    fits_width(page)
    shot(top_offer(page), "batch complete: paid")

    # --- 6. Help: report a problem with the batch attached; ops see it in their queue ----------
    page.get_by_test_id("menu-help").click()
    expect(page.locator("h1")).to_have_text("Report a problem")
    page.get_by_label("A store").check()
    page.locator("select[name=batch]").select_option(str(batch.pk))
    page.locator("textarea[name=text]").fill("The pickup desk had no totes ready; I waited 20 minutes.")
    fits_width(page)
    shot(top_offer(page), "help form")
    page.get_by_test_id("help-submit").click()
    expect(page.locator("#messages")).to_contain_text("Sent. Ops see your report in their queue")
    report = page.get_by_test_id("help-report")
    expect(report).to_contain_text("Waiting for ops")
    expect(report).to_contain_text(f"Batch {batch.pk} · Green Hills Market")
    shot(top_offer(page), "help sent")

    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = [ops.email]
    force_login(desktop_page, ops)
    desktop_page.goto("/admin/orders/supportrequest/?status__exact=open")
    row = desktop_page.locator("#result_list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("The pickup desk had no totes ready")
    expect(row).to_contain_text(f"Batch {batch.pk}")
    shot(desktop_page, "ops queue")
    filed = SupportRequest.objects.get()
    assert (filed.batch_id, filed.status) == (batch.pk, "open")
