"""The trip from the store: the driver checks in (their slot seat there with it, see
batch_check_in) and the associate hands the batch over (pickup), then the driver's stops in
sequence (arrive, deliver with a photo, or undeliverable with a reason) and the batch completed
or sent returning. The proof photos go to storage here.
"""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from drivers import slot_services
from spark.errors import DomainError, InvalidTransition, NotFound
from stores.presence import StorePresence, store_presence_verify

from . import handoff_guard, notifications
from .alcohol_check import check_alcohol_id
from .batch_editing import batch_require_live_stops, live_stops
from .models import Batch, Order, Stop
from .returns import RETURN_REASONS
from .transitions import batch_set_status, order_set_status, stop_set_status

# --- At the store -------------------------------------------------------------------


def _arrive(*, batch: Batch, presence: StorePresence, actor, reason: str) -> bool:
    """assigned -> at_store on a presence already verified by stores.presence, and, being at
    the store one fact, the driver's seats in that store's slots whose check-in is open.
    Returns whether the batch changed (a repeat changes nothing)."""
    arrived = batch_set_status(
        batch=batch, to=Batch.Status.AT_STORE, actor=actor, reason=reason, lat=presence.lat, lng=presence.lng
    )
    if arrived.changed and batch.driver_id is not None:
        slot_services.slot_check_in_at_store(driver_id=batch.driver_id, store_id=batch.store_id, presence=presence)
    return arrived.changed


def batch_check_in_present(*, driver_id: int, store_id: int, presence: StorePresence, actor) -> int:
    """The driver checked in at the store for a slot (drivers, through hooks.driver_at_store):
    their assigned batch at that store is checked in too. Returns how many were."""
    reason = "confirmed by associate" if presence.confirmed_by else "driver checked in (slot)"
    assigned = Batch.objects.filter(driver_id=driver_id, store_id=store_id, status=Batch.Status.ASSIGNED)
    return sum(_arrive(batch=b, presence=presence, actor=actor, reason=reason) for b in assigned)


def batch_handoff(*, batch: Batch, pickup_code: str, actor=None) -> Batch:
    """The associate hands the batch over after checking the driver's pickup code.

    A wrong code changes nothing but is counted: too many lock the handoff for a few minutes
    and tell ops (orders.handoff_guard). Orders become picked up with the batch.
    """
    import hmac

    code = (pickup_code or "").strip()
    if batch.status not in (Batch.Status.AT_STORE, Batch.Status.ASSIGNED):
        raise InvalidTransition("This batch is not waiting for a handoff.", code="not_at_store")
    handoff_guard.handoff_refuse_if_locked(batch=batch)
    if not hmac.compare_digest(code, batch.pickup_code):
        locked = handoff_guard.handoff_wrong_code(batch=batch)
        if locked is not None:
            raise locked
        raise DomainError(
            "That pickup code does not match this batch. Nothing was handed over.", code="wrong_pickup_code"
        )
    batch_require_live_stops(batch=batch, action="handed over")
    with transaction.atomic():
        if batch.status == Batch.Status.ASSIGNED:
            # The associate checked the pickup code face to face: that confirms the driver
            # is here, for their slot at this store as well.
            _arrive(
                batch=batch, presence=StorePresence(confirmed_by=actor), actor=actor, reason="confirmed by associate"
            )
        picked = batch_set_status(
            batch=batch,
            to=Batch.Status.PICKED_UP,
            actor=actor,
            reason="handed over",
            extra_filter={"pickup_code": batch.pickup_code},
        )
        for s in live_stops(batch):
            order_set_status(order=s.order, to=Order.Status.PICKED_UP, actor=actor, reason="handed over")
        if picked.changed:
            batch_notify_on_the_way(batch=batch)
    return batch


# --- Delivery (driver) --------------------------------------------------------------
#
# The driver's half of the trip after the handoff: arrive at each stop in sequence, deliver
# with a photo (and the ID check for alcohol) or mark it undeliverable with a reason, then
# complete the batch. Every write here first locks the batch row, so a driver's retries (or
# two phones) take turns: "the previous stops are finished" and "every stop is finished" are
# then checked against rows nobody else is changing. The status changes themselves stay
# guarded updates through the *_set_status helpers, and a repeat is a no-op.

# Stops that need no more work from the driver.
STOP_DONE_STATUSES = (Stop.Status.DELIVERED, Stop.Status.FAILED, Stop.Status.RETURNED)


