"""Plain helpers (builders, constants) shared by this folder's test modules; fixtures live in conftest.py."""

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import ExifTags, Image

from dispatch import rounds
from drivers.models import Driver, Location
from drivers.slot_services import slot_claim
from drivers.tests.factories import DriverFactory
from orders.batch_editing import batch_create, batch_publish
from orders.delivery import batch_check_in, batch_handoff
from orders.models import Batch, Order, Stop, StopEvent
from orders.tests.factories import OrderFactory
from orders.transitions import batch_set_status, order_set_status, stop_set_status
from stores.tests.factories import DeliverySlotFactory, StoreFactory

HOME = (Decimal("36.160000"), Decimal("-86.780000"))  # OrderFactory's coordinates


def stored_files(root) -> list:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def jpeg(name="door.jpg", size=(320, 240), gps=True) -> SimpleUploadedFile:
    """A phone-like JPEG, with EXIF GPS tags unless told otherwise."""
    exif = Image.Exif()
    if gps:
        exif[ExifTags.Base.Make] = "PhoneMaker"
        g = exif.get_ifd(ExifTags.IFD.GPSInfo)
        g[ExifTags.GPS.GPSLatitudeRef], g[ExifTags.GPS.GPSLatitude] = "N", (36.0, 9.0, 36.0)
        g[ExifTags.GPS.GPSLongitudeRef], g[ExifTags.GPS.GPSLongitude] = "W", (86.0, 46.0, 48.0)
    buf = io.BytesIO()
    Image.new("RGB", size, "green").save(buf, "JPEG", exif=exif)
    return SimpleUploadedFile(name, buf.getvalue(), content_type="image/jpeg")


def make_batch(store, driver, *, n=2, alcohol=False, picked_up=True) -> tuple[Batch, list[Stop]]:
    """A batch of `n` stops assigned to `driver`, handed over unless picked_up=False."""
    orders = [
        OrderFactory(store=store, contains_alcohol=alcohol, address_line1=f"{700 + i} Secret Lane") for i in range(n)
    ]
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    batch_set_status(batch=batch, to=Batch.Status.ASSIGNED, updates={"driver": driver})
    if picked_up:
        batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
        batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    batch.refresh_from_db()
    return batch, list(batch.stops.order_by("sequence"))


def snapshot(batch: Batch) -> tuple:
    """Everything a refused action must leave untouched."""
    batch.refresh_from_db()
    stops = list(
        batch.stops.order_by("sequence").values_list(
            "status", "arrived_at", "delivered_at", "proof_photo", "id_photo", "id_checked", "failure_reason"
        )
    )
    orders = list(Order.objects.filter(stops__batch=batch).order_by("pk").values_list("status", flat=True))
    return (
        batch.status,
        batch.closed_at,
        stops,
        orders,
        StopEvent.objects.filter(stop__batch=batch).count(),
        batch.events.count(),
    )


# 12:00 PM in Denver (MDT, UTC-6), 1:00 PM in Chicago (the project's TIME_ZONE): times on the page
# must follow the store's zone, not the server's.
NOW = datetime(2025, 6, 10, 18, 0, tzinfo=UTC)


STORE_AT = (Decimal("39.740000"), Decimal("-104.990000"))


HOMES = [
    (Decimal("39.750000"), Decimal("-104.980000")),
    (Decimal("39.760000"), Decimal("-104.970000")),
    (Decimal("39.770000"), Decimal("-104.960000")),
]


DRIVER_LAST_NAME = "Whitfield"


DRIVER_PHONE = "+17205550142"


DRIVER_PLATE = "SPK4821"


@dataclass
class Trip:
    store: object
    orders: list
    batch: Batch | None = None
    driver: Driver | None = None

    def stop(self, i: int) -> Stop:
        return Stop.objects.exclude(status=Stop.Status.REMOVED).get(order=self.orders[i])


def make_driver(**kwargs) -> Driver:
    return DriverFactory(
        user__first_name="Dana",
        user__last_name=DRIVER_LAST_NAME,
        phone=DRIVER_PHONE,
        vehicle_plate=DRIVER_PLATE,
        vehicle_color="Blue",
        vehicle_make="Toyota",
        vehicle_model="Corolla",
        **kwargs,
    )


def make_trip(zone, *, stops: int = 2, until: str = "picked_up", email: bool = True) -> Trip:
    """A store in `zone` with `stops` orders, taken through the services up to `until`:
    received | batched | published | assigned | picked_up."""
    store = StoreFactory(zone=zone, lat=STORE_AT[0], lng=STORE_AT[1])
    orders = [
        OrderFactory(
            store=store,
            lat=HOMES[i][0],
            lng=HOMES[i][1],
            customer_name=f"Customer{i} Family{i}",
            address_line1=f"{700 + i} Secret Lane",
            customer_email=f"c{i}@example.test" if email else "",
            window_start=NOW + timedelta(hours=3),
            window_end=NOW + timedelta(hours=5),
            tip_cents=650,
        )
        for i in range(stops)
    ]
    trip = Trip(store=store, orders=orders)
    if until == "received":
        return trip
    trip.batch = batch_create(store=store, orders=orders)
    if until == "batched":
        return _refresh(trip)
    batch_publish(batch=trip.batch)
    if until == "published":
        return _refresh(trip)
    trip.driver = make_driver(home_zone=zone)
    batch_set_status(batch=trip.batch, to="assigned", updates={"driver": trip.driver})
    if until == "assigned":
        return _refresh(trip)
    batch_check_in(batch=trip.batch, driver=trip.driver, lat=trip.batch.store.lat, lng=trip.batch.store.lng)
    batch_handoff(batch=trip.batch, pickup_code=trip.batch.pickup_code)
    return _refresh(trip)


