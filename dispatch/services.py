"""Every write to offers: their status changes, accept, decline, expiry, withdrawal, and a
batch taken back from its driver (released to dispatch).

Each status change is one call of spark.statemachine.transition: allowed-transition map,
guarded UPDATE, event row, and a no-op when repeated.
"""

import logging
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models.functions import Now

from orders.batch_editing import batch_require_live_stops
from orders.models import Batch, new_pickup_code
from orders.transitions import batch_set_status
from payments.services import trip_pay_for_released_batch
from spark.celery import queue_on_commit
from spark.errors import Conflict, DomainError, Gone, InvalidTransition, NotFound
from spark.statemachine import transition
from spark.sweeps import sweep_due

from . import claim_gate, push, tasks
from .models import ClaimAttempt, Offer, OfferEvent

logger = logging.getLogger(__name__)


def offer_set_status(*, offer: Offer, to: str, actor=None, reason: str = "", updates=None, extra_filter=None):
    return transition(
        offer,
        to=to,
        allowed=Offer.TRANSITIONS,
        event_model=OfferEvent,
        event_fk="offer",
        actor=actor,
        reason=reason,
        updates=updates,
        extra_filter=extra_filter,
    )


def offer_accept(*, offer: Offer, driver, actor=None) -> Offer:
    """Accept a pending offer: the offer becomes accepted and the batch assigned to `driver`,
    in one transaction, or nothing changes.

    Expiry is judged by the database clock (`expires_at > now()` in the guard), so a worker
    running behind cannot let a late accept through. The partial unique indexes
    (one accepted offer per batch, one active batch per driver) are the last line.
    """
    if offer.driver_id != driver.pk:
        raise NotFound("This offer is not yours.")
    with transaction.atomic():
        try:
            result = offer_set_status(
                offer=offer, to=Offer.Status.ACCEPTED, actor=actor, extra_filter={"expires_at__gt": Now()}
            )
        except Conflict:
            offer.refresh_from_db()
            if offer.status == Offer.Status.PENDING:
                raise Gone("This offer has expired.", code="offer_expired") from None
            raise Conflict(f"This offer is no longer open (it was {offer.status}).", code="offer_closed") from None
        except InvalidTransition:
            raise Conflict(f"This offer is no longer open (it was {offer.status}).", code="offer_closed") from None
        except IntegrityError:
            # one_accepted_offer_per_batch: another driver's accept committed first.
            raise Conflict("Another driver already has this batch.", code="batch_taken") from None
        if not result.changed:
            return offer  # accepted already by this driver: a retry
        try:
            with transaction.atomic():
                assigned = batch_set_status(
                    batch=offer.batch,
                    to=Batch.Status.ASSIGNED,
                    actor=actor,
                    reason=f"offer {offer.pk} accepted",
                    updates={"driver": driver},
                )
        except (Conflict, InvalidTransition):
            raise Conflict("Another driver already has this batch.", code="batch_taken") from None
        except IntegrityError:
            raise Conflict("You already have an active batch; finish it first.", code="driver_busy") from None
        if not assigned.changed and offer.batch.driver_id != driver.pk:
            # The batch was assigned by another path (ops, the board): this accept loses.
            raise Conflict("Another driver already has this batch.", code="batch_taken")
        # Refused (the accept and the assignment rolled back) for a batch without a live stop.
        batch_require_live_stops(batch=offer.batch, action="accepted")
        # Other drivers' offers for this batch (e.g. several slot holders) are withdrawn. Rows
        # locked by a racing accept are skipped (waiting on them would deadlock with that
        # accept, which is itself waiting on our accepted offer); the task below and the
        # sweeper withdraw those once the losers have rolled back.
        for other in (
            Offer.objects.select_for_update(skip_locked=True)
            .filter(batch_id=offer.batch_id, status=Offer.Status.PENDING)
            .exclude(pk=offer.pk)
        ):
            offer_set_status(offer=other, to=Offer.Status.WITHDRAWN, reason=f"taken by offer {offer.pk}")
        if Offer.objects.filter(batch_id=offer.batch_id, status=Offer.Status.PENDING).exclude(pk=offer.pk).exists():
            queue_on_commit(tasks.withdraw_stale_offers, offer.batch_id)
    return offer


