"""Fixtures shared by the orders test modules. `zone` here is ready for dispatch (rounds of two
drivers, two rounds, a 60 s offer, a 3 s claim pool, a pay policy with incentives); `store` is in it."""

import pytest

from payments.tests.factories import PayPolicyFactory
from stores.tests.factories import StoreFactory, ZoneFactory


@pytest.fixture
def zone(db):
    z = ZoneFactory()
    z.route_round_size, z.route_rounds, z.offer_ttl_seconds, z.claim_pool_seconds = 2, 2, 60, 3
    z.save()
    PayPolicyFactory(zone=z, incentive_step_cents=150, incentive_cap_cents=400)
    return z


@pytest.fixture
def store(zone):
    return StoreFactory(zone=zone)
