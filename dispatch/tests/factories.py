from datetime import timedelta

import factory
from django.utils import timezone

from dispatch.models import Offer
from orders.tests.factories import BatchFactory


class OfferFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Offer

    batch = factory.SubFactory(BatchFactory)
    driver = factory.SubFactory("drivers.tests.factories.DriverFactory")
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(seconds=60))
