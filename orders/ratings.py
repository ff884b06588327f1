"""The customer's rating of a delivery (tracking page, once, after delivery) and what it makes of
a driver's standing."""

from django.db import IntegrityError, transaction
from django.db.models import Avg, Count

from spark.errors import Conflict, DomainError, InvalidTransition

from .models import DeliveryRating, Order, Stop

NOTE_MAX_CHARS = 500


def delivery_rating_of(order: Order) -> DeliveryRating | None:
    return DeliveryRating.objects.filter(order=order).first()


def delivery_rate(*, order: Order, stars, note: str = "") -> DeliveryRating:
    """Rate a delivered order 1-5 with an optional note; once. The note is kept as typed (the
    pages escape it)."""
    if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5:
        raise DomainError("Rate the delivery from 1 to 5 stars.", code="invalid_stars")
    note = (note or "").strip()
    if len(note) > NOTE_MAX_CHARS:
        raise DomainError(f"Keep the note under {NOTE_MAX_CHARS} characters.", code="note_too_long")
    if order.status != Order.Status.DELIVERED:
        raise InvalidTransition("A delivery can be rated once it was delivered.", code="not_delivered")
    stop = (
        Stop.objects.filter(order=order, status=Stop.Status.DELIVERED, batch__driver__isnull=False)
        .select_related("batch")
        .first()
    )
    if stop is None or stop.batch.driver_id is None:
        raise InvalidTransition("This delivery has no driver to rate.", code="no_driver")
    try:
        with transaction.atomic():
            return DeliveryRating.objects.create(order=order, driver_id=stop.batch.driver_id, stars=stars, note=note)
    except IntegrityError:
        raise Conflict("This delivery was rated already.", code="already_rated") from None


def driver_rating(driver) -> dict | None:
    """{"average": 4.7, "count": 12} of the customers' ratings of `driver`, None without any."""
    agg = DeliveryRating.objects.filter(driver=driver).aggregate(avg=Avg("stars"), n=Count("pk"))
    if not agg["n"]:
        return None
    return {"average": round(float(agg["avg"]), 1), "count": agg["n"]}
