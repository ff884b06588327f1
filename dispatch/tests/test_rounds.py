"""Dispatch rounds, incentives, the fair board and the races around them (PostgreSQL)."""

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from dispatch import rounds
from dispatch import services as dispatch_services
from dispatch.models import ClaimAttempt, Offer
from drivers.models import Driver, Route
from drivers.tests.factories import DriverFactory, SlotClaimFactory
from orders.models import Batch
from orders.tests.helpers import _to_board, make_late, published_batch
from payments.models import OfferPaySnapshot
from spark.errors import Conflict, NotPermitted
from stores.tests.factories import DeliverySlotFactory, ZoneFactory
from tests.helpers import run_in_threads


def slot_holder(store, zone):
    slot = DeliverySlotFactory(
        store=store, starts_at=timezone.now() - timedelta(minutes=10), ends_at=timezone.now() + timedelta(hours=2)
    )
    return SlotClaimFactory(driver=DriverFactory(home_zone=zone), slot=slot).driver


def online_driver(store, zone, *, km_away=1.0):
    driver = DriverFactory(home_zone=zone, is_online=True, online_since=timezone.now() - timedelta(minutes=20))
    lat = store.lat + Decimal(str(round(km_away / 111.0, 6)))
    Route.objects.create(
        driver=driver, zone=zone, mode=Route.Mode.ONLINE, origin_lat=lat, origin_lng=store.lng, max_detour_meters=15000
    )
    return driver


def pending(batch):
    return list(Offer.objects.filter(batch=batch, status="pending").order_by("pk"))


def expire_all(batch):
    now = timezone.now()
    Offer.objects.filter(batch=batch, status="pending").update(
        created_at=now - timedelta(minutes=2), expires_at=now - timedelta(seconds=1)
    )
    dispatch_services.offers_expire_due()


def test_slot_holders_are_offered_first_with_a_pay_snapshot(store, zone):
    holders = [slot_holder(store, zone) for _ in range(2)]
    online_driver(store, zone)
    batch = published_batch(store)
    assert rounds.dispatch_advance(batch_id=batch.pk) == "slot"
    offers = pending(batch)
    assert {o.driver_id for o in offers} == {d.pk for d in holders}
    for o in offers:
        assert o.kind == "slot" and o.round == 1
        assert 55 <= (o.expires_at - timezone.now()).total_seconds() <= 60
        snap = OfferPaySnapshot.objects.get(offer=o)
        assert snap.incentive_cents == 0 and snap.tip_cents == 600
        assert snap.total_cents == snap.base_cents + snap.stops_cents + snap.miles_cents + snap.heavy_cents + 600
    # Running dispatch again while offers are pending changes nothing.
    assert rounds.dispatch_advance(batch_id=batch.pk) == "waiting"
    assert Offer.objects.filter(batch=batch).count() == 2


def test_rounds_escalate_incentive_up_to_the_cap_then_board(store, zone):
    slot_holder(store, zone)
    route_drivers = [online_driver(store, zone, km_away=k) for k in (0.5, 1, 2, 3, 4)]
    batch = published_batch(store)
    rounds.dispatch_advance(batch_id=batch.pk)  # round 1: slot holder
    expire_all(batch)
    assert rounds.dispatch_advance(batch_id=batch.pk) == "route"  # round 2: 2 nearest route matches
    r2 = pending(batch)
    assert [o.kind for o in r2] == ["route", "route"]
    assert {o.driver_id for o in r2} == {route_drivers[0].pk, route_drivers[1].pk}
    assert {o.pay.incentive_cents for o in r2} == {150}
    assert all(o.rank_detail.get("detour_m") is not None for o in r2)  # the dispatch log says why
    for o in r2:
        dispatch_services.offer_decline(offer=o, driver=o.driver, reason="pay_too_low")
    assert rounds.dispatch_advance(batch_id=batch.pk) == "route"  # round 3: next two
    r3 = pending(batch)
    assert {o.driver_id for o in r3} == {route_drivers[2].pk, route_drivers[3].pk}
    assert {o.pay.incentive_cents for o in r3} == {300}
    expire_all(batch)
    assert rounds.dispatch_advance(batch_id=batch.pk) == "board"  # route_rounds=2 used up
    batch.refresh_from_db()
    assert batch.dispatch_stage == "board" and batch.board_at and batch.incentive_cents == 400  # capped
    assert Offer.objects.filter(batch=batch, status="declined").count() == 2  # declines kept apart
    assert Offer.objects.filter(batch=batch, status="expired").count() == 3


