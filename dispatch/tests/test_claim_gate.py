"""The claim gate on both cache backends it runs on: Redis (production) and LocMem (dev, tests)."""

from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from dispatch import claim_gate
from drivers.tests.factories import DriverFactory
from orders.models import Batch
from orders.tests.helpers import _to_board

API = "/api/v1/driver"


@pytest.fixture(params=["locmem", "redis"])
def gate_cache(request, settings):
    if request.param == "redis":
        url = urlparse(settings.REDIS_URL)._replace(path="/14").geturl()  # a db of its own
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}
    else:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
    yield request.param
    cache.clear()


def test_attempts_are_counted_per_driver_in_a_minute(gate_cache):
    gates = [claim_gate.claim_attempt(driver_id=7, batch_id=1) for _ in range(3)]
    assert [g.attempts for g in gates] == [1, 2, 3]
    assert all(1 <= g.retry_after <= 60 for g in gates)
    assert claim_gate.claim_attempt(driver_id=8, batch_id=1).attempts == 1  # another driver's count


def test_taken_marker_is_read_with_the_attempt_and_dropped(gate_cache):
    assert claim_gate.claim_attempt(driver_id=7, batch_id=42).taken_by is None
    claim_gate.remember_taken(42, zone_id=3, driver_id=9)
    assert claim_gate.claim_attempt(driver_id=7, batch_id=42).taken_by == claim_gate.TakenMarker(zone_id=3, driver_id=9)
    assert claim_gate.taken_by(42) == claim_gate.TakenMarker(zone_id=3, driver_id=9)
    claim_gate.forget_taken(42)
    assert claim_gate.taken_by(42) is None


def test_a_cache_that_is_down_never_fails_a_claim(settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }  # nothing listens there
    gate = claim_gate.claim_attempt(driver_id=7, batch_id=42)
    assert gate.attempts == 0 and gate.taken_by is None
    claim_gate.remember_taken(42, zone_id=3, driver_id=9)  # logged, not raised
    claim_gate.forget_taken(42)


def _api(driver):
    client = APIClient()
    client.force_authenticate(driver.user)
    return client


def test_storm_losers_are_refused_from_the_marker(
    gate_cache, store, zone, django_capture_on_commit_callbacks, django_assert_num_queries
):
    batch = _to_board(store, zone)
    Batch.objects.filter(pk=batch.pk).update(board_at=timezone.now() - timedelta(seconds=10))
    winner, loser = DriverFactory(home_zone=zone, is_online=True), DriverFactory(home_zone=zone, is_online=True)
    with django_capture_on_commit_callbacks(execute=True):
        res = _api(winner).post(f"{API}/batches/{batch.pk}/claim/")
    assert res.status_code == 200 and res.json()["status"] == "assigned"
    client = _api(loser)
    with django_assert_num_queries(1):  # the caller's own driver row; the batch is not read
        res = client.post(f"{API}/batches/{batch.pk}/claim/")
    assert res.status_code == 409 and res.json()["code"] == "batch_taken"
    # The holder's retry still gets the batch back, from the database.
    assert _api(winner).post(f"{API}/batches/{batch.pk}/claim/").json()["status"] == "assigned"


def test_claims_past_the_zone_rate_get_429_with_retry_after(gate_cache, store, zone):
    zone.claim_rate_per_minute = 2
    zone.save()
    client = _api(DriverFactory(home_zone=zone, is_online=True))
    codes = [client.post(f"{API}/batches/999999/claim/").status_code for _ in range(3)]
    assert codes == [404, 404, 429]
    res = client.post(f"{API}/batches/999999/claim/")
    assert res.status_code == 429 and res.json()["code"] == "throttled"
    assert 1 <= int(res["Retry-After"]) <= 60
