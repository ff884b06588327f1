"""Dispatch: who is offered a published batch, in what order, and who gets it.

Rounds, all configured per zone (stores.Zone):
 1. slot   - every driver holding a seat in a slot of the store that covers now gets a
             targeted offer at once: they signed up ahead; the first to accept wins.
 2. route  - up to `route_round_size` online drivers whose stated route fits the batch,
             ranked by fit and fairness (dispatch.candidates.route_matches_for); `route_rounds`
             such rounds.
 3. board  - the batch is open to every eligible driver of the zone. Claims arriving in the
             first `claim_pool_seconds` are pooled and one winner is drawn (claim_pool_resolve);
             after that window it is first come, first served.
Each targeted offer lives `offer_ttl_seconds`. Each round that passes without a taker raises
the incentive by the zone's step, up to its cap (payments.services.incentive_for_round). A
batch still on offer when its pickup time passes is late (orders.models.batch_is_late): the
dispatch sweep raises its incentive to the cap at once (batches_raise_late_incentive).

Claiming from the board needs the driver online in the batch's zone (board_claim).

Everything here is driven by database state, so each entry point may run any number of
times, from the countdown task, the beat sweeper, or a request: dispatch_advance acts only
on a published batch that has no pending offer, under a row lock on the batch.
"""

import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Literal

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from drivers.models import SlotClaim
from drivers.selectors import driver_work_refusal
from orders.batch_editing import batch_require_live_stops
from orders.models import Batch
from orders.selectors import batch_stops
from orders.transitions import batch_set_status
from payments.models import PayPolicy
from payments.services import incentive_for_round, offer_pay_snapshot_create
from spark.celery import queue_on_commit
from spark.errors import Conflict, DomainError, InvalidTransition, NotFound, NotPermitted
from spark.geo import format_distance
from stores.models import StoreMembership

from . import claim_gate, push, services, tasks
from .candidates import route_matches_for, slot_holders_for
from .models import ClaimAttempt, Offer, OfferEvent

log = logging.getLogger(__name__)


def _make_offer(
    *,
    batch: Batch,
    driver,
    kind: str,
    round_number: int,
    ttl_seconds: int,
    reason: str,
    detail: dict,
    incentive_cents: int,
) -> Offer:
    offer = Offer.objects.create(
        batch=batch,
        driver=driver,
        round=round_number,
        kind=kind,
        expires_at=timezone.now() + timedelta(seconds=ttl_seconds),
        rank_reason=reason[:255],
        rank_detail=detail,
    )
    offer_pay_snapshot_create(offer=offer, incentive_cents=incentive_cents)
    OfferEvent.objects.create(offer=offer, from_status="", to_status=offer.status, reason=reason[:255])
    return offer


def _announce(offer: Offer) -> None:
    """Countdown expiry + web push, both after commit. A failing push never blocks dispatch."""
    services.offer_schedule_expiry(offer=offer)
    queue_on_commit(push.send_offer_push_task, offer.pk)


