"""Issue #11, stranded batches: a driver taken off work (suspended or deactivated by ops, the
document watch or screening) never leaves the batch they hold stranded. Either they finish it
first (and may act on that batch only), or it goes back to dispatch: offered again from round
1, the accepted offer released, the driver paid for the trip and told, the store told. A beat
sweep catches any batch left with a driver who cannot act on it."""

from datetime import date, timedelta
from decimal import Decimal
from unittest import mock

import pytest
import time_machine
from celery import Task
from django.contrib import messages
from django.contrib.messages import get_messages
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from dispatch import claim_gate, rounds
from dispatch import services as dispatch_services
from dispatch.models import ClaimAttempt, Offer
from dispatch.tests.factories import OfferFactory
from drivers.models import Driver, DriverEvent
from drivers.services import driver_set_status
from drivers.tests.factories import DriverFactory, SlotClaimFactory
from orders import tasks as order_tasks
from orders.batch_editing import batch_create, batch_publish
from orders.delivery import batch_check_in, batch_handoff
from orders.models import Batch, BatchEvent
from orders.tests.factories import OrderFactory
from payments.contractor import services as contractor
from payments.models import LedgerTransaction, ScreeningCase
from payments.selectors import driver_balance_cents
from payments.services import offer_pay_snapshot_create
from payments.tests.factories import PayPolicyFactory
from spark.errors import DomainError
from stores.models import StoreMembership
from stores.tests.factories import DeliverySlotFactory, StoreFactory, StoreMembershipFactory, UserFactory, ZoneFactory

pytestmark = pytest.mark.django_db

API = "/api/v1/driver"
SAFETY = Driver.ReasonCode.SAFETY


@pytest.fixture
def zone(db):
    z = ZoneFactory()
    z.claim_pool_seconds = 0
    z.save()
    PayPolicyFactory(
        zone=z,
        base_cents=400,
        incentive_step_cents=150,
        incentive_cap_cents=600,
        wait_grace_minutes=10,
        wait_cents_per_minute=20,
    )
    return z


@pytest.fixture
def store(zone):
    return StoreFactory(zone=zone)


@pytest.fixture
def driver(zone):
    return DriverFactory(home_zone=zone)


@pytest.fixture
def ops(client, settings):
    user = UserFactory(email="ops-held@example.test", is_staff=True, is_superuser=True)
    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = [user.email]
    client.force_login(user)
    return user


def api_for(driver) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=driver.user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def slot_holder(store, zone) -> Driver:
    slot = DeliverySlotFactory(
        store=store, starts_at=timezone.now() - timedelta(minutes=10), ends_at=timezone.now() + timedelta(hours=3)
    )
    return SlotClaimFactory(driver=DriverFactory(home_zone=zone), slot=slot).driver


def held_batch(store, driver, *, incentive=150, picked_up=False, checked_in=False) -> tuple[Batch, Offer]:
    """A two-stop batch the driver accepted from a round-2 offer (with its pay snapshot)."""
    start = timezone.now() + timedelta(hours=1)
    orders = [
        OrderFactory(
            store=store,
            window_start=start,
            window_end=start + timedelta(hours=2),
            lat=Decimal("36.155000") + Decimal(i) / 1000,
        )
        for i in range(2)
    ]
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    Batch.objects.filter(pk=batch.pk).update(offer_round=2, incentive_cents=incentive, dispatch_stage="route")
    offer = OfferFactory(batch=batch, driver=driver, round=2, kind=Offer.Kind.ROUTE)
    offer_pay_snapshot_create(offer=offer, incentive_cents=incentive)
    dispatch_services.offer_accept(offer=offer, driver=driver)
    if checked_in or picked_up:
        batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    if picked_up:
        batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    batch.refresh_from_db()
    return batch, offer


def state(driver, batch) -> tuple:
    driver.refresh_from_db()
    batch.refresh_from_db()
    return (
        driver.status,
        driver.events.count(),
        batch.status,
        batch.driver_id,
        batch.pickup_code,
        batch.finish_first_at,
        batch.events.count(),
        sorted(Offer.objects.filter(batch=batch).values_list("pk", "status")),
        LedgerTransaction.objects.count(),
    )


# --- back to dispatch ----------------------------------------------------------------


