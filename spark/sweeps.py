"""The beat sweepers' shared loop (DESIGN rule 3)."""

from collections.abc import Callable

from django.db import transaction
from django.db.models import QuerySet


def sweep_due(*, due: QuerySet, act: Callable[[int], bool], limit: int, chunk: int = 50) -> int:
    """Call `act(pk)` for the rows of `due` (filtered and ordered by the caller), at most
    `limit`, and return how many it changed. Rows are locked with SKIP LOCKED so two sweepers
    (or a sweeper and countdown tasks) split the work, and every `chunk` rows commit: one long
    transaction would hide early changes until the end and keep countdown tasks waiting."""
    done = seen = 0
    while seen < limit:
        size = min(chunk, limit - seen)
        with transaction.atomic():
            ids = list(due.select_for_update(skip_locked=True).values_list("pk", flat=True)[:size])
            for pk in ids:
                done += bool(act(pk))
        seen += len(ids)
        if len(ids) < size:
            break
    return done
