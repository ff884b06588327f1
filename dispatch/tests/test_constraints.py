"""Database constraints of offers.

Every test bypasses the services (QuerySet.update() / objects.create()) and checks that the
database itself refuses the write, so a buggy or racing writer cannot break the invariant.
"""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from dispatch.models import Offer
from dispatch.tests.factories import OfferFactory

pytestmark = pytest.mark.django_db


# --- Offer ---------------------------------------------------------------------------


def test_one_accepted_offer_per_batch():
    # given a batch with an accepted offer
    accepted = OfferFactory(status=Offer.Status.ACCEPTED)
    pending = OfferFactory(batch=accepted.batch)
    # when a second offer of the same batch becomes accepted, then the database refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        Offer.objects.filter(pk=pending.pk).update(status=Offer.Status.ACCEPTED)
    with pytest.raises(IntegrityError), transaction.atomic():
        OfferFactory(batch=accepted.batch, status=Offer.Status.ACCEPTED)
    pending.refresh_from_db()
    assert pending.status == Offer.Status.PENDING
    # accepted offers of other batches are fine
    OfferFactory(status=Offer.Status.ACCEPTED)


def test_one_pending_offer_per_batch_and_driver():
    offer = OfferFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        OfferFactory(batch=offer.batch, driver=offer.driver)
    # once the first is closed, a new round may offer the batch to the same driver again
    Offer.objects.filter(pk=offer.pk).update(status=Offer.Status.EXPIRED)
    OfferFactory(batch=offer.batch, driver=offer.driver, round=2)
    # and other drivers may hold pending offers of the same batch
    OfferFactory(batch=offer.batch)
    assert Offer.objects.filter(batch=offer.batch).count() == 3


def test_offer_expires_after_it_was_created():
    offer = OfferFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Offer.objects.filter(pk=offer.pk).update(expires_at=F("created_at"))
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        OfferFactory(created_at=now, expires_at=now - timedelta(seconds=1))


def test_offer_status_check_rejects_unknown_status():
    offer = OfferFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Offer.objects.filter(pk=offer.pk).update(status="lost")