def test_suspending_with_back_to_dispatch_offers_the_batch_again_from_round_one(store, zone, driver):
    batch, offer = held_batch(store, driver, incentive=150)
    old_code = batch.pickup_code
    ClaimAttempt.objects.create(
        batch=batch, driver=DriverFactory(home_zone=zone), score=1.0, outcome=ClaimAttempt.Outcome.LOST
    )
    holder = slot_holder(store, zone)
    # when ops suspend the driver and send the batch back to dispatch
    result = driver_set_status(
        driver=driver, to=Driver.Status.SUSPENDED, reason_code=SAFETY, note="report", batch_decision="dispatch"
    )
    # then the driver is suspended and the batch is back on offer, from round 1
    assert result.changed
    driver.refresh_from_db()
    batch.refresh_from_db()
    offer.refresh_from_db()
    assert driver.status == Driver.Status.SUSPENDED
    assert "sent back to dispatch" in driver.events.last().reason
    assert (batch.status, batch.driver_id, batch.finish_first_at) == (Batch.Status.PUBLISHED, None, None)
    assert (batch.offer_round, batch.incentive_cents, batch.dispatch_stage) == (0, 0, "")
    assert batch.pickup_code != old_code  # the old driver knows the old one
    assert batch.assigned_at is None and batch.arrived_at_store_at is None
    assert batch.events.last().reason == "back to dispatch: the driver can no longer take it"
    # the accepted offer is released (not accepted any more), and the trip is paid once
    assert offer.status == Offer.Status.RELEASED
    assert driver_balance_cents(driver=driver) == 400 + 150
    assert not ClaimAttempt.objects.filter(batch=batch).exists()
    # dispatch starts again with the slot holders, round 1, no incentive, and one may accept
    assert rounds.dispatch_advance(batch_id=batch.pk) == "slot"
    [again] = Offer.objects.filter(batch=batch, status=Offer.Status.PENDING)
    assert (again.driver_id, again.round, again.pay.incentive_cents) == (holder.pk, 1, 0)
    dispatch_services.offer_accept(offer=again, driver=holder)
    batch.refresh_from_db()
    assert (batch.status, batch.driver_id) == (Batch.Status.ASSIGNED, holder.pk)
    # and suspending again changes nothing
    before = state(driver, batch)
    assert (
        driver_set_status(
            driver=driver, to=Driver.Status.SUSPENDED, reason_code=SAFETY, batch_decision="dispatch"
        ).changed
        is False
    )
    assert state(driver, batch) == before


def test_back_to_dispatch_pays_the_wait_at_the_store(store, zone, driver):
    with time_machine.travel(timezone.now(), tick=False) as clock:
        batch, _ = held_batch(store, driver, incentive=0, checked_in=True)
        clock.shift(timedelta(minutes=25, seconds=5))
        driver_set_status(
            driver=driver, to=Driver.Status.DEACTIVATED, reason_code=Driver.ReasonCode.FRAUD, batch_decision="dispatch"
        )
    assert driver_balance_cents(driver=driver) == 400 + (25 - 10) * 20


def test_back_to_dispatch_tells_the_driver_and_drops_the_taken_marker(
    store, zone, driver, django_capture_on_commit_callbacks
):
    batch, offer = held_batch(store, driver)
    claim_gate.remember_taken(batch.pk, zone_id=zone.pk, driver_id=driver.pk)
    with mock.patch.object(Task, "apply_async", autospec=True) as apply_async:
        with django_capture_on_commit_callbacks(execute=True):
            driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=SAFETY, batch_decision="dispatch")
    sent = [(c.args[0].name, c.kwargs["args"]) for c in apply_async.call_args_list]
    assert ("dispatch.push.send_offer_update_push_task", (offer.pk,)) in sent
    assert claim_gate.taken_by(batch.pk) is None


def test_the_store_handoff_page_no_longer_says_the_driver_is_on_the_way(client, store, driver):
    batch, _ = held_batch(store, driver)
    associate = StoreMembershipFactory(store=store, role=StoreMembership.Role.ASSOCIATE).user
    client.force_login(associate)
    handoff = f"/dashboard/s/{store.pk}/handoff/"
    assert f'data-batch="{batch.pk}"' in client.get(handoff).content.decode()
    driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=SAFETY, batch_decision="dispatch")
    page = client.get(handoff).content.decode()
    assert f'data-batch="{batch.pk}"' not in page  # no handoff form for that driver any more
    assert f'data-released-batch="{batch.pk}"' in page and "went back to dispatch" in page
    assert "on the way" not in page


