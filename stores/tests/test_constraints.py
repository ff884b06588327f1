"""Database constraints of stores: each one rejects a violating write at the database level.

Python-side checks are bypassed on purpose (QuerySet.update() / objects.create()), so these
tests prove the last line of defence holds even for a buggy writer.
"""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from stores.models import DeliverySlot, Zone
from stores.tests.factories import DeliverySlotFactory, StoreFactory, ZoneFactory

pytestmark = pytest.mark.django_db


def _claim_seat(slot: DeliverySlot) -> int:
    """The guarded counter every service uses: 1 seat taken, or 0 rows when full."""
    return DeliverySlot.objects.filter(pk=slot.pk, claimed__lt=F("capacity")).update(claimed=F("claimed") + 1)


# --- DeliverySlot seats --------------------------------------------------------------


def test_slot_claimed_cannot_exceed_capacity():
    # given a slot with 2 seats, both taken
    slot = DeliverySlotFactory(capacity=2, claimed=2)
    # when a buggy writer increments past capacity, then the database refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        DeliverySlot.objects.filter(pk=slot.pk).update(claimed=F("claimed") + 1)
    slot.refresh_from_db()
    assert slot.claimed == 2


def test_slot_claimed_cannot_go_negative():
    slot = DeliverySlotFactory(capacity=2, claimed=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        DeliverySlot.objects.filter(pk=slot.pk).update(claimed=F("claimed") - 1)
    slot.refresh_from_db()
    assert slot.claimed == 0


def test_slot_created_over_capacity_is_refused():
    store = StoreFactory()
    starts_at = timezone.now() + timedelta(hours=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        DeliverySlot.objects.create(
            store=store, starts_at=starts_at, ends_at=starts_at + timedelta(hours=2), capacity=1, claimed=2
        )


def test_slot_capacity_cannot_drop_below_claimed_seats():
    slot = DeliverySlotFactory(capacity=3, claimed=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        DeliverySlot.objects.filter(pk=slot.pk).update(capacity=2)


def test_guarded_seat_counter_stops_at_capacity():
    # given a slot with 2 seats
    slot = DeliverySlotFactory(capacity=2)
    # when three drivers take a seat with the guarded counter
    results = [_claim_seat(slot) for _ in range(3)]
    # then the first two get one, the third gets 0 rows, and the count never passes capacity
    assert results == [1, 1, 0]
    slot.refresh_from_db()
    assert slot.claimed == 2
    assert slot.seats_free == 0


def test_slot_must_end_after_it_starts():
    slot = DeliverySlotFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        DeliverySlot.objects.filter(pk=slot.pk).update(ends_at=F("starts_at"))
    with pytest.raises(IntegrityError), transaction.atomic():
        DeliverySlot.objects.filter(pk=slot.pk).update(ends_at=F("starts_at") - timedelta(minutes=1))


def test_slot_block_unique_per_store():
    slot = DeliverySlotFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        DeliverySlot.objects.create(store=slot.store, starts_at=slot.starts_at, ends_at=slot.ends_at, capacity=4)
    # the same block at another store is fine
    DeliverySlot.objects.create(store=StoreFactory(), starts_at=slot.starts_at, ends_at=slot.ends_at, capacity=4)


# --- Zone ----------------------------------------------------------------------------


def test_zone_offer_ttl_has_a_floor():
    zone = ZoneFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Zone.objects.filter(pk=zone.pk).update(offer_ttl_seconds=4)
    Zone.objects.filter(pk=zone.pk).update(offer_ttl_seconds=5)