def dispatch_advance(*, batch_id: int) -> str:
    """Start or continue dispatch of one batch. Returns the stage it is in afterwards."""
    now = timezone.now()
    with transaction.atomic():
        batch = Batch.objects.select_for_update().filter(pk=batch_id).first()
        if batch is None or batch.status != Batch.Status.PUBLISHED:
            return "closed"
        if batch.dispatch_stage == Batch.Stage.BOARD:
            return "board"
        if Offer.objects.filter(batch=batch, status=Offer.Status.PENDING).exists():
            return "waiting"
        zone = batch.store.zone
        round_number = batch.offer_round + 1
        incentive = incentive_for_round(zone=zone, round_number=round_number, late=batch.is_late(now))
        targets: list[tuple] = []
        stage = batch.dispatch_stage
        if stage == Batch.Stage.NONE:
            for rank, driver in enumerate(slot_holders_for(batch, now=now), start=1):
                targets.append(
                    (
                        driver,
                        Offer.Kind.SLOT,
                        f"holds a slot at this store (#{rank} by fairness)",
                        {"slot": True, "rank": rank},
                    )
                )
            stage = Batch.Stage.SLOT
        if not targets:
            # Round numbers up to the current one: a batch sent back to dispatch starts over at
            # round 1 (batch_release_to_dispatch), so the rounds of its first dispatch above
            # the current number do not count against it.
            route_rounds_done = (
                Offer.objects.filter(batch=batch, kind=Offer.Kind.ROUTE, round__lte=batch.offer_round)
                .values("round")
                .distinct()
                .count()
            )
            if route_rounds_done < zone.route_rounds:
                for match in route_matches_for(batch, now=now, limit=zone.route_round_size):
                    why = match.why
                    targets.append(
                        (
                            match.driver,
                            Offer.Kind.ROUTE,
                            f"route fits: {format_distance(why.get('detour_m', 0))} out of the way, "
                            f"rank {why.get('rank')}",
                            why,
                        )
                    )
                stage = Batch.Stage.ROUTE
        if not targets:
            # The first pooled claim queues the draw (board_claim); nothing to do until then.
            Batch.objects.filter(pk=batch.pk).update(
                dispatch_stage=Batch.Stage.BOARD, board_at=now, offer_round=round_number, incentive_cents=incentive
            )
            return Batch.Stage.BOARD
        offers = [
            _make_offer(
                batch=batch,
                driver=driver,
                kind=kind,
                round_number=round_number,
                ttl_seconds=zone.offer_ttl_seconds,
                reason=reason,
                detail=detail,
                incentive_cents=incentive,
            )
            for driver, kind, reason, detail in targets
        ]
        Batch.objects.filter(pk=batch.pk).update(
            dispatch_stage=stage, offer_round=round_number, incentive_cents=incentive
        )
        for offer in offers:
            _announce(offer)
    return stage


# --- The open board ------------------------------------------------------------------


@dataclass(frozen=True)
class _ClaimWeight:
    weight: float  # the claimant's chance in the draw, relative to the others'
    detail: dict  # what it is made of: slot, route_fit, batches_today


def _claim_weight(batch: Batch, driver, *, now) -> _ClaimWeight:
    """The documented draw rule for pooled claims. Weight =
        1
      + 2 if the driver holds a slot at this store covering now,
      + up to 1 for route fit (1 when the batch is on their way, falling to 0 at their detour limit),
      + 1 / (1 + batches they were assigned today).
    A winner is drawn with probability proportional to weight, from a generator seeded with
    the batch id, so the draw is reproducible for audits and disputes."""
    holds_slot = _holds_slot_now(batch, driver, now=now)
    fit = _route_fit(batch, driver, now=now)
    today = Batch.objects.filter(driver=driver, assigned_at__date=timezone.localdate(now)).count()
    weight = 1.0 + (2.0 if holds_slot else 0.0) + fit + 1.0 / (1 + today)
    return _ClaimWeight(weight=weight, detail={"slot": holds_slot, "route_fit": round(fit, 3), "batches_today": today})


def _holds_slot_now(batch: Batch, driver, *, now) -> bool:
    return SlotClaim.objects.filter(
        driver=driver,
        status__in=SlotClaim.ACTIVE_STATUSES,
        slot__store_id=batch.store_id,
        slot__starts_at__lte=now + timedelta(minutes=30),
        slot__ends_at__gte=now,
    ).exists()


def _route_fit(batch: Batch, driver, *, now) -> float:
    """1.0 when the batch costs the driver no detour, falling to 0 at their stated limit
    (0 too when they stated no route or it does not fit)."""
    for match in route_matches_for(batch, now=now, limit=None, drivers=[driver], include_offered=True):
        if match.driver.pk == driver.pk:
            limit = max(1, match.why.get("max_detour_m") or 1)
            return max(0.0, 1.0 - match.why.get("detour_m", 0) / limit)
    return 0.0