def test_no_one_eligible_goes_straight_to_the_board(store, zone):
    batch = published_batch(store)
    assert rounds.dispatch_advance(batch_id=batch.pk) == "board"


def test_accepting_one_slot_offer_withdraws_the_others(store, zone):
    a, b = slot_holder(store, zone), slot_holder(store, zone)
    batch = published_batch(store)
    rounds.dispatch_advance(batch_id=batch.pk)
    offer_a = Offer.objects.get(batch=batch, driver=a)
    dispatch_services.offer_accept(offer=offer_a, driver=a)
    batch.refresh_from_db()
    assert batch.status == "assigned" and batch.driver_id == a.pk
    assert Offer.objects.get(batch=batch, driver=b).status == "withdrawn"
    with pytest.raises(Conflict):
        dispatch_services.offer_accept(offer=Offer.objects.get(batch=batch, driver=b), driver=b)


def test_suspended_or_busy_drivers_are_not_offered(store, zone):
    holder = slot_holder(store, zone)
    holder.status = "suspended"
    holder.reason_code = "safety"
    holder.save()
    batch = published_batch(store)
    assert rounds.dispatch_advance(batch_id=batch.pk) == "board"
    with pytest.raises(NotPermitted, match="suspended"):
        rounds.board_claim(batch=batch, driver=holder)


def test_claims_inside_the_window_are_pooled_and_drawn_by_the_rule(store, zone):
    batch = _to_board(store, zone)
    holder = slot_holder(store, zone)  # weight +2
    Driver.objects.filter(pk=holder.pk).update(is_online=True)
    holder.is_online = True
    plain = [DriverFactory(home_zone=zone, is_online=True) for _ in range(3)]
    claim = rounds.board_claim(batch=batch, driver=plain[0])
    assert claim.outcome == "pooled" and claim.attempt.detail["decides_at"]
    for d in [*plain[1:], holder]:
        assert rounds.board_claim(batch=batch, driver=d).outcome == "pooled"
    assert rounds.board_claim(batch=batch, driver=plain[0]).outcome == "pooled"  # a repeat is the same claim
    assert ClaimAttempt.objects.filter(batch=batch).count() == 4
    weights = {a.driver_id: a.score for a in ClaimAttempt.objects.filter(batch=batch)}
    assert weights[holder.pk] == pytest.approx(weights[plain[0].pk] + 2)
    assert rounds.claim_pool_resolve(batch_id=batch.pk) is None  # window still open
    Batch.objects.filter(pk=batch.pk).update(board_at=timezone.now() - timedelta(seconds=5))
    winner_id = rounds.claim_pool_resolve(batch_id=batch.pk)
    # The draw is reproducible: seeded with the batch id over the weights in claim order.
    attempts = list(ClaimAttempt.objects.filter(batch=batch).order_by("pk"))
    expected = random.Random(batch.pk).choices(attempts, weights=[a.score for a in attempts], k=1)[0]
    assert winner_id == expected.driver_id
    batch.refresh_from_db()
    assert batch.status == "assigned" and batch.driver_id == winner_id
    outcomes = dict(ClaimAttempt.objects.filter(batch=batch).values_list("driver_id", "outcome"))
    assert sorted(outcomes.values()) == ["lost", "lost", "lost", "won"]
    won = Offer.objects.get(batch=batch, status="accepted")
    assert won.kind == "board" and won.pay.total_cents > 0
    assert rounds.claim_pool_resolve(batch_id=batch.pk) is None  # a second run changes nothing
    loser = next(d for d in [*plain, holder] if d.pk != winner_id)
    with pytest.raises(Conflict):
        rounds.board_claim(batch=batch, driver=loser)