def test_the_driver_app_says_the_batch_was_taken_back_and_paid(store, driver):
    held_batch(store, driver)
    driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=SAFETY, batch_decision="dispatch")
    client = Client()
    client.force_login(driver.user)
    page = client.get("/driver/batch/").content.decode()
    assert 'data-testid="taken-back"' in page
    assert "$5.50" in page  # base $4.00 + incentive $1.50
    log = client.get("/driver/standing/log/").content.decode()
    assert "Taken back (trip paid)" in log
    spanish = Client(HTTP_ACCEPT_LANGUAGE="es")
    spanish.force_login(driver.user)
    page = spanish.get("/driver/batch/").content.decode()
    assert "Se te retiró el lote" in page and "tu cuenta ya no puede aceptar trabajo" in page


def test_a_picked_up_batch_cannot_go_back_to_dispatch(store, driver):
    batch, _ = held_batch(store, driver, picked_up=True)
    before = state(driver, batch)
    with pytest.raises(DomainError) as err:
        driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=SAFETY, batch_decision="dispatch")
    assert err.value.code == "batch_picked_up"
    assert state(driver, batch) == before  # not even suspended


# --- finish first --------------------------------------------------------------------


def test_finish_first_lets_the_driver_act_on_that_batch_only(store, zone, driver, other_driver):
    batch, offer = held_batch(store, driver)
    older, _ = held_batch(store, other_driver)  # someone else's, to check the scope
    result = driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=SAFETY, batch_decision="finish")
    assert result.changed
    driver.refresh_from_db()
    batch.refresh_from_db()
    assert driver.status == Driver.Status.SUSPENDED  # recorded now: no new work anywhere
    assert (batch.status, batch.driver_id) == (Batch.Status.ASSIGNED, driver.pk)
    assert batch.finish_first_at is not None
    assert "may finish it first" in driver.events.last().reason
    api = api_for(driver)
    # no new work
    assert api.get(f"{API}/offers/").status_code == 403
    assert api.get(f"{API}/board/").status_code == 403
    # but the trip goes on: check in, handoff, deliver/fail, complete
    assert api.get(f"{API}/batches/active/").json()["batch_id"] == batch.pk
    here = {"lat": "36.150100", "lng": "-86.790100"}
    assert api.post(f"{API}/batches/{batch.pk}/arrive/", here, format="json").status_code == 200
    assert api.post(f"{API}/location/", here, format="json").status_code == 200  # the customer's tracking
    assert api.get(f"{API}/batches/{older.pk}/").status_code == 404
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    for stop in batch.stops.order_by("sequence"):
        res = api.post(f"{API}/stops/{stop.pk}/fail/", {"reason": "no_one_home"}, format="json")
        assert res.status_code == 200, res.content
    assert api.post(f"{API}/batches/{batch.pk}/complete/", {}, format="json").status_code == 200
    batch.refresh_from_db()
    assert batch.status == Batch.Status.RETURNING
    # the sweep leaves a finishing driver alone
    assert order_tasks.sweep_stranded_batches() == 0
    offer.refresh_from_db()
    assert offer.status == Offer.Status.ACCEPTED  # they are paid for the batch as delivered
    # and a repeat changes nothing
    before = state(driver, batch)
    driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=SAFETY, batch_decision="finish")
    assert state(driver, batch) == before


# --- the default: document expiry, screening --------------------------------------------


def test_document_expiry_sends_an_unpicked_batch_back_to_dispatch(store, zone, django_capture_on_commit_callbacks):
    driver = DriverFactory(home_zone=zone)
    batch, offer = held_batch(store, driver)
    # the license expired (two days ago, whatever the zone's local date)
    Driver.objects.filter(pk=driver.pk).update(license_expires_on=date.today() - timedelta(days=2))
    with django_capture_on_commit_callbacks(execute=True):
        assert contractor.documents_check_expiry()["suspended"] == 1
    driver.refresh_from_db()
    batch.refresh_from_db()
    assert driver.status == Driver.Status.SUSPENDED
    assert (batch.status, batch.driver_id) == (Batch.Status.PUBLISHED, None)
    offer.refresh_from_db()
    assert offer.status == Offer.Status.RELEASED