def _claim_now(*, batch: Batch, driver, reason: str, detail: dict) -> Offer:
    """Give the batch to `driver` from the board: the batch's guarded published -> assigned
    first (claimants serialise on that row; losers match 0 rows), then an offer created
    already accepted with its pay snapshot, all in one transaction, or nothing (Conflict).
    A board batch has no pending offers to withdraw (dispatch only opens the board when none
    is left), and one_accepted_offer_per_batch still guards the offer."""
    zone = batch.store.zone
    with transaction.atomic():
        try:
            # The status was read in this request and the UPDATE is guarded on it; any error
            # abandons this whole transaction, so the nested block needs no savepoint.
            assigned = batch_set_status(
                batch=batch,
                to=Batch.Status.ASSIGNED,
                actor=driver.user,
                reason=reason,
                updates={"driver": driver},
                extra_filter={"dispatch_stage": Batch.Stage.BOARD},
                current=batch.status,
                savepoint=False,
            )
        except IntegrityError:
            raise Conflict("You already have an active batch; finish it first.", code="driver_busy") from None
        except (Conflict, InvalidTransition):
            raise Conflict("This batch is no longer open; another driver has it.", code="batch_taken") from None
        if not assigned.changed:
            raise Conflict("This batch is no longer open; another driver has it.", code="batch_taken")
        offer = Offer.objects.create(
            batch=batch,
            driver=driver,
            round=max(1, batch.offer_round),
            kind=Offer.Kind.BOARD,
            status=Offer.Status.ACCEPTED,
            expires_at=timezone.now() + timedelta(seconds=zone.offer_ttl_seconds),
            rank_reason=reason[:255],
            rank_detail=detail,
        )
        # The stops, loaded once, serve the empty-batch check, the pay snapshot and the claim's
        # answer. An empty batch is refused here, after the guarded UPDATE (this is the one
        # read the winner makes anyway); raising rolls the assignment back.
        batch_require_live_stops(batch=batch, action="claimed", stops=batch_stops(batch=batch, keep=True))
        offer_pay_snapshot_create(offer=offer, incentive_cents=batch.incentive_cents)
        OfferEvent.objects.create(
            offer=offer, from_status="", to_status=offer.status, actor=driver.user, reason=reason[:255]
        )
        # Claims that follow are refused from the cache once this commit has landed.
        transaction.on_commit(partial(claim_gate.remember_taken, batch.pk, zone_id=zone.pk, driver_id=driver.pk))
    return offer


_READ = object()


@dataclass(frozen=True)
class BoardClaim:
    """What a board claim came to. Pooled: inside the fair window, `attempt` waits for the draw
    when the window closes. Assigned: the batch is the driver's, `offer` is their accepted
    offer (None when ops gave them the batch directly)."""

    outcome: Literal["pooled", "assigned"]
    attempt: ClaimAttempt | None = None
    offer: Offer | None = None

    @classmethod
    def pooled(cls, attempt: ClaimAttempt) -> "BoardClaim":
        return cls(outcome="pooled", attempt=attempt)

    @classmethod
    def assigned(cls, offer: Offer | None) -> "BoardClaim":
        return cls(outcome="assigned", offer=offer)


