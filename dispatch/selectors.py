"""Reads of offers for the driver's surfaces (the feed and board are in dispatch.feed)."""

from django.db.models.functions import Now

from .models import Offer


def offers_for_driver(*, driver):
    """A driver's pending, unexpired offers with everything the offer card shows."""
    return (
        Offer.objects.filter(driver=driver, status=Offer.Status.PENDING, expires_at__gt=Now())
        .select_related("batch__store", "pay")
        .order_by("expires_at")
    )