def test_after_the_window_it_is_first_come(store, zone):
    batch = _to_board(store, zone)
    Batch.objects.filter(pk=batch.pk).update(board_at=timezone.now() - timedelta(seconds=10))
    first, second = DriverFactory(home_zone=zone, is_online=True), DriverFactory(home_zone=zone, is_online=True)
    claim = rounds.board_claim(batch=batch, driver=first)
    assert claim.outcome == "assigned" and claim.offer.status == "accepted"
    with pytest.raises(Conflict, match="another driver"):
        rounds.board_claim(batch=batch, driver=second)
    assert rounds.board_claim(batch=batch, driver=first).outcome == "assigned"  # a retry by the winner


def test_other_zone_driver_cannot_claim(store, zone):
    batch = _to_board(store, zone)
    outsider = DriverFactory(home_zone=ZoneFactory(name="New Orleans", slug="nola"))
    from spark.errors import DomainError

    with pytest.raises(DomainError):
        rounds.board_claim(batch=batch, driver=outsider)


@pytest.mark.django_db(transaction=True)
def test_50_threads_claim_one_batch_exactly_one_wins(zone, store):
    batch = _to_board(store, zone)
    Batch.objects.filter(pk=batch.pk).update(board_at=timezone.now() - timedelta(seconds=10))
    drivers = [DriverFactory(home_zone=zone, is_online=True) for _ in range(50)]

    def claim(i):
        from orders.models import Batch as B

        return rounds.board_claim(batch=B.objects.get(pk=batch.pk), driver=drivers[i])

    results = run_in_threads(50, claim)
    wins = [r for r in results if isinstance(r, rounds.BoardClaim) and r.outcome == "assigned"]
    losses = [r for r in results if isinstance(r, Conflict)]
    assert len(wins) == 1 and len(losses) == 49, {type(r).__name__ for r in results}
    batch.refresh_from_db()
    assert batch.status == "assigned"
    assert Offer.objects.filter(batch=batch, status="accepted").count() == 1
    assert Offer.objects.filter(batch=batch).count() == 1  # losers left nothing behind


@pytest.mark.django_db(transaction=True)
def test_accept_racing_expiry_ends_assigned_or_reoffered_never_both(zone, store):
    for attempt in range(6):
        holder = slot_holder(store, zone)
        batch = published_batch(store)
        rounds.dispatch_advance(batch_id=batch.pk)
        offer = Offer.objects.get(batch=batch, driver=holder)
        Offer.objects.filter(pk=offer.pk).update(
            created_at=timezone.now() - timedelta(minutes=1),
            expires_at=timezone.now() + timedelta(milliseconds=5 * attempt),
        )

        def act(i, offer_id=offer.pk, driver=holder, attempt=attempt):
            o = Offer.objects.get(pk=offer_id)
            if i == 0:
                return dispatch_services.offer_accept(offer=o, driver=driver)
            import time

            time.sleep(0.005 * attempt)
            return dispatch_services.offer_expire(offer_id=offer_id)

        run_in_threads(2, act)
        offer.refresh_from_db()
        batch.refresh_from_db()
        if offer.status == "accepted":
            assert batch.status == "assigned" and batch.driver_id == holder.pk
        else:
            assert offer.status == "expired"
            assert batch.status == "published" and batch.driver_id is None


