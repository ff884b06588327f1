"""How often a driver's phone may report its position, counted in the default cache (Redis in
production, shared by every web process; the same cache as dispatch.claim_gate).

- Stored: at most one ping per driver every SPARK_LOCATION_MIN_INTERVAL_SECONDS. The ping that
  stores sets a marker that expires after the interval; a ping that finds the marker is
  answered with the stored position and not written (a phone whose GPS fires every second, two
  open tabs). Where the driver is, to within a few seconds, is all the product needs.
- Cap: at most SPARK_LOCATION_MAX_PER_MINUTE pings per driver in a fixed one-minute window;
  past it the API answers 429 with the seconds left in the minute. The app sends one every 15 s.
A cache that is down never fails a ping: it is not counted and it is stored.
"""

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


def _pings_key(driver_id: int, window: int) -> str:
    return f"spark:location-pings:{driver_id}:{window}"


def _stored_key(driver_id: int) -> str:
    return f"spark:location-stored:{driver_id}"


def over_cap(*, driver_id: int) -> int | None:
    """Count one ping. Returns the seconds until the window is over when the driver is past the
    cap, else None."""
    cap = settings.SPARK_LOCATION_MAX_PER_MINUTE
    if cap <= 0:
        return None
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    key = _pings_key(driver_id, window)
    try:
        cache.add(key, 0, WINDOW_SECONDS + 5)
        try:
            pings = cache.incr(key)
        except ValueError:  # expired between the two calls
            cache.set(key, 1, WINDOW_SECONDS + 5)
            pings = 1
    except Exception:  # the cache is a brake, never a failure
        logger.warning("cache unavailable counting location pings of driver %s", driver_id, exc_info=True)
        return None
    if pings > cap:
        return max(1, math.ceil((window + 1) * WINDOW_SECONDS - now))
    return None


def may_store(*, driver_id: int) -> bool:
    """Whether this ping may be written: none was in the last SPARK_LOCATION_MIN_INTERVAL_SECONDS.
    Takes the interval's one write (cache.add is atomic: of two pings at once, one writes)."""
    interval = settings.SPARK_LOCATION_MIN_INTERVAL_SECONDS
    if interval <= 0:
        return True
    try:
        return bool(cache.add(_stored_key(driver_id), 1, interval))
    except Exception:
        logger.warning("cache unavailable for the location interval of driver %s", driver_id, exc_info=True)
        return True