def _driver_owns(batch: Batch, driver) -> None:
    # The API scopes its querysets to the driver first (404); this is the services' own guard.
    if driver is None or batch.driver_id != driver.pk:
        raise NotFound("This batch is not yours.")


def _lock_batch(batch: Batch, driver) -> Batch:
    """Lock the batch row until the transaction ends; check it is still the driver's."""
    locked = Batch.objects.select_for_update().get(pk=batch.pk)
    _driver_owns(locked, driver)
    return locked


def _coord(value, axis):
    """A latitude/longitude as the Decimal(9, 6) the columns hold (spark.geo's rule: rounded
    half-up, out of range refused), or None when the phone sent none."""
    from spark import geo

    if value is None or value == "":
        return None
    return geo.coordinate(value, axis=axis)


def _check_stop_open(stop: Stop) -> None:
    if stop.status == Stop.Status.DELIVERED:
        raise InvalidTransition(f"Stop {stop.sequence} was delivered already.", code="stop_done")
    if stop.status in (Stop.Status.FAILED, Stop.Status.RETURNED):
        raise InvalidTransition(f"Stop {stop.sequence} was marked undeliverable already.", code="stop_done")
    if stop.status == Stop.Status.REMOVED:
        raise InvalidTransition(f"Stop {stop.sequence} was taken out of this batch.", code="stop_removed")


def _check_stop_is_next(*, batch: Batch, stop: Stop, action: str) -> None:
    """The batch is on the road and every stop before this one is finished."""
    if batch.status in (Batch.Status.ASSIGNED, Batch.Status.AT_STORE):
        raise InvalidTransition(
            f"You cannot {action} before pickup: collect the groceries at the store first "
            "(the associate confirms the handoff).",
            code="not_picked_up",
        )
    if batch.status != Batch.Status.PICKED_UP:
        raise InvalidTransition(
            f"This batch is {batch.get_status_display().lower()}; its stops can no longer change.",
            code="batch_closed",
        )
    earlier = (
        Stop.objects.filter(batch_id=batch.pk, sequence__lt=stop.sequence)
        .exclude(status__in=(*STOP_DONE_STATUSES, Stop.Status.REMOVED))
        .order_by("sequence")
        .first()
    )
    if earlier is not None:
        raise InvalidTransition(
            f"Stop {earlier.sequence} comes first: deliver it or mark it undeliverable before stop {stop.sequence}.",
            code="out_of_order",
        )


def batch_check_in(*, batch: Batch, driver=None, lat=None, lng=None, confirmed_by=None) -> Batch:
    """The driver's "I'm at the store" with the phone's position, or an associate's "Confirm
    driver is here" (`confirmed_by`): assigned -> at_store by the one rule of stores.presence
    (within the zone's check-in radius, or an associate of the store). Wait pay counts from
    here (payments.settlement), so a check-in from afar is refused with the distance. The
    driver's open slot seat at this store is checked in with it. A repeat is a no-op; after
    pickup it says so instead of a bare transition error."""
    if driver is not None or confirmed_by is None:
        _driver_owns(batch, driver)
    batch.refresh_from_db()
    if batch.status in (Batch.Status.PICKED_UP, Batch.Status.RETURNING, Batch.Status.COMPLETED, Batch.Status.RETURNED):
        raise InvalidTransition("You picked up this batch already; head to the stops.", code="already_picked_up")
    if batch.status == Batch.Status.CANCELLED:
        raise InvalidTransition("This batch was cancelled.", code="batch_closed")
    if batch.status == Batch.Status.AT_STORE:
        return batch
    if batch.status != Batch.Status.ASSIGNED:
        raise InvalidTransition(_("No driver is on the way for this batch."), code="not_assigned")
    presence = store_presence_verify(store=batch.store, lat=lat, lng=lng, confirmed_by=confirmed_by)
    reason = "confirmed by associate" if confirmed_by else "driver checked in"
    with transaction.atomic():
        _arrive(batch=batch, presence=presence, actor=confirmed_by or driver.user, reason=reason)
    return batch


