"""Plain helpers (builders, constants) shared by this folder's test modules; fixtures live in conftest.py."""

from decimal import Decimal
from io import BytesIO

from allauth.account.models import EmailAddress
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from drivers.tests.factories import DriverFactory, RouteFactory
from orders.models import Batch
from orders.tests.factories import BatchFactory, StopFactory
from stores.tests.factories import StoreFactory

JOIN = "/driver/join"


def jpeg_bytes(*, size=(80, 60), color=(200, 40, 40), gps: bool = False) -> bytes:
    image = Image.new("RGB", size, color)
    out = BytesIO()
    if gps:
        exif = Image.Exif()
        exif[0x010F] = "PhoneMaker"  # Make
        exif.get_ifd(0x8825).update({1: "N", 2: (36.0, 9.0, 45.0), 3: "W", 4: (86.0, 46.0, 53.0)})  # GPS
        image.save(out, format="JPEG", exif=exif)
    else:
        image.save(out, format="JPEG")
    return out.getvalue()


def upload(name: str, data: bytes, content_type: str = "image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def verified(user):
    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})
    return user


def profile_data(zone, **overrides):
    data = {
        "first_name": "Jane",
        "last_name": "Rivera",
        "phone": "(615) 555-0142",
        "home_zone": zone.pk,
        "photo": upload("me.jpg", jpeg_bytes(gps=True)),
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# Hand-checked geometry. Every point lies on the meridian 86.78 W, so a distance is just
# the latitude difference: 0.01 degree = 6,371,000 m x 0.01 x pi/180 = 1,111.95 m in a
# straight line, x 1.3 road factor (spark.geo.StraightLineGeo) = 1,445.53 m by road; at
# 40 km/h that is 130.1 s.
LNG = Decimal("-86.780000")


O_LAT, D_LAT = Decimal("36.100000"), Decimal("36.200000")  # the driver's trip: 0.10 deg north


KM_2_0 = 2891  # 0.02 deg by road, rounded as spark.geo does


def store_at(lat, **kw):
    return StoreFactory(lat=Decimal(lat), lng=LNG, **kw)


def batch_on_meridian(store, last_lat, *, status=Batch.Status.PUBLISHED, **kw):
    """A one-stop published batch store -> stop -> back, priced like batch_refresh_route does."""
    leg = round(abs(Decimal(last_lat) - store.lat) * 100 * Decimal("1445.534"))
    leg_s = round(leg / (40_000 / 3600))
    batch = BatchFactory(
        store=store,
        status=status,
        route_meters=2 * leg,
        route_seconds=2 * leg_s + 240,
        last_stop_lat=Decimal(last_lat),
        last_stop_lng=LNG,
        stops_count=1,
        published_at=timezone.now(),
        **kw,
    )
    StopFactory(batch=batch, sequence=1, order__lat=Decimal(last_lat), order__lng=LNG)
    return batch


def trip(driver=None, *, k: int, online=True, arrive_by=None, leave_after=None, **kw):
    driver = driver or DriverFactory(is_online=online, online_since=timezone.now() if online else None)
    return RouteFactory(
        driver=driver,
        origin_lat=O_LAT,
        origin_lng=LNG,
        dest_lat=D_LAT,
        dest_lng=LNG,
        max_detour_meters=k,
        arrive_by=arrive_by,
        leave_after=leave_after,
        **kw,
    )