@pytest.mark.django_db(transaction=True)
def test_a_driver_accepting_two_offers_at_once_ends_with_one_batch(zone, store):
    holder = slot_holder(store, zone)
    batches = [published_batch(store) for _ in range(2)]
    for b in batches:
        rounds.dispatch_advance(batch_id=b.pk)
    offers = [Offer.objects.get(batch=b, driver=holder) for b in batches]
    results = run_in_threads(2, lambda i: dispatch_services.offer_accept(offer=offers[i], driver=holder))
    assert sum(isinstance(r, Offer) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 1
    assert Batch.objects.filter(driver=holder, status="assigned").count() == 1


def test_sweeper_starts_lost_dispatch_and_flags_at_risk_once(store, zone, settings):
    from stores.models import StoreMembership
    from stores.tests.factories import UserFactory

    StoreMembership.objects.create(user=UserFactory(email="boss@example.test"), store=store, role="manager")
    slot_holder(store, zone)
    batch = published_batch(store)  # its dispatch task never ran (no commit in this test)
    Batch.objects.filter(pk=batch.pk).update(pickup_by=timezone.now() + timedelta(minutes=20))
    rounds.dispatch_sweep()
    assert len(pending(batch)) == 1
    batch.refresh_from_db()
    assert batch.at_risk_flagged_at is not None
    rounds.dispatch_sweep()
    assert len(pending(batch)) == 1  # nothing new while the offer is pending
    assert Batch.objects.get(pk=batch.pk).at_risk_flagged_at == batch.at_risk_flagged_at


def test_at_risk_email_goes_to_managers_and_ops(store, zone, django_capture_on_commit_callbacks):
    from stores.models import StoreMembership
    from stores.tests.factories import UserFactory

    StoreMembership.objects.create(user=UserFactory(email="boss@example.test"), store=store, role="manager")
    UserFactory(email="ops@example.test", is_staff=True)
    batch = published_batch(store)
    Batch.objects.filter(pk=batch.pk).update(pickup_by=timezone.now() + timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=True):
        assert rounds.batches_flag_at_risk() == 1
    assert rounds.batches_flag_at_risk() == 0
    assert len(mail.outbox) == 1
    assert set(mail.outbox[0].to) == {"boss@example.test", "ops@example.test"}
    assert f"batch {batch.pk}" in mail.outbox[0].subject


def test_a_taken_batch_is_refused_from_the_cache_until_it_is_put_back(
    store, zone, django_capture_on_commit_callbacks, django_assert_num_queries
):
    from orders.transitions import batch_set_status
    from spark.errors import NotFound

    batch = _to_board(store, zone)
    Batch.objects.filter(pk=batch.pk).update(board_at=timezone.now() - timedelta(seconds=10))
    first, second = DriverFactory(home_zone=zone, is_online=True), DriverFactory(home_zone=zone, is_online=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert rounds.board_claim(batch_id=batch.pk, driver=first).outcome == "assigned"
    # The losers that follow are answered from the marker the winner left, without PostgreSQL.
    with django_assert_num_queries(0), pytest.raises(Conflict, match="another driver") as exc:
        rounds.board_claim(batch_id=batch.pk, driver=second)
    assert exc.value.code == "batch_taken"
    assert rounds.board_claim(batch_id=batch.pk, driver=first).outcome == "assigned"  # the holder's retry
    outsider = DriverFactory(home_zone=ZoneFactory(name="New Orleans", slug="nola"))
    with pytest.raises(NotFound):  # another zone's batch stays a 404, marker or not
        rounds.board_claim(batch_id=batch.pk, driver=outsider)
    # Any way back on offer drops the marker once that commit lands, so it never refuses a
    # claim the database would accept.
    from dispatch import claim_gate

    assert claim_gate.taken_by(batch.pk) == claim_gate.TakenMarker(zone_id=zone.pk, driver_id=first.pk)
    with django_capture_on_commit_callbacks(execute=True):
        batch_set_status(batch=batch, to=Batch.Status.PUBLISHED, reason="driver dropped it")
    assert claim_gate.taken_by(batch.pk) is None


def test_claims_are_judged_by_the_database_when_the_cache_is_down(
    store, zone, settings, django_capture_on_commit_callbacks
):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }  # nothing listens there
    batch = _to_board(store, zone)
    Batch.objects.filter(pk=batch.pk).update(board_at=timezone.now() - timedelta(seconds=10))
    first, second = DriverFactory(home_zone=zone, is_online=True), DriverFactory(home_zone=zone, is_online=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert rounds.board_claim(batch_id=batch.pk, driver=first).outcome == "assigned"
    with pytest.raises(Conflict, match="another driver"):
        rounds.board_claim(batch_id=batch.pk, driver=second)
    batch.refresh_from_db()
    assert batch.driver_id == first.pk


def test_a_driver_with_an_active_batch_cannot_claim_another(store, zone):
    first, second = _to_board(store, zone), _to_board(store, zone)
    driver = DriverFactory(home_zone=zone, is_online=True)
    Batch.objects.filter(pk=first.pk).update(board_at=timezone.now() - timedelta(seconds=10))
    assert rounds.board_claim(batch_id=first.pk, driver=driver).outcome == "assigned"
    # Inside its fair window the claim is refused up front (the draw would come later)...
    with pytest.raises(Conflict) as exc:
        rounds.board_claim(batch_id=second.pk, driver=driver)
    assert exc.value.code == "driver_busy"
    assert not ClaimAttempt.objects.filter(batch=second).exists()
    # ...and first come, by the one-active-batch index, leaving nothing behind.
    Batch.objects.filter(pk=second.pk).update(board_at=timezone.now() - timedelta(seconds=10))
    with pytest.raises(Conflict) as exc:
        rounds.board_claim(batch_id=second.pk, driver=driver)
    assert exc.value.code == "driver_busy"
    second.refresh_from_db()
    assert second.status == "published" and second.driver_id is None
    assert not Offer.objects.filter(batch=second).exists()
    assert list(Batch.objects.filter(driver=driver).values_list("pk", flat=True)) == [first.pk]


# --- Board claims need the driver online; late batches -----------------------------------


def test_a_board_claim_needs_the_driver_online_in_the_zone(store, zone):
    batch = _to_board(store, zone)
    offline = DriverFactory(home_zone=zone)
    with pytest.raises(NotPermitted, match=f"Go online in {zone.name} to claim this batch.") as err:
        rounds.board_claim(batch=batch, driver=offline)
    assert err.value.code == "not_online"
    assert not ClaimAttempt.objects.filter(batch=batch).exists()
    Batch.objects.filter(pk=batch.pk).update(board_at=timezone.now() - timedelta(seconds=10))
    with pytest.raises(NotPermitted):  # first come, after the window: the same rule
        rounds.board_claim(batch_id=batch.pk, driver=offline)
    batch.refresh_from_db()
    assert batch.status == "published" and batch.driver_id is None


def test_a_pooled_claimant_who_went_offline_is_left_out_of_the_draw(store, zone):
    batch = _to_board(store, zone)
    for _ in range(2):
        assert rounds.board_claim(batch=batch, driver=DriverFactory(home_zone=zone, is_online=True)).outcome == "pooled"
    attempts = list(ClaimAttempt.objects.filter(batch=batch).order_by("pk"))
    # The one the seeded draw would pick goes off duty before the window closes.
    first_pick = random.Random(batch.pk).choices(attempts, weights=[a.score for a in attempts], k=1)[0]
    Driver.objects.filter(pk=first_pick.driver_id).update(is_online=False)
    Batch.objects.filter(pk=batch.pk).update(board_at=timezone.now() - timedelta(seconds=5))
    other = next(a.driver_id for a in attempts if a.pk != first_pick.pk)
    assert rounds.claim_pool_resolve(batch_id=batch.pk) == other


def test_the_sweep_raises_a_late_board_batch_to_the_incentive_cap_once(store, zone):
    late, on_time = _to_board(store, zone), _to_board(store, zone)
    make_late(late)
    assert rounds.batches_raise_late_incentive() == 1
    late.refresh_from_db()
    on_time.refresh_from_db()
    assert (late.incentive_cents, on_time.incentive_cents) == (400, 0)  # the zone's cap; the other untouched
    assert rounds.batches_raise_late_incentive() == 0  # a second run changes nothing
    rounds.dispatch_sweep()
    late.refresh_from_db()
    assert late.incentive_cents == 400


def test_a_late_batch_with_pending_offers_is_offered_again_at_the_late_pay(store, zone):
    holders = [slot_holder(store, zone) for _ in range(2)]
    batch = published_batch(store)
    assert rounds.dispatch_advance(batch_id=batch.pk) == "slot"
    before = {o.driver_id: o for o in pending(batch)}
    make_late(batch)
    rounds.dispatch_sweep()
    again = pending(batch)
    assert {o.driver_id for o in again} == {d.pk for d in holders}
    for o in again:
        old = before[o.driver_id]
        assert o.pk != old.pk and (o.kind, o.round) == (old.kind, old.round)
        assert o.pay.incentive_cents == 400
        assert o.pay.total_cents == old.pay.total_cents + 400
        assert Offer.objects.get(pk=old.pk).status == "withdrawn"
    rounds.dispatch_sweep()
    assert {o.pk for o in pending(batch)} == {o.pk for o in again}  # once


def test_a_batch_already_late_is_dispatched_at_the_incentive_cap(store, zone):
    holder = slot_holder(store, zone)
    batch = published_batch(store)
    make_late(batch)
    assert rounds.dispatch_advance(batch_id=batch.pk) == "slot"
    [offer] = pending(batch)
    assert offer.driver_id == holder.pk and offer.pay.incentive_cents == 400