def offers_withdraw_stale(*, batch_id: int | None = None, limit: int = 500) -> int:
    """Withdraw pending offers of batches that are no longer published (taken, pulled back,
    cancelled). Idempotent; used after an accept and by the sweeper."""
    stale = Offer.objects.filter(status=Offer.Status.PENDING).exclude(batch__status=Batch.Status.PUBLISHED)
    if batch_id is not None:
        stale = stale.filter(batch_id=batch_id)
    done = 0
    for other in stale.order_by("pk")[:limit]:
        try:
            done += offer_set_status(offer=other, to=Offer.Status.WITHDRAWN, reason="batch no longer open").changed
        except (Conflict, InvalidTransition):
            pass
    return done


def offers_withdraw(*, batch: Batch, actor=None, reason: str = "") -> int:
    """Withdraw every pending offer of a batch (it was cancelled or pulled back); each driver
    is told (a push that replaces the offer's notification; the app's offer list and dispatch
    log show it too)."""
    done = 0
    for offer in Offer.objects.filter(batch=batch, status=Offer.Status.PENDING):
        try:
            changed = offer_set_status(offer=offer, to=Offer.Status.WITHDRAWN, actor=actor, reason=reason).changed
        except (Conflict, InvalidTransition):
            continue  # answered meanwhile
        if changed:
            _tell_driver(offer)
            done += 1
    return done


def offers_withdraw_for_driver(*, driver, actor=None, reason: str) -> int:
    """Withdraw a driver's pending offers (they were taken off work and can no longer accept):
    dispatch moves on to the next round at once instead of waiting for them to expire."""
    done = 0
    for offer in Offer.objects.filter(driver=driver, status=Offer.Status.PENDING):
        try:
            changed = offer_set_status(offer=offer, to=Offer.Status.WITHDRAWN, actor=actor, reason=reason).changed
        except (Conflict, InvalidTransition):
            continue  # answered meanwhile
        if changed:
            _queue_dispatch(offer.batch_id)
            done += 1
    return done


def _tell_driver(offer: Offer) -> None:
    """Push the news of an offer that ended without the driver's doing (withdrawn, released)
    once committed."""
    queue_on_commit(push.send_offer_update_push_task, offer.pk)


def offer_decline(*, offer: Offer, driver, reason: str, actor=None) -> Offer:
    if offer.driver_id != driver.pk:
        raise NotFound("This offer is not yours.")
    if not reason:
        raise DomainError("Tell us why you decline; it is never held against you.", code="reason_required")
    result = offer_set_status(
        offer=offer, to=Offer.Status.DECLINED, actor=actor, reason=reason, updates={"decline_reason": reason[:64]}
    )
    if result.changed:
        _queue_dispatch(offer.batch_id)
    return offer


def offer_expire(*, offer_id: int) -> bool:
    """Expire one offer if it is still pending and past its deadline (database clock).

    Safe to run any number of times, from the countdown task or the sweeper: only the
    first run that finds it pending and past due changes anything. Returns whether it did.
    """
    offer = Offer.objects.filter(pk=offer_id).first()
    if offer is None:
        return False
    try:
        result = offer_set_status(
            offer=offer,
            to=Offer.Status.EXPIRED,
            reason="no answer before the deadline",
            extra_filter={"expires_at__lte": Now()},
        )
    except (Conflict, InvalidTransition):
        return False  # accepted/declined meanwhile, or not due yet
    if result.changed:
        _queue_dispatch(offer.batch_id)
    return result.changed


def offers_expire_due(*, limit: int = 500) -> int:
    """Expire pending offers past their deadline, at most `limit` per call (spark.sweeps)."""
    return sweep_due(
        due=Offer.objects.filter(status=Offer.Status.PENDING, expires_at__lte=Now()).order_by("expires_at"),
        act=lambda pk: offer_expire(offer_id=pk),
        limit=limit,
    )


