"""Every write to delivery slots goes through here: sign up for a seat, cancel it, check in at
the store (also for a batch there: orders.delivery), and the release of no-shows, told to the
driver."""

from datetime import timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.db.models.functions import Now
from django.utils import timezone

from spark import hooks
from spark.celery import queue_on_commit
from spark.errors import Conflict, DomainError, Gone, NotFound
from stores.models import DeliverySlot
from stores.presence import StorePresence, store_presence_verify

from . import notices
from .input_checks import require_can_work
from .models import Driver, SlotClaim
from .selectors import SLOT_EARLY_MINUTES


def _live_claim(driver_id: int, slot_id: int) -> SlotClaim | None:
    return SlotClaim.objects.filter(driver_id=driver_id, slot_id=slot_id, status__in=SlotClaim.ACTIVE_STATUSES).first()


def _free_seat(slot_id: int) -> None:
    # Never below zero (the CHECK would refuse it anyway): a seat is freed once per claim
    # because every caller does it only when its own guarded claim update matched a row.
    DeliverySlot.objects.filter(pk=slot_id, claimed__gt=0).update(claimed=F("claimed") - 1)


def _schedule_no_show_release(claim: SlotClaim) -> None:
    """Countdown task for the no-show deadline, when it is near enough for a countdown;
    otherwise (sign-ups days ahead) the beat sweeper alone does it (DESIGN rule 3)."""
    from .tasks import release_no_show

    delay = (claim.release_at - timezone.now()).total_seconds()
    if delay <= settings.SPARK_MAX_TASK_COUNTDOWN_SECONDS:
        queue_on_commit(release_no_show, claim.pk, countdown=max(0.0, delay))


def slot_claim(*, driver: Driver, slot: DeliverySlot) -> SlotClaim:
    """Take a seat in a delivery slot. Idempotent: signing up again for the same slot returns
    the seat the driver already holds. A running slot can still be joined while there is time
    to check in before it ends: seats freed by no-shows reopen this way.

    The seat is a guarded counter: one UPDATE increments `claimed` only while it is below
    capacity and the slot has check-in time left (database clock), so 50 drivers racing for the
    last seat serialise on the slot row and exactly one gets it. The claim row is inserted
    in the same transaction; if the driver's own concurrent request won the partial unique
    index (one live claim per driver and slot), the IntegrityError rolls the increment back
    and the existing claim is returned.
    """
    require_can_work(driver)
    slot = DeliverySlot.objects.select_related("store__zone").get(pk=slot.pk)
    zone = slot.store.zone
    if zone.pk != driver.home_zone_id:
        raise DomainError("This slot is at a store outside your zone.", code="wrong_zone")
    if not slot.store.is_active:
        raise DomainError("This store is not taking drivers at the moment.", code="store_inactive")
    existing = _live_claim(driver.pk, slot.pk)
    if existing:
        return existing
    grace = timedelta(minutes=zone.no_show_grace_minutes)
    try:
        with transaction.atomic():
            taken = DeliverySlot.objects.filter(
                pk=slot.pk, claimed__lt=F("capacity"), ends_at__gt=Now() + grace
            ).update(claimed=F("claimed") + 1)
            if not taken:
                # Our own concurrent request may have taken the last seat (we waited on its
                # row lock): that is a repeat, not a full slot.
                existing = _live_claim(driver.pk, slot.pk)
                if existing:
                    return existing
                if DeliverySlot.objects.filter(pk=slot.pk, ends_at__lte=Now() + grace).exists():
                    raise Gone("This slot is ending; pick a later one.", code="slot_started")
                raise Conflict("This slot is full.", code="slot_full")
            claim = SlotClaim.objects.create(
                driver=driver,
                slot=slot,
                status=SlotClaim.Status.CLAIMED,
                # Check in within the grace period of the start, or of joining a running slot.
                release_at=max(slot.starts_at, timezone.now()) + grace,
            )
    except IntegrityError:
        existing = _live_claim(driver.pk, slot.pk)
        if existing is None:
            raise
        return existing
    _schedule_no_show_release(claim)
    return claim


