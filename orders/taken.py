"""Markers in the shared cache for batches taken from the board.

In a claim storm most claims are for a batch somebody already has. The winning claim leaves a
marker right after its transaction commits, so the claims that follow are refused (409) from
the cache (Redis in production, shared by every web process) without reading PostgreSQL.

The database stays the judge: a marker only ever refuses, a missing marker (or a cache that
is down) takes the normal path, and a batch put back on offer drops its marker as soon as that
commit lands (orders.services.batch_set_status). The marker records the zone, so a driver of
another zone still gets the 404 the database path gives, and the holder, so the holder's retry
still gets the batch back.

The one window: a batch un-assigned and re-published between the winner's COMMIT and its
marker write (the next statement of the same thread) would keep a stale marker; the TTL
bounds that to TTL_SECONDS.
"""

import logging

from django.core.cache import cache

logger = logging.getLogger(__name__)

TTL_SECONDS = 120


def _key(batch_id: int) -> str:
    return f"spark:batch-taken:{batch_id}"


def taken_by(batch_id: int) -> tuple[int, int] | None:
    """(zone id, holder's driver id) if the batch is known to be taken, else None."""
    try:
        value = cache.get(_key(batch_id))
    except Exception:  # noqa: BLE001 - the cache is an optimisation; the database answers
        logger.warning("cache unavailable reading the taken marker of batch %s", batch_id, exc_info=True)
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    return None


def remember(batch_id: int, *, zone_id: int, driver_id: int) -> None:
    """Call after the assignment has committed (transaction.on_commit)."""
    try:
        cache.set(_key(batch_id), (zone_id, driver_id), TTL_SECONDS)
    except Exception:  # noqa: BLE001
        logger.warning("cache unavailable writing the taken marker of batch %s", batch_id, exc_info=True)


def forget(batch_id: int) -> None:
    """Call after a commit that puts the batch back on offer."""
    try:
        cache.delete(_key(batch_id))
    except Exception:  # noqa: BLE001
        logger.warning("cache unavailable dropping the taken marker of batch %s", batch_id, exc_info=True)
