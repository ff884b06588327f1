from datetime import date, timedelta

import factory
from django.utils import timezone

from drivers.models import Driver, Route, SlotClaim
from stores.tests.factories import DeliverySlotFactory, UserFactory, ZoneFactory


class DriverFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Driver

    user = factory.SubFactory(UserFactory, email=factory.Sequence(lambda n: f"driver{n}@example.test"))
    home_zone = factory.SubFactory(ZoneFactory)
    status = Driver.Status.ACTIVE
    phone = "+16155550199"
    birth_date = date(1990, 5, 17)
    vehicle_make = "Toyota"
    vehicle_model = "Corolla"
    vehicle_color = "Blue"
    vehicle_plate = factory.Sequence(lambda n: f"TN{n:05d}")
    license_number = factory.Sequence(lambda n: f"L{n:08d}")
    license_state = "TN"
    license_expires_on = factory.LazyFunction(lambda: date.today() + timedelta(days=365))
    insurance_expires_on = factory.LazyFunction(lambda: date.today() + timedelta(days=180))


class RouteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Route

    driver = factory.SubFactory(DriverFactory)
    zone = factory.SelfAttribute("driver.home_zone")
    origin_lat = "36.150000"
    origin_lng = "-86.800000"
    dest_lat = "36.200000"
    dest_lng = "-86.700000"


class SlotClaimFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SlotClaim

    driver = factory.SubFactory(DriverFactory)
    slot = factory.SubFactory(DeliverySlotFactory)
    release_at = factory.LazyAttribute(lambda o: o.slot.starts_at + timedelta(minutes=15))
    claimed_at = factory.LazyFunction(timezone.now)
