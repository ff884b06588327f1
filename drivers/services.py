"""Every write to drivers goes through here."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import partial
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.db.models.functions import Now
from django.utils import timezone

from orders.batch_editing import batch_let_driver_finish
from orders.models import Batch
from spark import geo, hooks
from spark.celery import queue_on_commit
from spark.errors import Conflict, DomainError, Gone, NotFound, NotPermitted, RateLimited
from spark.statemachine import TransitionResult, transition
from stores.models import DeliverySlot, Zone

from . import location_gate
from .models import Driver, DriverEvent, Location, Route, SlotClaim
from .selectors import driver_can_work

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


def driver_set_status(
    *, driver: Driver, to: str, actor=None, reason_code: str = "", note: str = "", batch_decision: str | None = None
) -> TransitionResult:
    """Move a driver through applicant -> screening -> active -> suspended -> deactivated.

    Suspension and deactivation carry a reason code the driver sees; going back to active
    clears it. Going off-active also takes the driver offline (a CHECK requires it).

    A driver who stops being active while holding a batch never leaves it stranded:
    `batch_decision` ("finish" or "dispatch", see HELD_BATCH_*) says what becomes of it, in
    the same transaction; None takes the default (finish once picked up, else back to
    dispatch). Every path that takes a driver off work (the admin, the document watch,
    screening) comes through here. A repeat changes nothing, the batch included.
    """
    updates: dict = {}
    if to in (Driver.Status.SUSPENDED, Driver.Status.DEACTIVATED):
        if not reason_code or reason_code not in Driver.ReasonCode.values:
            raise DomainError(
                "A suspension or deactivation needs one of the reason codes.",
                code="reason_required",
                fields={"reason_code": [f"One of: {', '.join(v for v in Driver.ReasonCode.values if v)}"]},
            )
        updates.update(reason_code=reason_code, reason_note=note, is_online=False, online_since=None)
    elif to == Driver.Status.ACTIVE:
        updates.update(reason_code="", reason_note="")
    if batch_decision is not None and batch_decision not in HELD_BATCH_DECISIONS:
        raise DomainError(
            f"Choose what happens to the driver's batch: {' or '.join(HELD_BATCH_DECISIONS)}.",
            code="bad_batch_decision",
        )
    reason = note or reason_code
    with transaction.atomic():
        # The driver row, then their batch: the order the contractor module locks them in too.
        _lock_driver(driver)
        held = None
        if to != Driver.Status.ACTIVE:
            held = Batch.objects.select_for_update().filter(driver=driver, status__in=Batch.ACTIVE_STATUSES).first()
        decision = None
        if held is not None:
            decision = batch_decision or held_batch_default(held)
            if decision not in held_batch_choices(held):
                raise DomainError(
                    f"Batch {held.pk} is picked up already (the groceries are in the driver's car): they finish it.",
                    code="batch_picked_up",
                )
            done = "may finish it first" if decision == HELD_BATCH_FINISH else "sent back to dispatch"
            reason = f"{reason} (held batch {held.pk}: {done})" if reason else f"held batch {held.pk}: {done}"
        result = transition(
            driver,
            to=to,
            allowed=Driver.TRANSITIONS,
            event_model=DriverEvent,
            event_fk="driver",
            actor=actor,
            reason=reason,
            updates=updates,
            event_fields={"reason_code": reason_code},
        )
        if result.changed and to != Driver.Status.ACTIVE:
            hooks.driver_cannot_act(driver=driver, actor=actor, reason="the driver can no longer take work")
        if result.changed and held is not None and decision is not None:
            _held_batch_apply(batch=held, decision=decision, actor=actor)
    return result


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
        why = driver_can_work(batch.driver)
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
    """Beat sweep (drivers.tasks.sweep_stranded_batches): every batch held by a driver who can
    no longer act on it, with no "finish first", gets the default decision. These come from
    paths that took the driver off work without deciding (or before this rule existed), and
    from documents that expired while the driver still shows active."""
    from spark.sweeps import sweep_due

    # Documents: expired before the earliest local date of any zone, so every row here is one
    # driver_can_work refuses (a row it accepted would come back in every chunk of the sweep).
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


# --- Shared input checks ------------------------------------------------------------

MAX_DETOUR_METERS = 50_000
ROUTE_TIME_PAST = timedelta(days=1)
ROUTE_TIME_AHEAD = timedelta(days=14)  # as far ahead as a delivery window may be (order intake)


def _position(lat, lng, *, prefix: str = "") -> tuple[Decimal, Decimal]:
    """Checked and rounded (half-up, six places) by the one rule in spark.geo."""
    return (
        geo.coordinate(lat, axis="lat", field=f"{prefix}lat"),
        geo.coordinate(lng, axis="lng", field=f"{prefix}lng"),
    )


def _check_in_zone(zone: Zone, lat: Decimal, lng: Decimal, *, what: str, field: str) -> None:
    away = geo.haversine_m(geo.Point.of(zone.center_lat, zone.center_lng), geo.Point.of(lat, lng))
    if away > zone.radius_km * 1000:
        raise DomainError(
            f"That {what} is {away / 1000:.1f} km from the centre of {zone.name}; Spark works within "
            f"{zone.radius_km} km of it.",
            code="outside_zone",
            fields={field: [f"Within {zone.radius_km} km of {zone.name}."]},
        )


def _check_detour(value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DETOUR_METERS:
        raise DomainError(
            f"How far out of your way must be 0 to {MAX_DETOUR_METERS // 1000} km.",
            code="bad_detour",
            fields={"max_detour_meters": [f"Whole metres from 0 to {MAX_DETOUR_METERS}."]},
        )


def _require_can_work(driver: Driver) -> None:
    reason = driver_can_work(driver)
    if reason:
        raise NotPermitted(reason, code="driver_not_eligible")


def _lock_driver(driver: Driver) -> None:
    """Serialise duty/route changes of one driver (two phones, a double tap): the partial
    unique index on active routes would otherwise turn the loser into a 500."""
    Driver.objects.select_for_update().filter(pk=driver.pk).values_list("pk", flat=True).first()


# --- Delivery slots -----------------------------------------------------------------


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
    _require_can_work(driver)
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


def slot_check_in(
    *, claim: SlotClaim, driver: Driver | None = None, lat=None, lng=None, confirmed_by=None
) -> SlotClaim:
    """Check in at the store for a slot: from 30 minutes before the start until the no-show
    deadline (start + grace; the slot's end for a repeat). The phone must be within the
    zone's check-in radius (default 250 m) of the store, unless an associate of the store
    confirms the driver (`confirmed_by`). A repeat returns the checked-in claim."""
    from stores.models import StoreMembership

    from .selectors import SLOT_EARLY_MINUTES

    if driver is not None and claim.driver_id != driver.pk:
        raise NotFound("This slot sign-up is not yours.")
    claim = SlotClaim.objects.select_related("slot__store__zone").get(pk=claim.pk)
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
    if confirmed_by is not None:
        if not StoreMembership.objects.filter(user=confirmed_by, store=store).exists():
            raise NotPermitted(
                "Only an associate of this store can confirm a driver's check-in.", code="not_store_member"
            )
    else:
        if lat is None or lng is None:
            raise DomainError(
                "Share your location to check in, or ask an associate to confirm you.",
                code="location_required",
                fields={"lat": ["Required."], "lng": ["Required."]},
            )
        here = geo.Point.of(*_position(lat, lng))
        away = round(geo.haversine_m(here, geo.Point.of(store.lat, store.lng)))
        if away > zone.checkin_radius_m:
            raise DomainError(
                f"You are {away:,} m from the store; check in within {zone.checkin_radius_m} m of it, "
                "or ask an associate to confirm you are here.",
                code="too_far",
            )
    # release_at in the guard: the database clock decides the no-show deadline, exactly as
    # the release does, so a check-in and a release can never both win.
    rows = SlotClaim.objects.filter(pk=claim.pk, status=SlotClaim.Status.CLAIMED, release_at__gt=Now()).update(
        status=SlotClaim.Status.CHECKED_IN, checked_in_at=now
    )
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


def slot_release_no_show(*, claim_id: int) -> bool:
    """Release a seat whose holder has not checked in by the deadline (slot start + grace)
    and reopen it. Idempotent: only a claim still `claimed` and past `release_at` (database
    clock) changes; run it from the countdown task, the sweeper, or both. Returns whether
    it released the claim."""
    slot_id = SlotClaim.objects.filter(pk=claim_id).values_list("slot_id", flat=True).first()
    if slot_id is None:
        return False
    with transaction.atomic():
        rows = SlotClaim.objects.filter(pk=claim_id, status=SlotClaim.Status.CLAIMED, release_at__lte=Now()).update(
            status=SlotClaim.Status.RELEASED
        )
        if rows:
            _free_seat(slot_id)
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


# --- Routes and duty ----------------------------------------------------------------


def route_set(
    *,
    driver: Driver,
    origin_lat,
    origin_lng,
    dest_lat,
    dest_lng,
    leave_after=None,
    arrive_by=None,
    max_detour_meters: int,
) -> Route:
    """State a trip: "from A to B, leaving after t1, arriving by t2, up to K m out of my way".

    Replaces the driver's active route (trip or online) in one transaction; sending the same
    route again returns the active one unchanged.
    """
    _require_can_work(driver)
    zone = driver.home_zone
    o_lat, o_lng = _position(origin_lat, origin_lng, prefix="origin_")
    d_lat, d_lng = _position(dest_lat, dest_lng, prefix="dest_")
    _check_in_zone(zone, o_lat, o_lng, what="starting point", field="origin_lat")
    _check_in_zone(zone, d_lat, d_lng, what="destination", field="dest_lat")
    _check_detour(max_detour_meters)
    now = timezone.now()
    for name, value in (("leave_after", leave_after), ("arrive_by", arrive_by)):
        if value is not None and timezone.is_naive(value):
            raise DomainError(f"{name} needs a time zone.", code="naive_datetime", fields={name: ["Add a time zone."]})
        # A trip is for the days ahead: no batch is published further out than that, and a date
        # centuries away is a typo (it would also come back with a pre-1883 local-mean-time offset).
        if value is not None and not now - ROUTE_TIME_PAST <= value <= now + ROUTE_TIME_AHEAD:
            raise DomainError(
                f"{name} must be between a day ago and 14 days from now.",
                code="bad_time",
                fields={name: ["Between a day ago and 14 days from now."]},
            )
    if arrive_by is not None:
        if arrive_by <= now:
            raise DomainError(
                "The arrive-by time has passed.", code="bad_arrive_by", fields={"arrive_by": ["Must be in the future."]}
            )
        if leave_after is not None and arrive_by <= leave_after:
            raise DomainError(
                "Arrive-by must be after leave-after.",
                code="bad_arrive_by",
                fields={"arrive_by": ["Must be after leave_after."]},
            )
    wanted = {
        "zone_id": zone.pk,
        "mode": Route.Mode.TRIP,
        "origin_lat": o_lat,
        "origin_lng": o_lng,
        "dest_lat": d_lat,
        "dest_lng": d_lng,
        "leave_after": leave_after,
        "arrive_by": arrive_by,
        "max_detour_meters": max_detour_meters,
    }
    with transaction.atomic():
        _lock_driver(driver)
        current = Route.objects.filter(driver=driver, is_active=True).first()
        if current and all(getattr(current, k) == v for k, v in wanted.items()):
            return current
        Route.objects.filter(driver=driver, is_active=True).update(is_active=False)
        return Route.objects.create(driver=driver, is_active=True, created_at=now, **wanted)


def _location_save(*, driver: Driver, lat: Decimal, lng: Decimal, accuracy_m: int | None, at) -> Location:
    values = {"lat": lat, "lng": lng, "accuracy_m": accuracy_m, "recorded_at": at}
    # One row per driver, overwritten: an UPDATE is the common case (one query per ping).
    if not Location.objects.filter(driver=driver).update(**values):
        try:
            with transaction.atomic():
                return Location.objects.create(driver=driver, **values)
        except IntegrityError:  # a concurrent first ping created it
            Location.objects.filter(driver=driver).update(**values)
    return Location.objects.get(driver=driver)


def driver_go_online(*, driver: Driver, lat, lng, max_detour_meters: int | None = None) -> Driver:
    """Go on duty at the current position. Active drivers with valid documents only.

    Keeps a stated trip route that has not ended; otherwise the active route becomes an
    ONLINE route at this position (up to `max_detour_meters`, default the model's 8 km, to
    the store). Repeating it keeps `online_since` and just moves the position.
    """
    _require_can_work(driver)
    zone = driver.home_zone
    p_lat, p_lng = _position(lat, lng)
    _check_in_zone(zone, p_lat, p_lng, what="position", field="lat")
    if max_detour_meters is not None:
        _check_detour(max_detour_meters)
    now = timezone.now()
    with transaction.atomic():
        _lock_driver(driver)
        went_online = Driver.objects.filter(pk=driver.pk, status=Driver.Status.ACTIVE, is_online=False).update(
            is_online=True, online_since=now
        )
        if not went_online and not Driver.objects.filter(pk=driver.pk, status=Driver.Status.ACTIVE).exists():
            raise NotPermitted("Your account is not active.", code="driver_not_eligible")
        route = Route.objects.filter(driver=driver, is_active=True).first()
        trip_ongoing = (
            route is not None and route.mode == Route.Mode.TRIP and (route.arrive_by is None or route.arrive_by > now)
        )
        if route is not None and route.mode == Route.Mode.ONLINE:
            changes: dict = {"origin_lat": p_lat, "origin_lng": p_lng}
            if max_detour_meters is not None:
                changes["max_detour_meters"] = max_detour_meters
            Route.objects.filter(pk=route.pk).update(**changes)
        elif not trip_ongoing:
            Route.objects.filter(driver=driver, is_active=True).update(is_active=False)
            extra = {"max_detour_meters": max_detour_meters} if max_detour_meters is not None else {}
            Route.objects.create(
                driver=driver,
                zone=zone,
                mode=Route.Mode.ONLINE,
                origin_lat=p_lat,
                origin_lng=p_lng,
                is_active=True,
                created_at=now,
                **extra,
            )
        _location_save(driver=driver, lat=p_lat, lng=p_lng, accuracy_m=None, at=now)
    driver.refresh_from_db(fields=["status", "is_online", "online_since"])
    return driver


def driver_go_offline(*, driver: Driver) -> Driver:
    """Go off duty: no new offers or route matches. The ONLINE route ends (a stated trip
    stays for later). The last position is deleted unless the driver still holds an active
    batch (the customer's tracking needs it until the batch is done). Pending offers are
    left to expire; an expiry never counts against a driver. Repeating changes nothing."""
    with transaction.atomic():
        _lock_driver(driver)
        Driver.objects.filter(pk=driver.pk, is_online=True).update(is_online=False, online_since=None)
        Route.objects.filter(driver=driver, is_active=True, mode=Route.Mode.ONLINE).update(is_active=False)
        if not Batch.objects.filter(driver=driver, status__in=Batch.ACTIVE_STATUSES).exists():
            Location.objects.filter(driver=driver).delete()
    driver.refresh_from_db(fields=["status", "is_online", "online_since"])
    return driver


@dataclass(frozen=True)
class LocationPing:
    location: Location  # the stored position: this ping's, or the last one when it came too soon
    stored: bool


def location_record(*, driver: Driver, lat, lng, accuracy_m: int | None = None) -> LocationPing:
    """Store the driver's last known position (one row, overwritten). Accepted only on duty:
    while online, or while holding an active batch; we do not track drivers off duty.

    Rate (drivers.location_gate): past SPARK_LOCATION_MAX_PER_MINUTE pings a minute, RateLimited
    (429); a ping within SPARK_LOCATION_MIN_INTERVAL_SECONDS of the last stored one is not
    written and gets that stored position back (stored=False)."""

    p_lat, p_lng = _position(lat, lng)
    if accuracy_m is not None and (isinstance(accuracy_m, bool) or not isinstance(accuracy_m, int) or accuracy_m < 0):
        raise DomainError(
            "accuracy_m must be a whole number of metres.",
            code="invalid",
            fields={"accuracy_m": ["A whole number of metres, 0 or more."]},
        )
    wait = location_gate.over_cap(driver_id=driver.pk)  # before the database: a flood stops here
    if wait is not None:
        raise RateLimited(
            f"Too many location updates: at most {settings.SPARK_LOCATION_MAX_PER_MINUTE} a minute. "
            f"Try again in {wait} s.",
            retry_after=wait,
        )
    on_duty = (
        Driver.objects.filter(pk=driver.pk)
        .filter(
            Q(is_online=True) | Q(Exists(Batch.objects.filter(driver_id=driver.pk, status__in=Batch.ACTIVE_STATUSES)))
        )
        .exists()
    )
    if not on_duty:
        raise DomainError(
            "Go online to share your location; we do not record it while you are off duty.", code="not_on_duty"
        )
    if not location_gate.may_store(driver_id=driver.pk):
        last = Location.objects.filter(driver=driver).first()
        if last is not None:  # none: it went with going offline; store this one after all
            return LocationPing(location=last, stored=False)
    location = _location_save(driver=driver, lat=p_lat, lng=p_lng, accuracy_m=accuracy_m, at=timezone.now())
    return LocationPing(location=location, stored=True)