def board_claim(*, driver, batch: Batch | None = None, batch_id: int | None = None, taken_marker=_READ) -> BoardClaim:
    """A driver claims a batch on the open board.

    Inside the fair window: the claim is pooled (BoardClaim.pooled, with the ClaimAttempt); the
    draw happens when the window closes. After it: first come (BoardClaim.assigned, with the
    accepted Offer) or Conflict (409).
    `taken_marker`: what dispatch.claim_gate.claim_attempt() already read for this batch (the
    API reads it with the attempt count in one round trip); read here when not given.
    """
    # In a storm most claims are for batches already taken: the cache's taken marker refuses
    # those first. Then one query loads what the claim needs: the batch, its store, zone and
    # pay policy, and whether claims are pooled for it. Another zone's (or a missing) batch
    # is a 404.
    pk = batch_id if batch_id is not None else batch.pk if batch is not None else None
    if pk is None:
        raise NotFound("No such batch.")
    marker = claim_gate.taken_by(pk) if taken_marker is _READ else taken_marker
    if marker and marker.zone_id == driver.home_zone_id and marker.driver_id != driver.pk:
        raise Conflict("This batch is no longer open; another driver has it.", code="batch_taken")
    try:
        batch = (
            Batch.objects.select_related("store__zone__pay_policy")
            .annotate(
                has_pooled=Exists(
                    ClaimAttempt.objects.filter(batch=OuterRef("pk"), outcome=ClaimAttempt.Outcome.POOLED)
                ),
            )
            .get(pk=pk)
        )
    except Batch.DoesNotExist:
        raise NotFound("No such batch.") from None
    if batch.store.zone_id != driver.home_zone_id:
        raise NotFound("No such batch.")
    if batch.status != Batch.Status.PUBLISHED or batch.dispatch_stage != Batch.Stage.BOARD:
        if batch.driver_id == driver.pk and batch.status in Batch.ACTIVE_STATUSES:
            return BoardClaim.assigned(
                Offer.objects.filter(batch_id=pk, driver=driver, status=Offer.Status.ACCEPTED).first()
            )
        if batch.status == Batch.Status.CANCELLED:
            raise Conflict("This batch was withdrawn by the store.", code="batch_withdrawn")
        raise Conflict("This batch is no longer open; another driver has it.", code="batch_taken")
    reason = driver_work_refusal(driver)
    if reason:
        raise NotPermitted(reason, code="driver_not_eligible")
    require_online(driver=driver, zone=batch.store.zone)
    now = timezone.now()
    board_at = batch.board_at or now  # set whenever the stage is board
    closes = board_at + timedelta(seconds=batch.store.zone.claim_pool_seconds)
    if now < closes:
        # A pooled claim is drawn later, so a busy driver is told now. First come needs no such
        # read: the one_active_batch_per_driver index refuses the assignment (driver_busy).
        if Batch.objects.filter(driver=driver, status__in=Batch.ACTIVE_STATUSES).exists():
            raise Conflict("You already have an active batch; finish it first.", code="driver_busy")
        weighed = _claim_weight(batch, driver, now=now)
        detail = {**weighed.detail, "decides_at": closes.isoformat()}
        attempt, _created = ClaimAttempt.objects.get_or_create(
            batch=batch, driver=driver, defaults={"score": weighed.weight, "detail": detail}
        )
        queue_on_commit(tasks.resolve_claim_pool, batch.pk, countdown=max(0.0, (closes - now).total_seconds()) + 0.2)
        return BoardClaim.pooled(attempt)
    # Window over: settle the pool first (idempotent), then first come.
    if batch.has_pooled:
        claim_pool_resolve(batch_id=batch.pk)
        batch.refresh_from_db()
    if batch.status != Batch.Status.PUBLISHED:
        if batch.driver_id == driver.pk:
            return BoardClaim.assigned(batch.offers.filter(driver=driver, status=Offer.Status.ACCEPTED).first())
        raise Conflict("This batch is no longer open; another driver has it.", code="batch_taken")
    return BoardClaim.assigned(
        _claim_now(batch=batch, driver=driver, reason="claimed on the board (first come)", detail={"board": True})
    )


def require_online(*, driver, zone) -> None:
    """Board claims are for drivers on duty in the batch's zone. The zone is the driver's home
    zone (another zone's batch is a 404 before this), where driver_go_online checked their
    position; `is_online` is read with the driver, so the claim storm pays no extra query."""
    if not driver.is_online:
        raise NotPermitted(_("Go online in %(zone)s to claim this batch.") % {"zone": zone.name}, code="not_online")


