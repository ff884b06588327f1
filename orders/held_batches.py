"""The batch a driver holds when they can no longer act on it: what becomes of it.

A driver taken off work (suspended or deactivated, by ops, the document watch or screening)
goes through drivers.services.driver_set_status, which reaches this module through
spark.hooks (installed in orders/handlers.py): held_batch_plan locks the batch and checks the
decision before the driver's transition, held_batch_apply carries it out after it, in the same
transaction. The beat sweep (orders.tasks.sweep_stranded_batches) catches any batch left with
a driver who cannot act on it.
"""

from functools import partial
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from drivers.models import Driver
from drivers.selectors import driver_work_refusal
from spark import hooks
from spark.errors import DomainError
from stores.models import Zone

from .batch_editing import batch_let_driver_finish
from .models import Batch

# What becomes of the batch a driver holds when they can no longer act on it (suspended or
# deactivated, by ops, the document watch or screening):
#   finish   - they may still finish that batch, and only it (Batch.finish_first_at); the
#              suspension itself is recorded now, so they get no new work anywhere;
#   dispatch - the batch goes back to dispatch, offered again from round 1; they are paid
#              for the trip (dispatch.services.batch_release_to_dispatch, through spark.hooks).
# A picked-up (or returning) batch always stays with its driver to finish: the groceries are
# in their car. Before pickup, the default is back to dispatch; ops choose in the admin.
HELD_BATCH_FINISH = "finish"
HELD_BATCH_DISPATCH = "dispatch"
HELD_BATCH_DECISIONS = (HELD_BATCH_FINISH, HELD_BATCH_DISPATCH)
_HELD_BATCH_LOCKED_IN = (Batch.Status.PICKED_UP, Batch.Status.RETURNING)
# What the store and the batch's events say; the driver's reason stays between them and ops.
_HELD_BATCH_REASON = "the driver can no longer take it"


def held_batch_of(driver: Driver) -> Batch | None:
    """The batch the driver holds now (at most one: one_active_batch_per_driver)."""
    return Batch.objects.filter(driver=driver, status__in=Batch.ACTIVE_STATUSES).select_related("store").first()


def held_batch_choices(batch: Batch) -> tuple[str, ...]:
    """What ops may choose for `batch`: only "finish" once it is picked up."""
    return (HELD_BATCH_FINISH,) if batch.status in _HELD_BATCH_LOCKED_IN else HELD_BATCH_DECISIONS


def held_batch_default(batch: Batch) -> str:
    return HELD_BATCH_FINISH if batch.status in _HELD_BATCH_LOCKED_IN else HELD_BATCH_DISPATCH


def _held_batch_apply(*, batch: Batch, decision: str, actor=None) -> None:
    if decision == HELD_BATCH_FINISH:
        batch_let_driver_finish(batch=batch, actor=actor)
    else:
        hooks.held_batch_to_dispatch(batch=batch, actor=actor, reason=_HELD_BATCH_REASON)


def held_batch_plan(*, driver: Driver, to: str, decision: str | None) -> hooks.HeldBatchPlan | None:
    """spark.hooks.held_batch_plan, for driver_set_status, in its transaction after it locked the
    driver's row (the driver row, then their batch: the order the contractor module locks them
    in too). `decision` ("finish" or "dispatch", see HELD_BATCH_*; None takes the default:
    finish once picked up, else back to dispatch) is checked whatever `to` is. A driver who
    stops being active while holding a batch gets a plan for it; None otherwise."""
    if decision is not None and decision not in HELD_BATCH_DECISIONS:
        raise DomainError(
            f"Choose what happens to the driver's batch: {' or '.join(HELD_BATCH_DECISIONS)}.",
            code="bad_batch_decision",
        )
    if to == Driver.Status.ACTIVE:
        return None
    held = Batch.objects.select_for_update().filter(driver=driver, status__in=Batch.ACTIVE_STATUSES).first()
    if held is None:
        return None
    decision = decision or held_batch_default(held)
    if decision not in held_batch_choices(held):
        raise DomainError(
            f"Batch {held.pk} is picked up already (the groceries are in the driver's car): they finish it.",
            code="batch_picked_up",
        )
    done = "may finish it first" if decision == HELD_BATCH_FINISH else "sent back to dispatch"
    return hooks.HeldBatchPlan(batch=held, decision=decision, summary=f"held batch {held.pk}: {done}")


