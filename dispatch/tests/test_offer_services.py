"""Offers: accept, decline, expire; including real-thread races on PostgreSQL."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from dispatch.models import Offer, OfferEvent
from dispatch.services import (
    offer_accept,
    offer_decline,
    offer_expire,
    offer_schedule_expiry,
    offer_set_status,
    offers_expire_due,
    offers_withdraw_stale,
)
from dispatch.tests.factories import OfferFactory
from drivers.tests.factories import DriverFactory
from orders.models import Batch, BatchEvent
from orders.tests.factories import BatchFactory, StopFactory
from orders.transitions import batch_set_status
from spark.errors import Conflict, DomainError, Gone, InvalidTransition
from tests.helpers import run_in_threads

THREADS = 20


def _make_due(*offers: Offer) -> None:
    """Put offers past their deadline. created_at moves back too (CHECK expires_at > created_at)."""
    now = timezone.now()
    Offer.objects.filter(pk__in=[o.pk for o in offers]).update(
        created_at=now - timedelta(minutes=5), expires_at=now - timedelta(seconds=1)
    )


def published() -> Batch:
    """A published batch with one live stop (an empty batch is never accepted)."""
    batch = BatchFactory(status=Batch.Status.PUBLISHED)
    StopFactory(batch=batch)
    return batch


def _snapshot(offer: Offer, batch: Batch) -> tuple:
    offer.refresh_from_db()
    batch.refresh_from_db()
    return (offer.status, batch.status, batch.driver_id, offer.events.count(), batch.events.count())


# --- offer_accept --------------------------------------------------------------------


@pytest.mark.django_db
def test_accept_assigns_the_batch(driver):
    # given a published batch offered to a driver
    batch = published()
    offer = OfferFactory(batch=batch, driver=driver)
    # when the driver accepts
    result = offer_accept(offer=offer, driver=driver, actor=driver.user)
    # then the offer is accepted and the batch is theirs, each with one event
    assert result.status == Offer.Status.ACCEPTED
    batch.refresh_from_db()
    assert batch.status == Batch.Status.ASSIGNED
    assert batch.driver == driver
    assert batch.assigned_at is not None
    assert list(offer.events.values_list("from_status", "to_status", "actor")) == [
        ("pending", "accepted", driver.user.pk)
    ]
    assert list(batch.events.values_list("from_status", "to_status")) == [("published", "assigned")]


@pytest.mark.django_db
def test_accepting_twice_is_a_no_op(driver):
    batch = published()
    offer = OfferFactory(batch=batch, driver=driver)
    offer_accept(offer=offer, driver=driver)
    before = _snapshot(offer, batch)
    # when the driver's phone retries
    again = offer_accept(offer=offer, driver=driver)
    # then nothing changes
    assert again.status == Offer.Status.ACCEPTED
    assert _snapshot(offer, batch) == before


@pytest.mark.django_db
def test_accepting_someone_elses_offer_is_refused(driver, other_driver):
    batch = published()
    offer = OfferFactory(batch=batch, driver=driver)
    before = _snapshot(offer, batch)
    with pytest.raises(DomainError):
        offer_accept(offer=offer, driver=other_driver)
    assert _snapshot(offer, batch) == before


@pytest.mark.django_db
def test_accepting_an_expired_offer_is_gone(driver):
    # given an offer whose deadline passed (by the database clock) but no sweeper ran yet
    batch = published()
    offer = OfferFactory(batch=batch, driver=driver)
    _make_due(offer)
    before = _snapshot(offer, batch)
    # when the driver accepts, then it is Gone and nothing changed
    with pytest.raises(Gone):
        offer_accept(offer=offer, driver=driver)
    assert _snapshot(offer, batch) == before
    assert before[:3] == (Offer.Status.PENDING, Batch.Status.PUBLISHED, None)


@pytest.mark.django_db
def test_accepting_a_declined_offer_is_a_conflict(driver):
    batch = published()
    offer = OfferFactory(batch=batch, driver=driver)
    offer_decline(offer=offer, driver=driver, reason="too far")
    before = _snapshot(offer, batch)
    with pytest.raises(Conflict):
        offer_accept(offer=offer, driver=driver)
    assert _snapshot(offer, batch) == before


@pytest.mark.django_db
def test_driver_with_an_active_batch_cannot_accept_another(driver):
    # given a driver who already holds a batch
    first = published()
    offer_accept(offer=OfferFactory(batch=first, driver=driver), driver=driver)
    second = published()
    offer = OfferFactory(batch=second, driver=driver)
    before = _snapshot(offer, second)
    # when they accept a second offer, then it is a Conflict and nothing changes
    with pytest.raises(Conflict) as exc:
        offer_accept(offer=offer, driver=driver)
    assert exc.value.code == "driver_busy"
    assert _snapshot(offer, second) == before
    first.refresh_from_db()
    assert (first.status, first.driver_id) == (Batch.Status.ASSIGNED, driver.pk)


@pytest.mark.django_db
def test_accepting_an_offer_of_a_draft_batch_is_a_conflict(driver):
    batch = BatchFactory(status=Batch.Status.DRAFT)
    offer = OfferFactory(batch=batch, driver=driver)
    before = _snapshot(offer, batch)
    with pytest.raises(Conflict):
        offer_accept(offer=offer, driver=driver)
    assert _snapshot(offer, batch) == before


@pytest.mark.django_db
def test_second_driver_accepting_a_taken_batch_gets_conflict(driver, other_driver):
    # given a batch offered to two drivers, and the first one accepted
    batch = published()
    OfferFactory(batch=batch, driver=driver)
    offer_accept(offer=batch.offers.get(driver=driver), driver=driver)
    late = OfferFactory(batch=batch, driver=other_driver)
    before = _snapshot(late, batch)
    # when the second driver accepts, then it is a clean Conflict and nothing changes
    with pytest.raises(Conflict):
        offer_accept(offer=late, driver=other_driver)
    assert _snapshot(late, batch) == before


@pytest.mark.django_db
def test_accepting_an_offer_of_a_batch_assigned_elsewhere_is_a_conflict(driver, other_driver):
    # given a batch assigned to a driver without an accepted offer (e.g. by ops), and a stale
    # pending offer to another driver
    batch = published()
    late = OfferFactory(batch=batch, driver=other_driver)
    batch_set_status(batch=batch, to=Batch.Status.ASSIGNED, updates={"driver": driver})
    before = _snapshot(late, batch)
    # when the other driver accepts, then it is a Conflict and the offer stays pending
    with pytest.raises(Conflict):
        offer_accept(offer=late, driver=other_driver)
    assert _snapshot(late, batch) == before


# --- offer_decline -------------------------------------------------------------------


@pytest.mark.django_db
def test_decline_needs_a_reason_and_is_idempotent(driver):
    offer = OfferFactory(driver=driver)
    with pytest.raises(DomainError):
        offer_decline(offer=offer, driver=driver, reason="")
    offer.refresh_from_db()
    assert offer.status == Offer.Status.PENDING
    offer_decline(offer=offer, driver=driver, reason="too heavy")
    offer_decline(offer=offer, driver=driver, reason="too heavy")
    offer.refresh_from_db()
    assert (offer.status, offer.decline_reason) == (Offer.Status.DECLINED, "too heavy")
    assert offer.events.count() == 1


# --- offer_expire / offers_expire_due ------------------------------------------------


@pytest.mark.django_db
def test_expire_only_when_due():
    offer = OfferFactory()
    assert offer_expire(offer_id=offer.pk) is False
    offer.refresh_from_db()
    assert offer.status == Offer.Status.PENDING
    _make_due(offer)
    assert offer_expire(offer_id=offer.pk) is True
    assert offer_expire(offer_id=offer.pk) is False
    offer.refresh_from_db()
    assert offer.status == Offer.Status.EXPIRED
    assert list(offer.events.values_list("from_status", "to_status")) == [("pending", "expired")]


@pytest.mark.django_db
def test_expire_leaves_answered_offers_alone(driver):
    batch = published()
    offer = OfferFactory(batch=batch, driver=driver)
    offer_accept(offer=offer, driver=driver)
    _make_due(offer)
    assert offer_expire(offer_id=offer.pk) is False
    offer.refresh_from_db()
    assert offer.status == Offer.Status.ACCEPTED
    assert offer_expire(offer_id=10**9) is False  # gone: nothing to do


@pytest.mark.django_db
def test_sweeper_expires_only_due_pending_offers(driver):
    # given three due pending offers, one pending offer not yet due, and a due accepted one
    due = [OfferFactory() for _ in range(3)]
    not_due = OfferFactory()
    accepted = OfferFactory(driver=driver, batch=published())
    offer_accept(offer=accepted, driver=driver)
    _make_due(*due, accepted)
    # when the sweeper runs, then exactly the three due pending ones expire
    assert offers_expire_due() == 3
    statuses = dict(Offer.objects.values_list("pk", "status"))
    assert all(statuses[o.pk] == Offer.Status.EXPIRED for o in due)
    assert statuses[not_due.pk] == Offer.Status.PENDING
    assert statuses[accepted.pk] == Offer.Status.ACCEPTED
    events = OfferEvent.objects.count()
    # and a second run changes nothing
    assert offers_expire_due() == 0
    assert OfferEvent.objects.count() == events


@pytest.mark.django_db
def test_sweeper_respects_its_limit():
    offers = [OfferFactory() for _ in range(3)]
    _make_due(*offers)
    assert offers_expire_due(limit=2) == 2
    assert offers_expire_due(limit=2) == 1
    assert offers_expire_due(limit=2) == 0


@pytest.mark.django_db
def test_expiry_countdown_is_queued_after_commit(django_capture_on_commit_callbacks):
    offer = OfferFactory()
    with mock.patch("dispatch.tasks.expire_offer.apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            offer_schedule_expiry(offer=offer)
        assert len(callbacks) == 1
        apply_async.assert_not_called()
        callbacks[0]()
    apply_async.assert_called_once()
    kwargs = apply_async.call_args.kwargs
    assert kwargs["args"] == (offer.pk,)
    # An absolute eta: time spent before the commit does not push the expiry later.
    assert kwargs["eta"] == offer.expires_at


# --- races with real threads ---------------------------------------------------------


def _race_setup():
    batch = published()
    drivers = [DriverFactory() for _ in range(THREADS)]
    offers = [OfferFactory(batch=batch, driver=d) for d in drivers]
    return batch, [(o.pk, d.pk) for o, d in zip(offers, drivers, strict=True)]


def _accept_in_thread(pairs):
    def target(i: int):
        from drivers.models import Driver

        offer_pk, driver_pk = pairs[i]
        return offer_accept(offer=Offer.objects.get(pk=offer_pk), driver=Driver.objects.get(pk=driver_pk))

    return target


@pytest.mark.django_db(transaction=True)
def test_concurrent_accepts_have_exactly_one_winner():
    # given one published batch offered to 20 drivers
    batch, pairs = _race_setup()
    # when all 20 accept at the same moment
    results = run_in_threads(THREADS, _accept_in_thread(pairs))
    # then exactly one call succeeded, one offer is accepted, and the batch is that driver's
    winners = [r for r in results if isinstance(r, Offer)]
    assert len(winners) == 1
    assert Offer.objects.filter(batch=batch, status=Offer.Status.ACCEPTED).count() == 1
    # the other drivers' offers are withdrawn ("taken") now or, if they were locked by a racing
    # accept, by the cleanup that runs after commit; none is accepted
    assert Offer.objects.filter(batch=batch, status__in=["withdrawn", "pending"]).count() == THREADS - 1
    offers_withdraw_stale(batch_id=batch.pk)
    assert Offer.objects.filter(batch=batch, status=Offer.Status.WITHDRAWN).count() == THREADS - 1
    batch.refresh_from_db()
    assert batch.status == Batch.Status.ASSIGNED
    assert batch.driver_id == winners[0].driver_id
    assert BatchEvent.objects.filter(batch=batch, to_status=Batch.Status.ASSIGNED).count() == 1
    assert OfferEvent.objects.filter(offer__batch=batch, to_status=Offer.Status.ACCEPTED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_accept_losers_get_conflict():
    batch, pairs = _race_setup()
    results = run_in_threads(THREADS, _accept_in_thread(pairs))
    losers = [r for r in results if not isinstance(r, Offer)]
    assert len(losers) == THREADS - 1
    assert all(isinstance(r, Conflict) for r in losers), {type(r).__name__ for r in losers}


@pytest.mark.django_db(transaction=True)
def test_concurrent_expiry_writes_one_event():
    # given one due pending offer
    offer = OfferFactory()
    _make_due(offer)
    # when 20 workers (countdown tasks and sweepers) expire it at once
    results = run_in_threads(THREADS, lambda i: offer_expire(offer_id=offer.pk))
    # then exactly one did it, the others found nothing to do, and there is one event
    assert sorted(results, key=repr) == [False] * (THREADS - 1) + [True], results
    offer.refresh_from_db()
    assert offer.status == Offer.Status.EXPIRED
    assert OfferEvent.objects.filter(offer=offer).count() == 1


# --- Offer ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_closed_offer_cannot_move_again():
    offer = OfferFactory()
    offer_set_status(offer=offer, to=Offer.Status.WITHDRAWN, reason="batch cancelled")
    for to in (Offer.Status.ACCEPTED, Offer.Status.PENDING, Offer.Status.EXPIRED):
        with pytest.raises(InvalidTransition):
            offer_set_status(offer=offer, to=to)
    offer.refresh_from_db()
    assert offer.status == Offer.Status.WITHDRAWN
    assert offer.events.count() == 1
