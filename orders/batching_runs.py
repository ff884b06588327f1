"""Auto-batching runs: queue a run for a store's window, solve it (orders.batching) into draft
batches the associate edits, and the beat sweep for runs whose task never reached a worker."""

import logging
from datetime import timedelta

from django.utils import timezone

from spark.celery import queue_on_commit
from spark.errors import DomainError

from .batch_editing import batch_create
from .batching import MAX_SOLVE_SECONDS, propose_batches
from .models import BatchingRun, Order

logger = logging.getLogger(__name__)


def batching_run_start(*, store, window_from, window_to, actor=None, time_limit_seconds: int = int(MAX_SOLVE_SECONDS)):
    """Queue an auto-batching job for the store's received orders in the window. The solver
    stops once its plan stops improving; `time_limit_seconds` caps it."""
    from .tasks import run_auto_batching

    if window_to <= window_from:
        raise DomainError("The window must end after it starts.", code="bad_window")
    run = BatchingRun.objects.create(
        store=store,
        window_from=window_from,
        window_to=window_to,
        created_by=actor,
        time_limit_seconds=time_limit_seconds,
    )
    queue_on_commit(run_auto_batching, run.pk)
    return run


def batching_run_execute(*, run_id: int) -> bool:
    """Solve and turn the proposal into draft batches the associate can edit, discard or
    publish. Runs once: only the caller that moves the run from queued to running works."""
    if not BatchingRun.objects.filter(pk=run_id, status=BatchingRun.Status.QUEUED).update(
        status=BatchingRun.Status.RUNNING, started_at=timezone.now()
    ):
        return False
    run = BatchingRun.objects.select_related("store").get(pk=run_id)
    store = run.store
    try:
        orders = list(
            Order.objects.filter(
                store=store,
                status=Order.Status.RECEIVED,
                window_start__lt=run.window_to,
                window_end__gt=run.window_from,
            ).order_by("window_start", "pk")
        )
        proposal = propose_batches(
            store=store,
            orders=orders,
            max_totes=store.batch_max_totes,
            max_stops=store.batch_max_stops,
            time_limit_s=run.time_limit_seconds,
        )
        by_id = {o.pk: o for o in orders}
        made = sum(_trip_create(run=run, orders=[by_id[i] for i in p.order_ids]) for p in proposal.batches)
        BatchingRun.objects.filter(pk=run.pk).update(
            status=BatchingRun.Status.DONE,
            finished_at=timezone.now(),
            orders_considered=len(orders),
            batches_proposed=made,
            # Only orders that cannot be served even alone: the page lists them as such.
            unassigned_order_ids=proposal.unassigned,
            total_meters=proposal.distance_m,
        )
    except Exception as exc:  # the associate must see a failed run, not a spinner forever
        BatchingRun.objects.filter(pk=run.pk).update(
            status=BatchingRun.Status.FAILED, finished_at=timezone.now(), error=str(exc)[:2000]
        )
        raise
    return True


def _trip_create(*, run: BatchingRun, orders: list[Order]) -> int:
    """Make one proposed trip a draft batch; returns how many batches it made. When an order of
    it was batched by hand meanwhile, the trip cannot be made as proposed: each of its orders
    still waiting gets a trip of its own (every proposed order can be served alone), so none
    is left out or reported as unservable."""
    try:
        batch_create(store=run.store, orders=orders, actor=run.created_by, batching_run=run)
        return 1
    except DomainError:
        pass
    made = 0
    for order in Order.objects.filter(pk__in=[o.pk for o in orders], status=Order.Status.RECEIVED):
        try:
            batch_create(store=run.store, orders=[order], actor=run.created_by, batching_run=run)
            made += 1
        except DomainError:  # taken by hand this very moment too
            pass
    return made


def batching_runs_execute_stalled(*, older_than_seconds: int = 60, limit: int = 3) -> int:
    """Beat safety net behind run_auto_batching (DESIGN rule 3): a run still queued this long
    after it was started lost its task (the broker was down when it was queued), so the sweeper
    runs it here. A run runs once whoever gets there first (batching_run_execute)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stalled = (
        BatchingRun.objects.filter(status=BatchingRun.Status.QUEUED, created_at__lte=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    done = 0
    for run_id in list(stalled):
        try:
            done += batching_run_execute(run_id=run_id)
        except Exception:  # recorded on the run as failed; the next run still gets its turn
            logger.exception("auto-batching run %s failed", run_id)
    return done
