"""Shared role fixtures. Tests run on PostgreSQL (spark.settings.test); see README."""

import pytest

from drivers.tests.factories import DriverFactory
from stores.models import StoreMembership
from stores.tests.factories import StoreFactory, StoreMembershipFactory, UserFactory, ZoneFactory
from tests.stripe_standin import StripeStandin


@pytest.fixture
def zone(db):
    """A plain zone (orders/tests and dispatch/tests override it with one ready for dispatch)."""
    return ZoneFactory()


@pytest.fixture
def store(db):
    return StoreFactory()


@pytest.fixture
def other_store(db):
    return StoreFactory()


@pytest.fixture
def associate(store):
    return StoreMembershipFactory(store=store, role=StoreMembership.Role.ASSOCIATE).user


@pytest.fixture
def manager(store):
    return StoreMembershipFactory(store=store, role=StoreMembership.Role.MANAGER).user


@pytest.fixture
def ops_user(db):
    return UserFactory(email="ops@example.test", is_staff=True)


@pytest.fixture
def driver(db):
    return DriverFactory()


@pytest.fixture
def other_driver(db):
    return DriverFactory()


@pytest.fixture
def stripe_standin(settings):
    """Our stand-in for Stripe's API on 127.0.0.1 (tests/stripe_standin), with the Stripe
    backend pointed at it: the real SDK talks HTTP to it, nothing of the SDK is replaced."""
    with StripeStandin() as standin:
        settings.SPARK_PAYMENT_BACKEND = "stripe"
        settings.STRIPE_SECRET_KEY = standin.api_key
        settings.STRIPE_API_BASE = standin.url
        yield standin


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle counters, allauth rate limits and used TOTP codes live in the cache: start
    every test from an empty one."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
