"""Plain helpers shared by the browser tests that drive a delivery (test_driver_flow_e2e.py,
test_money_e2e.py, test_driver_shift_walk_e2e.py): test photos, orders and a published batch, a
slot holder, the top offer, the live stops; and the steps of the driver sign-up funnel
(test_signup_e2e.py). Fixtures stay in conftest.py; no test module imports another."""

import json
import re
from datetime import date, timedelta
from decimal import Decimal
from io import BytesIO

from django.utils import timezone
from PIL import Image
from playwright.sync_api import Page, expect

from drivers.tests.factories import SlotClaimFactory
from orders.batch_editing import batch_create, batch_publish
from orders.models import Batch, Order, Stop
from orders.tests.factories import OrderFactory
from stores.tests.factories import DeliverySlotFactory

# The store is at 36.15, -86.79 (StoreFactory); the phone starts in its parking lot.
AT_STORE = {"latitude": 36.1501, "longitude": -86.7901, "accuracy": 12}


# Two customers north-east of the store, the way the driver is heading.
SPOTS = [(Decimal("36.158000"), Decimal("-86.781000")), (Decimal("36.166000"), Decimal("-86.772000"))]


GPS_IFD = 0x8825


AUTO_ADVANCE_MS = 20_000  # the Batch page polls its status every 5 s, then reloads itself


# What the app asks of the phone, recorded (add_init_script): vibration patterns, tones started,
# audio contexts. The browser's own devices are stubbed; the app's code is not.
DEVICE_STUBS = """
window.__device = { vibrate: [], tones: [], contexts: 0 };
Object.defineProperty(navigator, "vibrate", {
  configurable: true,
  value: function (pattern) { window.__device.vibrate.push(pattern); return true; }
});
function FakeAudioContext() {
  window.__device.contexts += 1;
  this.state = "running"; this.currentTime = 0; this.destination = {};
}
FakeAudioContext.prototype.resume = function () { return Promise.resolve(); };
FakeAudioContext.prototype.createGain = function () { return { gain: { value: 1 }, connect: function () {} }; };
FakeAudioContext.prototype.createOscillator = function () {
  var osc = { type: "", frequency: { value: 0 }, connect: function () {}, stop: function () {} };
  osc.start = function () { window.__device.tones.push(osc.frequency.value); };
  return osc;
};
window.AudioContext = FakeAudioContext;
window.webkitAudioContext = FakeAudioContext;
"""


def notification_stub(answer: str) -> str:
    """Notification's permission starts at "default"; the browser's question is answered
    `answer` ("granted" or "denied"); window.__permission.asked counts the questions."""
    return """
window.__permission = { state: "default", asked: 0 };
Object.defineProperty(Notification, "permission", {
  configurable: true,
  get: function () { return window.__permission.state; }
});
Notification.requestPermission = function () {
  window.__permission.asked += 1;
  window.__permission.state = ANSWER;
  return Promise.resolve(ANSWER);
};
""".replace("ANSWER", json.dumps(answer))


def jpeg(color=(200, 80, 40), size=(1200, 900)) -> bytes:
    """A camera-like JPEG with the phone's GPS position in its EXIF."""
    exif = Image.Exif()
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (36.0, 9.0, 45.0), 3: "W", 4: (86.0, 46.0, 53.0)})
    out = BytesIO()
    Image.new("RGB", size, color).save(out, format="JPEG", exif=exif)
    data = out.getvalue()
    assert Image.open(BytesIO(data)).getexif().get_ifd(GPS_IFD), "the test photo must carry GPS tags"
    return data


def upload(name: str, data: bytes) -> dict:
    return {"name": name, "mimeType": "image/jpeg", "buffer": data}


def make_orders(store, *, alcohol=(False, False), prefix="WEB") -> list[Order]:
    start = timezone.now() + timedelta(minutes=50)
    return [
        OrderFactory(
            store=store,
            external_id=f"{prefix}-{i + 1}",
            lat=lat,
            lng=lng,
            window_start=start,
            window_end=start + timedelta(hours=2),
            address_line1=f"{710 + i} Hidden Hollow Ln",
            customer_name=f"Customer {prefix} {i + 1}",
            contains_alcohol=alcohol[i],
            totes=2 + i,
        )
        for i, (lat, lng) in enumerate(SPOTS)
    ]


