"""Every write to a driver's status, routes and duty, and location goes through here (delivery
slots: drivers.slot_services; onboarding: drivers.onboarding_services)."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from spark import hooks
from spark.errors import Conflict, DomainError, NotPermitted, RateLimited
from spark.statemachine import TransitionResult, transition

from . import location_gate
from .input_checks import check_detour, check_in_zone, checked_position, require_can_work
from .models import Driver, DriverEvent, Location, Route


def driver_set_status(
    *, driver: Driver, to: str, actor=None, reason_code: str = "", note: str = "", batch_decision: str | None = None
) -> TransitionResult:
    """Move a driver through applicant -> screening -> active -> suspended -> deactivated.

    Suspension and deactivation carry a reason code the driver sees; going back to active
    clears it. Going off-active also takes the driver offline (a CHECK requires it).

    A driver who stops being active while holding a batch never leaves it stranded:
    `batch_decision` ("finish" or "dispatch", see orders.held_batches) says what becomes of
    it, in the same transaction; None takes the default (finish once picked up, else back to
    dispatch). Orders decides and does it, through spark.hooks (held_batch_plan before the
    transition, held_batch_apply after it). Every path that takes a driver off work (the
    admin, the document watch, screening) comes through here. A repeat changes nothing, the
    batch included.
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
    reason = note or reason_code
    with transaction.atomic():
        # The driver row, then their batch: the order the contractor module locks them in too.
        _lock_driver(driver)
        # Orders checks `batch_decision` (bad_batch_decision), locks the batch the driver holds
        # when they stop being active, and says what becomes of it (spark.hooks.held_batch_plan).
        plan = hooks.held_batch_plan(driver=driver, to=to, decision=batch_decision)
        if plan is not None:
            reason = f"{reason} ({plan.summary})" if reason else plan.summary
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
        if result.changed and plan is not None:
            hooks.held_batch_apply(plan=plan, actor=actor)
    return result


def _lock_driver(driver: Driver) -> None:
    """Serialise duty/route changes of one driver (two phones, a double tap): the partial
    unique index on active routes would otherwise turn the loser into a 500."""
    Driver.objects.select_for_update().filter(pk=driver.pk).values_list("pk", flat=True).first()


# --- Routes and duty ----------------------------------------------------------------

ROUTE_TIME_PAST = timedelta(days=1)
ROUTE_TIME_AHEAD = timedelta(days=14)  # as far ahead as a delivery window may be (order intake)


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
    require_can_work(driver)
    zone = driver.home_zone
    o_lat, o_lng = checked_position(origin_lat, origin_lng, prefix="origin_")
    d_lat, d_lng = checked_position(dest_lat, dest_lng, prefix="dest_")
    check_in_zone(zone, o_lat, o_lng, what=_("starting point"), field="origin_lat")
    check_in_zone(zone, d_lat, d_lng, what=_("destination"), field="dest_lat")
    check_detour(max_detour_meters)
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
    require_can_work(driver)
    zone = driver.home_zone
    p_lat, p_lng = checked_position(lat, lng)
    check_in_zone(zone, p_lat, p_lng, what=_("position"), field="lat")
    if max_detour_meters is not None:
        check_detour(max_detour_meters)
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
    stays for later) and the last position is deleted. Pending offers are left to expire; an
    expiry never counts against a driver. Repeating changes nothing.

    Refused (Conflict, nothing changes) while an active driver holds an active batch: the
    customers are waiting on it, its tracking needs the position, and the route stays.
    A driver taken off work (suspended, deactivated: driver_set_status) is no longer active,
    so the system's own call still takes them off duty; the position is kept then while they
    finish a batch they were let keep."""
    with transaction.atomic():
        _lock_driver(driver)
        holds_batch = hooks.driver_holds_batch(driver_id=driver.pk)
        if holds_batch and Driver.objects.filter(pk=driver.pk, status=Driver.Status.ACTIVE).exists():
            raise Conflict(
                _("You can't go offline during a batch. Finish it first; you stay online until then."),
                code="batch_in_progress",
            )
        Driver.objects.filter(pk=driver.pk, is_online=True).update(is_online=False, online_since=None)
        Route.objects.filter(driver=driver, is_active=True, mode=Route.Mode.ONLINE).update(is_active=False)
        if not holds_batch:
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

    p_lat, p_lng = checked_position(lat, lng)
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
    on_duty = Driver.objects.filter(pk=driver.pk, is_online=True).exists() or hooks.driver_holds_batch(
        driver_id=driver.pk
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