def test_document_expiry_lets_a_picked_up_batch_be_finished(store, zone):
    driver = DriverFactory(home_zone=zone)
    batch, _ = held_batch(store, driver, picked_up=True)
    Driver.objects.filter(pk=driver.pk).update(insurance_expires_on=date.today() - timedelta(days=2))
    contractor.documents_check_expiry()
    driver.refresh_from_db()
    batch.refresh_from_db()
    assert driver.status == Driver.Status.SUSPENDED
    assert (batch.status, batch.driver_id) == (Batch.Status.PICKED_UP, driver.pk)
    assert batch.finish_first_at is not None
    stop = batch.stops.order_by("sequence").first()
    res = api_for(driver).post(f"{API}/stops/{stop.pk}/arrive/", {}, format="json")
    assert res.status_code == 200, res.content


def test_screening_adverse_action_sends_the_batch_back_to_dispatch(store, driver, ops_user):
    batch, _ = held_batch(store, driver)
    now = timezone.now()
    case = ScreeningCase.objects.create(
        driver=driver, status=ScreeningCase.Status.DISPUTED, submitted_at=now, disputed_at=now, dispute_text="Not me."
    )
    contractor.screening_final_decision(case=case, actor=ops_user, uphold=True)
    driver.refresh_from_db()
    batch.refresh_from_db()
    assert (driver.status, driver.reason_code) == (Driver.Status.DEACTIVATED, "screening_failed")
    assert (batch.status, batch.driver_id) == (Batch.Status.PUBLISHED, None)


# --- the sweep -------------------------------------------------------------------------


def test_sweep_sends_a_stranded_batch_back_and_tells_ops(
    store, zone, driver, ops_user, django_capture_on_commit_callbacks
):
    # given batches whose drivers were taken off work without a decision (a raw update, as
    # before this rule existed): one not picked up, one picked up
    stranded, offer = held_batch(store, driver)
    other = DriverFactory(home_zone=zone)
    on_the_road, _ = held_batch(store, other, picked_up=True)
    fine, _ = held_batch(store, DriverFactory(home_zone=zone))
    Driver.objects.filter(pk__in=[driver.pk, other.pk]).update(status=Driver.Status.SUSPENDED, reason_code=SAFETY)
    # when the beat sweep runs
    with django_capture_on_commit_callbacks(execute=True):
        assert order_tasks.sweep_stranded_batches() == 2
    # then the first goes back to dispatch (trip paid), the second stays to be finished
    stranded.refresh_from_db()
    on_the_road.refresh_from_db()
    fine.refresh_from_db()
    assert (stranded.status, stranded.driver_id) == (Batch.Status.PUBLISHED, None)
    assert Offer.objects.get(pk=offer.pk).status == Offer.Status.RELEASED
    assert driver_balance_cents(driver=driver) == 550
    assert (on_the_road.status, on_the_road.driver_id) == (Batch.Status.PICKED_UP, other.pk)
    assert on_the_road.finish_first_at is not None
    assert (fine.status, fine.finish_first_at) == (Batch.Status.ASSIGNED, None)
    # and ops were told, once per batch
    subjects = sorted(m.subject for m in mail.outbox)
    assert len(subjects) == 2 and all(m.to == [ops_user.email] for m in mail.outbox)
    assert any(f"batch {stranded.pk}" in s and "sent back to dispatch" in s for s in subjects)
    # a second run changes nothing
    events = BatchEvent.objects.count()
    assert order_tasks.sweep_stranded_batches() == 0
    assert BatchEvent.objects.count() == events and len(mail.outbox) == 2


def test_the_sweep_runs_every_minute(settings):
    entry = next(
        e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == "orders.tasks.sweep_stranded_batches"
    )
    assert entry["schedule"] <= timedelta(minutes=1)


# --- the admin asks ---------------------------------------------------------------------------


def run_action(client, action: str, drivers, **extra):
    data = {"action": action, "_selected_action": [d.pk for d in drivers], **extra}
    return client.post(reverse("admin:drivers_driver_changelist"), data)


def test_admin_suspension_asks_what_becomes_of_the_batch(client, ops, store, driver):
    batch, _ = held_batch(store, driver)
    reason = {"reason_code": SAFETY, "note": "report under review"}
    # when ops pick "suspend" for a driver holding a batch
    page = run_action(client, "suspend", [driver], **reason)
    # then a confirmation page asks, and nothing changed yet
    assert page.status_code == 200
    html = page.content.decode()
    assert f"batch {batch.pk}" in html and 'value="finish"' in html and 'value="dispatch"' in html
    driver.refresh_from_db()
    assert driver.status == Driver.Status.ACTIVE
    # when they confirm "back to dispatch"
    done = run_action(
        client, "suspend", [driver], confirm_batches="yes", **{f"batch_{driver.pk}": "dispatch"}, **reason
    )
    assert done.status_code == 302
    assert (messages.SUCCESS, "1 changed.") in [(m.level, str(m)) for m in get_messages(done.wsgi_request)]
    driver.refresh_from_db()
    batch.refresh_from_db()
    assert driver.status == Driver.Status.SUSPENDED
    assert DriverEvent.objects.filter(driver=driver, to_status="suspended").get().actor == ops
    assert (batch.status, batch.driver_id) == (Batch.Status.PUBLISHED, None)