def stop_arrive(*, stop: Stop, driver, lat=None, lng=None) -> Stop:
    """The driver is at the door of the next stop (pending -> arrived)."""
    _driver_owns(stop.batch, driver)
    with transaction.atomic():
        batch = _lock_batch(stop.batch, driver)
        stop.refresh_from_db()
        if stop.status == Stop.Status.ARRIVED:
            return stop  # a retry
        _check_stop_open(stop)
        _check_stop_is_next(batch=batch, stop=stop, action="arrive at a stop")
        stop_set_status(
            stop=stop,
            to=Stop.Status.ARRIVED,
            actor=driver.user,
            reason="driver arrived",
            lat=_coord(lat, "lat"),
            lng=_coord(lng, "lng"),
            updates={"arrived_at": timezone.now()},
        )
    return stop


def _store_image(stop: Stop, field_name: str, content) -> str:
    """Save through the field's storage (filesystem or S3 by settings); returns the name."""
    from typing import cast

    from django.db.models import FileField

    field = cast(FileField, Stop._meta.get_field(field_name))
    name = field.generate_filename(stop, content.name)
    return field.storage.save(name, content, max_length=field.max_length)


def _delete_images(names: list[str]) -> None:
    storage = Stop.proof_photo.field.storage
    for name in names:
        try:
            storage.delete(name)
        except Exception:  # an orphan file must not hide the real error
            pass


def stop_deliver(*, stop: Stop, driver, photo, lat=None, lng=None, id_birth_date=None, id_photo=None) -> Stop:
    """Deliver the stop with a photo (arrived -> delivered; a pending next stop arrives
    implicitly). The order becomes delivered and the customer's email is queued.

    Alcohol needs the ID check. A delivery farther from the address than
    SPARK_DELIVERY_MAX_DISTANCE_M still counts, with the distance recorded as the reason on
    the stop's event. Anything refused changes nothing; a repeat returns the stop unchanged.
    """
    from django.conf import settings

    from spark import geo
    from spark.photos import clean_photo

    _driver_owns(stop.batch, driver)
    stop.refresh_from_db()
    if stop.status == Stop.Status.DELIVERED:
        return stop  # a retry (the phone re-sends when it missed our answer)
    # The cheap checks first, so an out-of-order tap hears so before any photo work; they are
    # checked again under the lock below.
    _check_stop_open(stop)
    _check_stop_is_next(batch=Batch.objects.get(pk=stop.batch_id), stop=stop, action="deliver")
    order = Order.objects.select_related("store__zone").get(pk=stop.order_id)
    if not photo:
        raise DomainError(
            "Take a photo of the groceries at the door; it is your proof of delivery.",
            code="photo_required",
            fields={"photo": ["A photo is required."]},
        )
    if order.contains_alcohol:
        check_alcohol_id(order=order, id_birth_date=id_birth_date, id_photo=id_photo)
    proof = clean_photo(photo, field="photo")
    # Not an alcohol order: an ID photo sent anyway is not ours to keep.
    id_image = clean_photo(id_photo, field="id_photo") if order.contains_alcohol else None

    lat, lng = _coord(lat, "lat"), _coord(lng, "lng")
    distance = None
    reason = "delivered (the phone sent no location)"
    if lat is not None and lng is not None:
        # Straight line, not the road estimate: how far the phone was from the door.
        distance = round(geo.haversine_m(geo.Point.of(lat, lng), geo.Point.of(order.lat, order.lng)))
        limit = settings.SPARK_DELIVERY_MAX_DISTANCE_M
        reason = f"delivered {distance} m from the address (more than {limit} m)" if distance > limit else "delivered"

    # Files go to storage before the transaction (an S3 upload must not hold the batch lock)
    # and are deleted again if the delivery does not happen.
    stored = [_store_image(stop, "proof_photo", proof)]
    updates = {
        "proof_photo": stored[0],
        "delivered_lat": lat,
        "delivered_lng": lng,
        "distance_from_address_m": distance,
    }
    if id_image is not None:
        stored.append(_store_image(stop, "id_photo", id_image))
        updates.update(id_checked=True, id_birth_date=id_birth_date, id_photo=stored[1])
    try:
        with transaction.atomic():
            batch = _lock_batch(stop.batch, driver)
            stop.refresh_from_db()
            if stop.status == Stop.Status.DELIVERED:
                _delete_images(stored)  # a concurrent retry won; keep its photo
                return stop
            _check_stop_open(stop)
            _check_stop_is_next(batch=batch, stop=stop, action="deliver")
            now = timezone.now()
            if stop.status == Stop.Status.PENDING:
                stop_set_status(
                    stop=stop,
                    to=Stop.Status.ARRIVED,
                    actor=driver.user,
                    lat=lat,
                    lng=lng,
                    reason="arrived (with the delivery)",
                    updates={"arrived_at": now},
                )
            stop_set_status(
                stop=stop,
                to=Stop.Status.DELIVERED,
                actor=driver.user,
                reason=reason,
                lat=lat,
                lng=lng,
                updates={**updates, "delivered_at": now},
            )
            order_set_status(
                order=order,
                to=Order.Status.DELIVERED,
                actor=driver.user,
                reason=f"delivered (stop {stop.sequence} of batch {batch.pk})",
            )
            notifications.queue_delivered_email(order.pk)  # in this transaction: sent once it commits
    except BaseException:
        _delete_images(stored)
        raise
    return stop


