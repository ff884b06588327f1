from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from orders.models import Batch, Order, Stop
from stores.tests.factories import StoreFactory


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    store = factory.SubFactory(StoreFactory)
    external_id = factory.Sequence(lambda n: f"EXT-{n:06d}")
    customer_name = factory.Faker("name")
    customer_phone = "+16155550100"
    customer_email = factory.Sequence(lambda n: f"customer{n}@example.test")
    address_line1 = factory.Sequence(lambda n: f"{100 + n} Broadway")
    city = "Nashville"
    state = "TN"
    postal_code = "37203"
    lat = Decimal("36.160000")
    lng = Decimal("-86.780000")
    window_start = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=3))
    window_end = factory.LazyAttribute(lambda o: o.window_start + timedelta(hours=2))
    totes = 3
    weight_lb = Decimal("25.0")
    items_count = 18
    tip_cents = 500


class BatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Batch

    store = factory.SubFactory(StoreFactory)
    status = Batch.Status.DRAFT
    route_meters = 12000
    route_seconds = 1800
    # A batch past draft has at least one live stop (a CHECK); the services keep the count,
    # tests that build rows directly add their stops with StopFactory.
    stops_count = factory.LazyAttribute(lambda o: 0 if o.status in (Batch.Status.DRAFT, Batch.Status.CANCELLED) else 1)


class StopFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Stop

    batch = factory.SubFactory(BatchFactory)
    order = factory.SubFactory(OrderFactory, store=factory.SelfAttribute("..batch.store"))
    sequence = factory.Sequence(lambda n: n + 1)