def slot_cancel(*, claim: SlotClaim, driver: Driver) -> SlotClaim:
    """Give a seat back. Free until the zone's cutoff (default 45 min) before the start;
    after it the cancel is recorded as late; once the slot has started it is refused (not
    checking in releases the seat after the grace period). The seat is freed in the same
    transaction. A repeat changes nothing and returns the cancelled claim."""
    if claim.driver_id != driver.pk:
        raise NotFound("This slot sign-up is not yours.")
    claim = SlotClaim.objects.select_related("slot__store__zone").get(pk=claim.pk)
    cancelled = (SlotClaim.Status.CANCELLED, SlotClaim.Status.LATE_CANCELLED)
    if claim.status in cancelled:
        return claim
    if claim.status == SlotClaim.Status.RELEASED:
        raise Conflict("You were already released from this slot; there is nothing to cancel.", code="slot_released")
    slot = claim.slot
    now = timezone.now()
    if now >= slot.starts_at:
        raise DomainError("This slot has already started, so it can no longer be cancelled.", code="slot_started")
    cutoff = slot.starts_at - timedelta(minutes=slot.store.zone.slot_cancel_cutoff_minutes)
    to = SlotClaim.Status.CANCELLED if now <= cutoff else SlotClaim.Status.LATE_CANCELLED
    # The slot condition is an EXISTS, not a join: with a join Django updates "WHERE id IN
    # (subquery)", and PostgreSQL would not re-check the status of a row a concurrent cancel
    # just changed, so two repeats could both free a seat.
    not_started = Exists(DeliverySlot.objects.filter(pk=OuterRef("slot_id"), starts_at__gt=Now()))
    with transaction.atomic():
        rows = SlotClaim.objects.filter(not_started, pk=claim.pk, status__in=SlotClaim.ACTIVE_STATUSES).update(
            status=to, cancelled_at=now
        )
        if rows:
            _free_seat(slot.pk)
    claim.refresh_from_db()
    if not rows:
        if claim.status in cancelled:
            return claim  # a concurrent repeat did it
        if claim.status == SlotClaim.Status.RELEASED:
            raise Conflict("You were already released from this slot.", code="slot_released")
        raise DomainError("This slot has already started, so it can no longer be cancelled.", code="slot_started")
    return claim


def _check_in(claims, presence: StorePresence) -> int:
    """The guarded write of a check-in: only claims still `claimed` and before their no-show
    deadline (release_at, database clock, exactly as the release checks it) change, so a
    check-in and a release can never both win."""
    return claims.filter(status=SlotClaim.Status.CLAIMED, release_at__gt=Now()).update(
        status=SlotClaim.Status.CHECKED_IN, checked_in_at=timezone.now(), checked_in_by=presence.confirmed_by
    )