def test_admin_confirmation_without_a_choice_changes_nothing(client, ops, store, driver):
    batch, _ = held_batch(store, driver)
    done = run_action(client, "deactivate", [driver], confirm_batches="yes", reason_code=SAFETY)
    assert done.status_code == 302
    assert [m.level for m in get_messages(done.wsgi_request)] == [messages.ERROR]
    driver.refresh_from_db()
    assert driver.status == Driver.Status.ACTIVE


def test_admin_picked_up_batch_offers_only_finish(client, ops, store, driver):
    held_batch(store, driver, picked_up=True)
    html = run_action(client, "suspend", [driver], reason_code=SAFETY).content.decode()
    assert 'value="finish"' in html and 'value="dispatch"' not in html
    assert "groceries are in the driver" in html


def test_admin_batch_action_sends_a_batch_back_to_dispatch(client, ops, store, driver):
    batch, offer = held_batch(store, driver)
    data = {"action": "back_to_dispatch", "_selected_action": [batch.pk], "reason": "driver had a flat tyre"}
    assert client.post(reverse("admin:orders_batch_changelist"), data).status_code == 302
    batch.refresh_from_db()
    assert (batch.status, batch.driver_id) == (Batch.Status.PUBLISHED, None)
    assert Offer.objects.get(pk=offer.pk).status == Offer.Status.RELEASED
    assert "driver had a flat tyre" in batch.events.last().reason
    # and again: nothing more changes, nothing more is paid
    before = state(driver, batch)
    assert client.post(reverse("admin:orders_batch_changelist"), data).status_code == 302
    assert state(driver, batch) == before


def test_the_push_says_what_happened_without_customer_details(store, driver):
    from dispatch.push import offer_update_payload

    batch, offer = held_batch(store, driver)
    pending = OfferFactory(batch=batch, driver=DriverFactory(home_zone=store.zone), status=Offer.Status.WITHDRAWN)
    driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=SAFETY, batch_decision="dispatch")
    offer.refresh_from_db()
    payload = offer_update_payload(offer)
    assert payload["tag"] == f"offer-{offer.pk}"  # replaces the offer's notification
    assert payload["title"] == "Batch taken back" and "paid for the trip" in payload["body"]
    assert payload["url"] == "/driver/batch/"
    assert offer_update_payload(pending)["title"] == "Offer withdrawn"
    text = str(payload)
    for stop in batch.stops.select_related("order"):
        assert stop.order.customer_name not in text and stop.order.address_line1 not in text


def test_a_driver_taken_off_work_loses_their_pending_offers_at_once(store, zone, driver):
    start = timezone.now() + timedelta(hours=1)
    order = OrderFactory(store=store, window_start=start, window_end=start + timedelta(hours=2))
    batch = batch_create(store=store, orders=[order])
    batch_publish(batch=batch)
    offer = OfferFactory(batch=batch, driver=driver)
    driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=SAFETY)
    offer.refresh_from_db()
    assert offer.status == Offer.Status.WITHDRAWN
    # dispatch goes on without waiting for the offer to expire
    assert rounds.dispatch_advance(batch_id=batch.pk) != "waiting"


def test_sweep_catches_documents_that_expired_before_the_daily_watch(store, zone, driver):
    batch, _ = held_batch(store, driver)
    Driver.objects.filter(pk=driver.pk).update(insurance_expires_on=date.today() - timedelta(days=2))
    valid_today, _ = held_batch(store, DriverFactory(home_zone=zone, license_expires_on=date.today()))
    assert order_tasks.sweep_stranded_batches() == 1
    batch.refresh_from_db()
    valid_today.refresh_from_db()
    assert (batch.status, batch.driver_id) == (Batch.Status.PUBLISHED, None)
    assert valid_today.status == Batch.Status.ASSIGNED  # valid through today: still theirs