def published_batch(store, orders) -> Batch:
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    batch.refresh_from_db()
    return batch


def live_stops(batch) -> list[Stop]:
    return list(
        Stop.objects.filter(batch=batch)
        .exclude(status=Stop.Status.REMOVED)
        .select_related("order")
        .order_by("sequence")
    )


def top_offer(page: Page) -> Page:
    """Back to the top before a full-page shot: the sticky app bar is drawn where the phone had
    scrolled to. After a reload (the app reloads itself) the browser restores the old scroll
    position once the page has loaded, so wait for that first."""
    page.wait_for_load_state("load")
    page.wait_for_function("() => { window.scrollTo(0, 0); return window.scrollY === 0; }")
    return page


def slot_holder(store, driver) -> None:
    """Make `driver` hold a seat in a slot of `store` running now: dispatch offers to them first."""
    now = timezone.now()
    slot = DeliverySlotFactory(store=store, starts_at=now - timedelta(minutes=10), ends_at=now + timedelta(hours=2))
    SlotClaimFactory(driver=driver, slot=slot)


# --- The sign-up funnel (/driver/join/...) -------------------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def born_years_ago(years: int) -> date:
    """A date of birth that makes someone `years` old today (a little past the birthday)."""
    today = date.today() - timedelta(days=3)
    return today.replace(year=today.year - years, day=min(today.day, 28))


def fill_birth_date(page: Page, born: date) -> None:
    expect(page).to_have_url(re.compile(r"/driver/join/age/$"))
    page.fill("input[name=birth_date]", born.isoformat())
    page.locator("#age-form button[type=submit]").click()


def fill_profile(page: Page, zone, *, first: str, last: str, phone: str) -> None:
    """Step 1, with a photo taken on the phone (GPS in its EXIF); not submitted."""
    page.fill("input[name=first_name]", first)
    page.fill("input[name=last_name]", last)
    page.fill("input[name=phone]", phone)
    page.select_option("select[name=home_zone]", str(zone.pk))
    page.set_input_files("input[name=photo]", files=[upload("selfie.jpg", jpeg((30, 120, 200), (120, 160)))])


def fill_vehicle(page: Page) -> None:
    """Step 3: a silver Honda CR-V; not submitted."""
    expect(page).to_have_url(re.compile(r"/driver/join/vehicle/$"))
    page.select_option("select[name=vehicle_type]", "suv")
    page.fill("input[name=make]", "Honda")
    page.fill("input[name=model]", "CR-V")
    page.fill("input[name=color]", "Silver")
    page.fill("input[name=plate]", "tn-4821")
    page.fill("input[name=tote_capacity]", "24")


def fill_documents(page: Page, *, insurance_expires_on: date) -> None:
    """Step 4: license and insurance with their files; not submitted."""
    expect(page).to_have_url(re.compile(r"/driver/join/documents/$"))
    page.fill("input[name=license_number]", "123456789")
    page.select_option("select[name=license_state]", "TN")
    page.fill("input[name=license_expires_on]", (date.today() + timedelta(days=1000)).isoformat())
    page.fill("input[name=insurance_expires_on]", insurance_expires_on.isoformat())
    page.set_input_files(
        "input[name=license_document]", files=[upload("license.jpg", jpeg((220, 200, 120), (320, 200)))]
    )
    page.set_input_files(
        "input[name=insurance_document]",
        files=[{"name": "insurance.pdf", "mimeType": "application/pdf", "buffer": PDF}],
    )


def sign_consent(page: Page, signature: str) -> None:
    """Step 6's authorization, after the disclosure; not submitted."""
    page.locator("#to-authorization").click()
    expect(page).to_have_url(re.compile(r"/driver/join/background-check/authorize/$"))
    page.locator("input[name=agree]").check()
    page.fill("input[name=signature]", signature)


def submit_application(page: Page) -> None:
    """Step 7: certify and submit; the status page says the application is under review."""
    expect(page).to_have_url(re.compile(r"/driver/join/review/$"))
    expect(page.locator("#checklist li.todo")).to_have_count(0)
    page.locator("input[name=certify]").check()
    page.get_by_role("button", name="Submit my application").click()
    expect(page).to_have_url(re.compile(r"/driver/join/status/$"))
    expect(page.locator("#status .state")).to_have_text("Application under review — we will email you")
