"""Plain helpers shared by the browser tests that drive a delivery (test_driver_flow_e2e.py,
test_money_e2e.py): test photos, orders and a published batch, a slot holder, the top offer,
the live stops. Fixtures stay in conftest.py; no test module imports another."""

from datetime import timedelta
from decimal import Decimal
from io import BytesIO

from django.utils import timezone
from PIL import Image
from playwright.sync_api import Page

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
