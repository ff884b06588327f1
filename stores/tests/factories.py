from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from accounts.models import User
from stores.models import DeliverySlot, Store, StoreApiKey, StoreMembership, Zone, hash_api_key


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.django.Password("pw-for-tests-1")


class ZoneFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Zone
        django_get_or_create = ("slug",)

    name = "Nashville"
    slug = "nashville"
    timezone = "America/Chicago"
    center_lat = Decimal("36.162700")
    center_lng = Decimal("-86.781600")


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store

    zone = factory.SubFactory(ZoneFactory)
    number = factory.Sequence(lambda n: f"{1000 + n}")
    name = factory.Sequence(lambda n: f"Test Store {n}")
    address_line1 = "100 Main St"
    city = "Nashville"
    state = "TN"
    postal_code = "37203"
    lat = Decimal("36.150000")
    lng = Decimal("-86.790000")


class StoreMembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StoreMembership

    user = factory.SubFactory(UserFactory)
    store = factory.SubFactory(StoreFactory)
    role = StoreMembership.Role.ASSOCIATE


class StoreApiKeyFactory(factory.django.DjangoModelFactory):
    """Pass raw_key=... to know the key; the row keeps only its hash."""

    class Meta:
        model = StoreApiKey
        exclude = ("raw_key",)

    raw_key = factory.Sequence(lambda n: f"test-key-{n:04d}-abcdefghijklmnop")
    store = factory.SubFactory(StoreFactory)
    name = "e-commerce"
    prefix = factory.LazyAttribute(lambda o: o.raw_key[:8])
    key_hash = factory.LazyAttribute(lambda o: hash_api_key(o.raw_key))


class DeliverySlotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeliverySlot

    store = factory.SubFactory(StoreFactory)
    starts_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=2))
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + timedelta(hours=2))
    capacity = 8