def slot_check_in(
    *, claim: SlotClaim, driver: Driver | None = None, lat=None, lng=None, confirmed_by=None
) -> SlotClaim:
    """Check in at the store for a slot: from 30 minutes before the start until the no-show
    deadline (start + grace; the slot's end for a repeat). The driver must be at the store by
    the one rule of stores.presence (phone within the zone's check-in radius, or an associate
    of the store confirming them: `confirmed_by`). Being at the store is one fact: the driver's
    assigned batch at this store is checked in with the slot (hooks.driver_at_store). A repeat
    returns the checked-in claim and changes nothing."""
    if driver is not None and claim.driver_id != driver.pk:
        raise NotFound("This slot sign-up is not yours.")
    claim = SlotClaim.objects.select_related("slot__store__zone", "driver__user").get(pk=claim.pk)
    slot, store = claim.slot, claim.slot.store
    zone = store.zone
    released = Gone(
        f"You were released from this slot: check-in closed {zone.no_show_grace_minutes} minutes after it started.",
        code="slot_released",
    )
    if claim.status == SlotClaim.Status.CHECKED_IN:
        return claim
    if claim.status == SlotClaim.Status.RELEASED:
        raise released
    if claim.status != SlotClaim.Status.CLAIMED:
        raise Conflict("This slot sign-up was cancelled.", code="slot_cancelled")
    now = timezone.now()
    opens = slot.starts_at - timedelta(minutes=SLOT_EARLY_MINUTES)
    if now < opens:
        local = timezone.localtime(opens, ZoneInfo(zone.timezone))
        raise DomainError(
            f"Check-in opens {SLOT_EARLY_MINUTES} minutes before the slot starts, at {local:%H:%M}.",
            code="too_early",
        )
    if now > slot.ends_at:
        raise Gone("This slot has ended.", code="slot_ended")
    presence = store_presence_verify(store=store, lat=lat, lng=lng, confirmed_by=confirmed_by)
    with transaction.atomic():
        # The batch first, as a batch check-in does (batch row, then seat rows): two taps at
        # once from both screens lock in the same order. The driver is at the store whatever
        # becomes of the seat, so the batch's check-in stands even if the seat was released.
        hooks.driver_at_store(
            driver_id=claim.driver_id, store_id=store.pk, presence=presence, actor=confirmed_by or claim.driver.user
        )
        rows = _check_in(SlotClaim.objects.filter(pk=claim.pk), presence)
    claim.refresh_from_db()
    if not rows:
        if claim.status == SlotClaim.Status.CHECKED_IN:
            return claim
        if claim.status == SlotClaim.Status.CLAIMED:
            slot_release_no_show(claim_id=claim.pk)  # past the deadline: release it now
            raise released
        if claim.status == SlotClaim.Status.RELEASED:
            raise released
        raise Conflict("This slot sign-up was cancelled.", code="slot_cancelled")
    return claim


def slot_check_in_at_store(*, driver_id: int, store_id: int, presence: StorePresence) -> int:
    """The driver checked in at the store for a batch (orders.delivery, with a presence it
    verified): check in their seats in the slots of that store whose check-in is open (from
    SLOT_EARLY_MINUTES before the start to the no-show deadline), by the same guarded write as
    slot_check_in. Seats outside that window are left alone. Returns how many were checked in."""
    open_now = SlotClaim.objects.filter(
        driver_id=driver_id, slot__store_id=store_id, slot__starts_at__lte=Now() + timedelta(minutes=SLOT_EARLY_MINUTES)
    )
    return _check_in(open_now, presence)


def slot_release_no_show(*, claim_id: int) -> bool:
    """Release a seat whose holder has not checked in by the deadline (slot start + grace),
    reopen it and tell the driver why (drivers.notices, through the outbox). Idempotent: only
    a claim still `claimed` and past `release_at` (database clock) changes; run it from the
    countdown task, the sweeper, or both. Returns whether it released the claim."""
    slot_id = SlotClaim.objects.filter(pk=claim_id).values_list("slot_id", flat=True).first()
    if slot_id is None:
        return False
    with transaction.atomic():
        rows = SlotClaim.objects.filter(pk=claim_id, status=SlotClaim.Status.CLAIMED, release_at__lte=Now()).update(
            status=SlotClaim.Status.RELEASED, released_at=Now()
        )
        if rows:
            _free_seat(slot_id)
            notices.slot_released_notice_enqueue(claim_id=claim_id)
    return bool(rows)


def slot_release_due(*, limit: int = 500) -> int:
    """Release every no-show past its deadline, at most `limit` per call. Rows are locked
    with SKIP LOCKED, so two sweepers (or a sweeper and countdown tasks) split the work."""
    from spark.sweeps import sweep_due

    return sweep_due(
        due=SlotClaim.objects.filter(status=SlotClaim.Status.CLAIMED, release_at__lte=Now()).order_by("release_at"),
        act=lambda pk: slot_release_no_show(claim_id=pk),
        limit=limit,
    )