def claim_pool_resolve(*, batch_id: int) -> int | None:
    """Draw the winner among claims pooled in the fair window. Idempotent: once drawn (or
    if the batch is gone) it only marks leftover attempts lost. Returns the winner's driver id."""
    now = timezone.now()
    with transaction.atomic():
        # of=("self",): lock the batch row only, not its store and zone (other batches of the
        # store are being claimed at the same time).
        batch = Batch.objects.select_for_update(of=("self",)).select_related("store__zone").filter(pk=batch_id).first()
        if batch is None:
            return None
        pooled = list(
            ClaimAttempt.objects.filter(batch=batch, outcome=ClaimAttempt.Outcome.POOLED)
            .select_related("driver__user")
            .order_by("pk")
        )
        if not pooled:
            return None
        if (
            batch.status == Batch.Status.PUBLISHED
            and batch.board_at
            and now < batch.board_at + timedelta(seconds=batch.store.zone.claim_pool_seconds)
        ):
            return None  # window still open
        rng = random.Random(batch.pk)
        remaining = list(pooled)
        winner = None
        while remaining and batch.status == Batch.Status.PUBLISHED:
            pick = rng.choices(remaining, weights=[a.score for a in remaining], k=1)[0]
            if not pick.driver.is_online:  # went off duty since the claim: draw again
                remaining.remove(pick)
                continue
            try:
                with transaction.atomic():
                    _claim_now(
                        batch=batch,
                        driver=pick.driver,
                        reason="won the fair draw",
                        detail={**pick.detail, "weight": pick.score, "pool_size": len(pooled)},
                    )
                winner = pick
                break
            except DomainError:
                remaining.remove(pick)  # became ineligible (busy elsewhere): draw again
        for a in pooled:
            ClaimAttempt.objects.filter(pk=a.pk, outcome=ClaimAttempt.Outcome.POOLED).update(
                outcome=ClaimAttempt.Outcome.WON if a is winner else ClaimAttempt.Outcome.LOST, decided_at=now
            )
    return winner.driver_id if winner else None


# --- Safety nets ---------------------------------------------------------------------


def batches_flag_at_risk(*, now=None) -> int:
    """Flag published batches nobody took whose pickup deadline is near: once per batch, the
    store managers and ops get an email; the dashboard shows them as long as they are at risk."""
    now = now or timezone.now()
    flagged = 0
    candidates = Batch.objects.filter(
        status=Batch.Status.PUBLISHED, at_risk_flagged_at__isnull=True, pickup_by__isnull=False
    ).select_related("store__zone")
    for batch in candidates.filter(pickup_by__lte=now + timedelta(minutes=60)).annotate(
        risk_minutes=F("store__zone__at_risk_minutes")
    ):
        if batch.pickup_by > now + timedelta(minutes=batch.risk_minutes):
            continue
        if not Batch.objects.filter(pk=batch.pk, at_risk_flagged_at__isnull=True).update(at_risk_flagged_at=now):
            continue
        flagged += 1
        recipients = set(
            StoreMembership.objects.filter(store=batch.store, role=StoreMembership.Role.MANAGER).values_list(
                "user__email", flat=True
            )
        ) | set(User.objects.filter(is_staff=True, is_active=True).values_list("email", flat=True))
        local = timezone.localtime(batch.pickup_by)
        subject = f"Spark: batch {batch.pk} at store #{batch.store.number} is not claimed"
        body = f"Batch {batch.pk} ({batch.stops_count} stops) must be picked up by {local:%H:%M}; no driver has it."
        transaction.on_commit(
            partial(send_mail, subject, body, settings.DEFAULT_FROM_EMAIL, sorted(recipients), fail_silently=True)
        )
    return flagged


