"""What a board claim asks the shared cache before PostgreSQL, in one round trip.

Two things, both kept in the default cache (Redis in production, shared by every web process):

- Attempts: each driver's claim attempts are counted in a fixed one-minute window; past the
  zone's claim_rate_per_minute the API answers 429 with the seconds left in the minute.
- Taken markers: the winning claim leaves one right after its transaction commits, so the
  claims that follow are refused (409) without reading PostgreSQL - in a storm most claims
  are for a batch somebody already has. The database stays the judge: a marker only ever
  refuses, a missing marker (or a cache that is down) takes the normal path, and a batch put
  back on offer drops its marker as soon as that commit lands (orders.transitions.batch_set_status).
  The marker records the zone, so a driver of another zone still gets the 404 the database
  path gives, and the holder, so the holder's retry still gets the batch back. The one window:
  a batch un-assigned and re-published between the winner's COMMIT and its marker write (the
  next statement of the same thread) would keep a stale marker; TAKEN_TTL_SECONDS bounds that.

On Django's Redis cache backend both are read in one pipelined round trip with redis-py
(a claim is the hottest request in a storm; three cache calls cost three round trips). On any
other backend (LocMem in development and tests) the same rules run through the cache API.
A cache that is down never fails a claim: attempts are not counted and markers are not read.
"""

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

TAKEN_TTL_SECONDS = 120
WINDOW_SECONDS = 60
_REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"


@dataclass(frozen=True)
class TakenMarker:
    """Who took a batch, as its taken marker records it."""

    zone_id: int
    driver_id: int  # the holder


@dataclass(frozen=True)
class Gate:
    attempts: int  # this driver's claim attempts in the current window, this one included
    retry_after: int  # seconds until the window is over
    taken_by: TakenMarker | None  # if the batch is known to be taken


def _taken_key(batch_id: int) -> str:
    return f"spark:batch-taken:{batch_id}"


def _attempts_key(driver_id: int, window: int) -> str:
    return f"spark:claim-attempts:{driver_id}:{window}"


def _encode(zone_id: int, driver_id: int) -> str:
    return f"{zone_id}:{driver_id}"


def _decode(value) -> TakenMarker | None:
    if isinstance(value, bytes):
        value = value.decode()
    try:
        zone_id, driver_id = value.split(":")
        return TakenMarker(zone_id=int(zone_id), driver_id=int(driver_id))
    except (AttributeError, ValueError):  # not ours: ignore it, the database answers
        return None


_clients: dict[str, object] = {}


def _redis():
    """A redis-py client on the default cache's Redis, or None when the cache is not Redis.
    Created lazily (after gunicorn/Celery fork) and kept per URL."""
    config = settings.CACHES.get("default", {})
    if config.get("BACKEND") != _REDIS_BACKEND:
        return None
    location = config.get("LOCATION")
    url = location[0] if isinstance(location, list | tuple) else location
    if not isinstance(url, str):  # a Redis cache without a URL is not one we can reach
        return None
    if url not in _clients:
        import redis

        _clients[url] = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    return _clients[url]


def claim_attempt(*, driver_id: int, batch_id: int) -> Gate:
    """Count one claim attempt by the driver and read the batch's taken marker."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    retry_after = max(1, int(WINDOW_SECONDS - now % WINDOW_SECONDS))
    attempts_key, taken_key = _attempts_key(driver_id, window), _taken_key(batch_id)
    try:
        client = _redis()
        if client is not None:
            # MULTI/EXEC: the counter is created with its expiry and incremented atomically.
            pipe = client.pipeline(transaction=True)
            pipe.set(attempts_key, 0, ex=WINDOW_SECONDS, nx=True)
            pipe.incr(attempts_key)
            pipe.get(taken_key)
            _, attempts, marker = pipe.execute()
        else:
            cache.add(attempts_key, 0, WINDOW_SECONDS)
            try:
                attempts = cache.incr(attempts_key)
            except ValueError:  # expired between the two calls
                cache.set(attempts_key, 1, WINDOW_SECONDS)
                attempts = 1
            marker = cache.get(taken_key)
    except Exception:  # the cache is an optimisation and a brake, never a failure
        logger.warning("cache unavailable for the claim gate (driver %s, batch %s)", driver_id, batch_id, exc_info=True)
        return Gate(attempts=0, retry_after=retry_after, taken_by=None)
    return Gate(attempts=int(attempts), retry_after=retry_after, taken_by=_decode(marker))


def taken_by(batch_id: int) -> TakenMarker | None:
    """The batch's taken marker (zone, holder) if it is known to be taken, else None."""
    try:
        client = _redis()
        value = client.get(_taken_key(batch_id)) if client is not None else cache.get(_taken_key(batch_id))
    except Exception:
        logger.warning("cache unavailable reading the taken marker of batch %s", batch_id, exc_info=True)
        return None
    return _decode(value)


def remember_taken(batch_id: int, *, zone_id: int, driver_id: int) -> None:
    """Call after the assignment has committed (transaction.on_commit)."""
    try:
        client = _redis()
        if client is not None:
            client.set(_taken_key(batch_id), _encode(zone_id, driver_id), ex=TAKEN_TTL_SECONDS)
        else:
            cache.set(_taken_key(batch_id), _encode(zone_id, driver_id), TAKEN_TTL_SECONDS)
    except Exception:
        logger.warning("cache unavailable writing the taken marker of batch %s", batch_id, exc_info=True)


def forget_taken(batch_id: int) -> None:
    """Call after a commit that puts the batch back on offer."""
    try:
        client = _redis()
        if client is not None:
            client.delete(_taken_key(batch_id))
        else:
            cache.delete(_taken_key(batch_id))
    except Exception:
        logger.warning("cache unavailable dropping the taken marker of batch %s", batch_id, exc_info=True)
