"""The ID check at the door for an order with alcohol: a photo of the ID and a date of birth
showing the customer is of age in the store's timezone."""

from django.utils import timezone

from drivers.onboarding_checks import age_on
from spark.errors import DomainError

from .models import Order

ALCOHOL_MIN_AGE = 21


def check_alcohol_id(*, order: Order, id_birth_date, id_photo) -> None:
    """21 or older today in the store's timezone, with a photo of the ID; else nothing happens
    and the driver takes the refusal path (orders.delivery.stop_fail with refused_alcohol)."""
    from zoneinfo import ZoneInfo

    refusal = "Without a valid ID of someone 21 or older, mark the stop undeliverable as 'Alcohol refused'."
    missing = {}
    if id_birth_date is None:
        missing["id_birth_date"] = ["Enter the date of birth shown on the customer's ID."]
    if not id_photo:
        missing["id_photo"] = ["Take a photo of the customer's ID."]
    if missing:
        raise DomainError(
            f"This order contains alcohol: check the customer's ID first. {refusal}", code="id_required", fields=missing
        )
    today = timezone.localdate(timezone=ZoneInfo(order.store.zone.timezone))
    age = age_on(id_birth_date, today)
    if id_birth_date > today or age > 120:
        raise DomainError(
            "That date of birth is not possible; check the ID again.",
            code="bad_birth_date",
            fields={"id_birth_date": ["Not a possible date of birth."]},
        )
    if age < ALCOHOL_MIN_AGE:
        message = f"The customer is under {ALCOHOL_MIN_AGE}: do not hand over this order. {refusal}"
        raise DomainError(message, code="under_21", fields={"id_birth_date": [f"Under {ALCOHOL_MIN_AGE}."]})