def offer_schedule_expiry(*, offer: Offer) -> None:
    """Queue the countdown task once the offer is committed; the sweeper is the safety net."""
    # eta, not a countdown computed now: the rest of the transaction must not delay expiry.
    queue_on_commit(tasks.expire_offer, offer.pk, eta=offer.expires_at)


def _queue_dispatch(batch_id: int) -> None:
    """Move dispatch of the batch on (next round, or the board) once committed; the dispatch
    sweeper does it too if this task is lost."""
    queue_on_commit(tasks.advance_dispatch, batch_id)


def batch_on_offer(*, batch_id: int) -> None:
    """A batch went on offer (published, or back to dispatch) in this transaction: once
    committed, a "taken" marker left by an earlier board claim must no longer refuse claims,
    and dispatch starts (slot holders, then route matches, then the board).
    Installed as spark.hooks.batch_published."""
    transaction.on_commit(partial(claim_gate.forget_taken, batch_id))
    _queue_dispatch(batch_id)


def batch_take_from_driver(*, batch: Batch, actor, reason: str) -> None:
    """The driver loses `batch` (assigned or at the store; the caller holds its row lock and
    changes its status next): the accepted offer is released, the trip is paid, the driver
    is told."""
    offer = (
        Offer.objects.select_related("pay")
        .filter(batch_id=batch.pk, driver=batch.driver, status=Offer.Status.ACCEPTED)
        .first()
    )
    if offer is not None:
        offer_set_status(offer=offer, to=Offer.Status.RELEASED, actor=actor, reason=reason)
    trip_pay_for_released_batch(batch=batch, driver=batch.driver, offer=offer, actor=actor, memo=reason)
    if offer is not None:
        _tell_driver(offer)


def batch_release_to_dispatch(*, batch: Batch, actor=None, reason: str) -> Batch:
    """Take a batch back from its driver before pickup (assigned or at the store) and offer it
    again from round 1: slot holders, route matches, then the board, as a newly published
    batch. The accepted offer is released (so one_accepted_offer_per_batch lets the next
    accept in), the driver is paid for the trip and told, and the pickup code changes (the
    old driver knows it). A batch already back on offer is left as it is; a picked-up batch
    cannot come back (the groceries are in the driver's car): its driver finishes it.
    """
    with transaction.atomic():
        # of=("self",): the driver is a nullable join, and only the batch row needs the lock.
        locked = Batch.objects.select_for_update(of=("self",)).select_related("store__zone", "driver").get(pk=batch.pk)
        if locked.status == Batch.Status.PUBLISHED:
            batch.refresh_from_db()
            return batch  # a repeat
        if locked.status not in (Batch.Status.ASSIGNED, Batch.Status.AT_STORE):
            raise InvalidTransition(
                f"This batch is {locked.get_status_display().lower()}; only a batch not yet picked up can go "
                "back to dispatch.",
                code="not_releasable",
            )
        batch_take_from_driver(batch=locked, actor=actor, reason=f"back to dispatch: {reason}")
        # The old draw is over: its attempts would keep those drivers out of a new pool
        # (one attempt per driver and batch, one winner per batch). The released offer keeps
        # the winner's draw weight and pool size (rank_detail) for audits.
        ClaimAttempt.objects.filter(batch_id=locked.pk).delete()
        batch_set_status(
            batch=locked,
            to=Batch.Status.PUBLISHED,
            actor=actor,
            reason=f"back to dispatch: {reason}",
            current=locked.status,
            updates={
                "dispatch_stage": Batch.Stage.NONE,
                "offer_round": 0,
                "incentive_cents": 0,
                "board_at": None,
                "assigned_at": None,
                "arrived_at_store_at": None,
                "at_risk_flagged_at": None,
                "pickup_code": new_pickup_code(),
            },
        )  # dispatch starts again once committed (batch_on_offer, through spark.hooks.batch_published)
    batch.refresh_from_db()
    return batch