def held_batch_apply(*, plan: hooks.HeldBatchPlan, actor=None) -> None:
    """spark.hooks.held_batch_apply: carry out the plan once the driver's transition changed
    their status (a repeat changes nothing, the batch included)."""
    _held_batch_apply(batch=plan.batch, decision=plan.decision, actor=actor)


def stranded_batch_release(*, batch_id: int) -> bool:
    """A batch whose driver can no longer act on it (not active, or documents expired) and was
    not let finish it: the default decision (back to dispatch, or finish once picked up) and
    an email to ops. Idempotent; returns whether it acted."""
    from django.core.mail import send_mail

    from accounts.models import User

    with transaction.atomic():
        batch = (
            Batch.objects.select_for_update(of=("self",))
            .select_related("driver__home_zone", "driver__user", "store")
            .filter(pk=batch_id)
            .first()
        )
        if batch is None or batch.driver is None or batch.status not in Batch.ACTIVE_STATUSES or batch.finish_first_at:
            return False
        why = driver_work_refusal(batch.driver)
        if why is None:
            return False
        driver, decision = batch.driver, held_batch_default(batch)
        _held_batch_apply(batch=batch, decision=decision, actor=None)
        if decision == HELD_BATCH_DISPATCH:
            done, detail = "sent back to dispatch", "offered again from round 1; the trip is paid"
        else:
            done, detail = "left with the driver to finish", "it is picked up: the groceries are in their car"
        subject = f"Spark: batch {batch.pk} at store #{batch.store.number} {done}"
        body = (
            f"Batch {batch.pk} was held by driver {driver.pk} ({driver.user.email}), who can no "
            f"longer act on it: {why}\nIt was {done} ({detail}).\nNo one had decided what becomes of it when "
            "the driver was taken off work; check the driver's events."
        )
        ops = sorted(User.objects.filter(is_staff=True, is_active=True).values_list("email", flat=True))
        if ops:
            transaction.on_commit(
                partial(send_mail, subject, body, settings.DEFAULT_FROM_EMAIL, ops, fail_silently=True)
            )
    return True


def stranded_batches_release(*, limit: int = 200) -> int:
    """Beat sweep (orders.tasks.sweep_stranded_batches): every batch held by a driver who can
    no longer act on it, with no "finish first", gets the default decision. These come from
    paths that took the driver off work without deciding (or before this rule existed), and
    from documents that expired while the driver still shows active."""
    from spark.sweeps import sweep_due

    # Documents: expired before the earliest local date of any zone, so every row here is one
    # driver_work_refusal refuses (a row it accepted would come back in every chunk of the sweep).
    # A document that expired where the day has already turned waits at most those few hours.
    now = timezone.now()
    zones = Zone.objects.values_list("timezone", flat=True).distinct()
    today = min((timezone.localdate(now, ZoneInfo(tz)) for tz in zones), default=now.date())
    cannot_work = Driver.objects.filter(pk=OuterRef("driver_id")).filter(
        ~Q(status=Driver.Status.ACTIVE)
        | Q(license_expires_on__isnull=True)
        | Q(license_expires_on__lt=today)
        | Q(insurance_expires_on__isnull=True)
        | Q(insurance_expires_on__lt=today)
    )
    due = Batch.objects.filter(
        Exists(cannot_work), status__in=Batch.ACTIVE_STATUSES, finish_first_at__isnull=True
    ).order_by("pk")
    return sweep_due(due=due, act=lambda pk: stranded_batch_release(batch_id=pk), limit=limit)
