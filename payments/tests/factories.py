import factory

from payments.models import PayPolicy
from stores.tests.factories import ZoneFactory


class PayPolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PayPolicy
        django_get_or_create = ("zone",)

    zone = factory.SubFactory(ZoneFactory)