def stop_fail(*, stop: Stop, driver, reason: str, lat=None, lng=None) -> Stop:
    """The stop cannot be delivered (pending or arrived -> failed); the order becomes
    undeliverable and goes back to the store: batch_complete then sends the batch returning."""
    _driver_owns(stop.batch, driver)
    if reason not in RETURN_REASONS:
        raise DomainError(
            "Pick a reason from the list.",
            code="bad_reason",
            fields={"reason": [f"One of: {', '.join(RETURN_REASONS)}"]},
        )
    with transaction.atomic():
        batch = _lock_batch(stop.batch, driver)
        stop.refresh_from_db()
        if stop.status in (Stop.Status.FAILED, Stop.Status.RETURNED):
            return stop  # a retry
        _check_stop_open(stop)
        _check_stop_is_next(batch=batch, stop=stop, action="mark a stop undeliverable")
        stop_set_status(
            stop=stop,
            to=Stop.Status.FAILED,
            actor=driver.user,
            reason=RETURN_REASONS[reason],
            lat=_coord(lat, "lat"),
            lng=_coord(lng, "lng"),
            updates={"failure_reason": reason},
        )
        order_set_status(
            order=stop.order,
            to=Order.Status.UNDELIVERABLE,
            actor=driver.user,
            reason=f"{RETURN_REASONS[reason]} (stop {stop.sequence} of batch {batch.pk})",
        )
    return stop


def batch_complete(*, batch: Batch, driver) -> Batch:
    """Every stop is delivered or undeliverable: the batch completes, or, with orders to take
    back, goes returning until the associate checks them in (order_return_check_in)."""
    _driver_owns(batch, driver)
    with transaction.atomic():
        locked = _lock_batch(batch, driver)
        if locked.status in (Batch.Status.COMPLETED, Batch.Status.RETURNING, Batch.Status.RETURNED):
            batch.refresh_from_db()
            return batch  # a retry
        if locked.status in (Batch.Status.ASSIGNED, Batch.Status.AT_STORE):
            raise InvalidTransition("You have not picked up this batch yet.", code="not_picked_up")
        if locked.status != Batch.Status.PICKED_UP:
            raise InvalidTransition(
                f"This batch is {locked.get_status_display().lower()}; it cannot be completed.", code="batch_closed"
            )
        stops = list(live_stops(locked))
        batch_require_live_stops(batch=locked, action="completed", stops=stops)
        left = [s for s in stops if s.status not in STOP_DONE_STATUSES]
        if left:
            listed = [f"Stop {s.sequence}: {s.order.address_line1}" for s in left]
            raise InvalidTransition(
                f"Finish every stop first; still open: {', '.join(f'stop {s.sequence}' for s in left)}.",
                code="stops_left",
                fields={"stops": listed},
            )
        returns = [s for s in stops if s.status in (Stop.Status.FAILED, Stop.Status.RETURNED)]
        if not returns:
            batch_set_status(batch=locked, to=Batch.Status.COMPLETED, actor=driver.user, reason="all stops delivered")
        else:
            batch_set_status(
                batch=locked,
                to=Batch.Status.RETURNING,
                actor=driver.user,
                reason=f"{len(returns)} undeliverable order(s) going back to the store",
            )
            if not any(s.status == Stop.Status.FAILED for s in returns):
                # The associate checked every return in before the driver tapped complete.
                batch_set_status(
                    batch=locked, to=Batch.Status.RETURNED, actor=driver.user, reason="returns already checked in"
                )
    batch.refresh_from_db()
    return batch


def batch_notify_on_the_way(*, batch: Batch) -> None:
    """Owe the customers their "on the way" emails, in the transaction of the handoff
    (orders.notifications, through the outbox: sent once it commits, once per order)."""
    for stop in live_stops(batch):
        notifications.queue_on_the_way_email(stop.order_id)