def _late_cap():
    """The zone's incentive cap, in SQL (PayPolicy's default for a zone without a policy)."""
    default = PayPolicy._meta.get_field("incentive_cap_cents").get_default()
    return Coalesce(F("store__zone__pay_policy__incentive_cap_cents"), Value(default))


def batches_raise_late_incentive(*, now=None, limit: int = 200) -> int:
    """Raise the incentive of every published batch whose pickup time has passed to the late
    amount (payments.services.incentive_for_round with late=True: the zone's cap). The board,
    the feed and the next rounds price from the batch's incentive; a pending offer carries a
    pay snapshot made before, so it is withdrawn and made again for the same driver at the
    new pay (a fresh countdown): every pay a driver is shown for the batch includes the raise.
    Guarded on the incentive still being below it: a second run changes nothing."""
    now = now or timezone.now()
    due = (
        Batch.objects.filter(status=Batch.Status.PUBLISHED, pickup_by__lte=now)
        .annotate(late_cap=_late_cap())
        .filter(incentive_cents__lt=F("late_cap"))
        .values_list("pk", flat=True)[:limit]
    )
    raised = 0
    for batch_id in list(due):
        with transaction.atomic():
            batch = (
                Batch.objects.select_for_update(of=("self",))
                .select_related("store__zone__pay_policy")
                .filter(pk=batch_id)
                .first()
            )
            if batch is None or batch.status != Batch.Status.PUBLISHED or not batch.is_late(now):
                continue
            zone = batch.store.zone
            incentive = incentive_for_round(zone=zone, round_number=batch.offer_round, late=True)
            if batch.incentive_cents >= incentive:
                continue
            Batch.objects.filter(pk=batch.pk).update(incentive_cents=incentive)
            # skip_locked: an offer being accepted right now is left to its accept.
            for offer in Offer.objects.select_for_update(skip_locked=True).filter(
                batch=batch, status=Offer.Status.PENDING
            ):
                _offer_again(offer, batch=batch, incentive_cents=incentive)
            raised += 1
    return raised


def _offer_again(offer: Offer, *, batch: Batch, incentive_cents: int) -> None:
    """Replace a pending offer by the same offer at a new pay (its snapshot is immutable)."""
    if not services.offer_set_status(
        offer=offer, to=Offer.Status.WITHDRAWN, reason="late: offered again with the late incentive"
    ).changed:
        return
    again = _make_offer(
        batch=batch,
        driver=offer.driver,
        kind=offer.kind,
        round_number=offer.round,
        ttl_seconds=batch.store.zone.offer_ttl_seconds,
        reason=offer.rank_reason,
        detail=offer.rank_detail,
        incentive_cents=incentive_cents,
    )
    _announce(again)


def dispatch_sweep(*, limit: int = 200) -> int:
    """Beat safety net behind the dispatch tasks (DESIGN rule 3): start or advance dispatch of
    published batches without a pending offer, settle due claim pools, raise the incentive of
    late batches, flag batches at risk. (Offer expiry has its own sweeper,
    dispatch.tasks.sweep_expired_offers.) Idempotent."""
    done = services.offers_withdraw_stale()
    done += batches_raise_late_incentive(limit=limit)
    pending = Offer.objects.filter(batch=OuterRef("pk"), status=Offer.Status.PENDING)
    stalled = (
        Batch.objects.filter(status=Batch.Status.PUBLISHED)
        .exclude(dispatch_stage=Batch.Stage.BOARD)
        .exclude(Exists(pending))
        .values_list("pk", flat=True)[:limit]
    )
    for batch_id in list(stalled):
        dispatch_advance(batch_id=batch_id)
        done += 1
    due_pools = (
        ClaimAttempt.objects.filter(outcome=ClaimAttempt.Outcome.POOLED)
        .values_list("batch_id", flat=True)
        .distinct()[:limit]
    )
    for batch_id in list(due_pools):
        if claim_pool_resolve(batch_id=batch_id):
            done += 1
    done += batches_flag_at_risk()
    return done