def _refresh(trip: Trip) -> Trip:
    for o in trip.orders:
        o.refresh_from_db()
    if trip.batch:
        trip.batch.refresh_from_db()
    return trip


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buf, "JPEG")
    return buf.getvalue()


def arrive(stop: Stop) -> None:
    stop_set_status(stop=stop, to=Stop.Status.ARRIVED, updates={"arrived_at": timezone.now()})


def deliver(stop: Stop, *, photo: bool = True) -> str:
    """Arrive and deliver a stop with a proof photo; its order becomes delivered."""
    if stop.status == Stop.Status.PENDING:
        arrive(stop)
    name = default_storage.save(f"proof/test/stop-{stop.pk}.jpg", ContentFile(jpeg_bytes())) if photo else ""
    stop_set_status(stop=stop, to=Stop.Status.DELIVERED, updates={"delivered_at": timezone.now(), "proof_photo": name})
    order_set_status(order=stop.order, to=Order.Status.DELIVERED, reason="delivered")
    stop.order.refresh_from_db()
    return name


def put_driver_at(driver: Driver, lat, lng, *, age: timedelta = timedelta(0)) -> Location:
    loc, _ = Location.objects.update_or_create(
        driver=driver,
        defaults={"lat": Decimal(str(lat)), "lng": Decimal(str(lng)), "recorded_at": timezone.now() - age},
    )
    return loc


def published_batch(store, n=2, tip=300):
    start = timezone.now() + timedelta(hours=1)
    orders = [
        OrderFactory(
            store=store,
            lat=Decimal("36.155000") + Decimal(i) / 1000,
            lng=Decimal("-86.785000"),
            window_start=start,
            window_end=start + timedelta(hours=2),
            tip_cents=tip,
        )
        for i in range(n)
    ]
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    batch.refresh_from_db()
    return batch


def _to_board(store, zone):
    batch = published_batch(store)
    assert rounds.dispatch_advance(batch_id=batch.pk) == "board"
    batch.refresh_from_db()
    return batch


# --- Time rules (orders/time_rules.py): the clock pinned late in the Central day -----------------

# 22:10 on Dec 2 in the stores' zone (America/Chicago), 04:10 UTC on Dec 3: the local date and the
# UTC date differ (tests that read the clock unpinned have broken at that hour before).
CENTRAL_NIGHT = datetime(2026, 12, 3, 4, 10, tzinfo=UTC)


def order_in_window(store, *, starts_in: int, hours: float = 1, **kw) -> Order:
    """An order whose window opens `starts_in` minutes from now (negative: it has opened)."""
    start = timezone.now() + timedelta(minutes=starts_in)
    return OrderFactory(store=store, window_start=start, window_end=start + timedelta(hours=hours), **kw)


def stop_sequence(batch: Batch) -> list[str]:
    """The external ids of the batch's live stops, in sequence."""
    stops = batch.stops.exclude(status=Stop.Status.REMOVED).order_by("sequence")
    return list(stops.values_list("order__external_id", flat=True))


# 1 m of latitude in degrees (spherical Earth, as spark.geo.haversine_m).
DEG_PER_M = 1 / 111_194.93


def north_of(store, meters: float) -> tuple[Decimal, Decimal]:
    """A phone position `meters` due north of the store."""
    lat = (Decimal(store.lat) + Decimal(str(meters * DEG_PER_M))).quantize(Decimal("0.000001"))
    return lat, Decimal(store.lng)


def slot_seat(store, driver, *, starts_in_minutes: float = 10):
    """The driver's seat (signed up through the service) in a two-hour slot at `store`."""
    starts = timezone.now() + timedelta(minutes=starts_in_minutes)
    slot = DeliverySlotFactory(store=store, starts_at=starts, ends_at=starts + timedelta(hours=2), capacity=4)
    return slot_claim(driver=driver, slot=slot)


# A masked-number provider for tests (settings.SPARK_CONTACT_BACKEND =
# "orders.tests.helpers.recording_proxy"): it records what it was asked and lends a number.
proxy_requests: list = []


def recording_proxy(request):
    from orders.contact import ProxySession

    proxy_requests.append(request)
    return ProxySession(session_id=f"rec-{len(proxy_requests)}", proxy_number="+16155550177")


def make_late(batch) -> None:
    """Its pickup time passed a minute ago (orders.models.batch_is_late)."""
    Batch.objects.filter(pk=batch.pk).update(pickup_by=timezone.now() - timedelta(minutes=1))
