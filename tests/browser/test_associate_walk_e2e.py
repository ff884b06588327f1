"""The associate's walk at the desk (1280x800), start to end: orders come in through the store
API, auto-batching proposes the trips, the associate moves a stop out of its window order (a
warning listing the order that would be late; said no once, then yes), publishes it, publishes
the other proposed trip as it is, and hands the first batch to its driver at the store (the
orders and totes to bring out, a wrong code, then the right one and the ID check).

Only the store's e-commerce (HTTP with an API key), the Celery worker and the driver's phone are
played by the test; everything the associate does is clicked in the dashboard. The clock is
pinned at 10:00 in the store's zone (America/Chicago) and ticks on from there, so no window
crosses midnight; the live server runs in this process and reads the same clock."""

import re
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import requests
import time_machine
from django.db import connections, transaction
from django.utils import timezone
from playwright.sync_api import expect

from drivers.tests.factories import DriverFactory
from orders.batching_runs import batching_run_execute
from orders.delivery import batch_check_in
from orders.models import Batch, BatchingRun, Order
from orders.tests.helpers import stop_sequence
from orders.transitions import batch_set_status
from stores.models import StoreMembership
from stores.tests.factories import StoreApiKeyFactory, StoreFactory, StoreMembershipFactory

pytestmark = pytest.mark.slow

CENTRAL_MORNING = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)  # 10:00 AM in Nashville
API_KEY = "walk-e-commerce-key-0123456789"


@pytest.fixture
def clock():
    with time_machine.travel(CENTRAL_MORNING, tick=True) as traveller:
        yield traveller


@pytest.fixture
def shop(db):
    store = StoreFactory(name="Spark Walk Market")
    StoreApiKeyFactory(store=store, raw_key=API_KEY)
    associate = StoreMembershipFactory(store=store, role=StoreMembership.Role.ASSOCIATE).user
    return store, associate


def _intake(
    live_server, store, external_id: str, *, name: str, spot: tuple[str, str], opens_in: int, hours: float, totes: int
):
    """The store's e-commerce sends an order, as it does in production."""
    start = (timezone.now() + timedelta(minutes=opens_in)).replace(microsecond=0)
    body = {
        "store": store.number,
        "external_id": external_id,
        "customer": {"name": name, "phone": "+1 615 555 0100", "email": f"{external_id.lower()}@example.test"},
        "address": {
            "line1": f"{len(external_id) * 100 + totes} Broadway",
            "city": "Nashville",
            "state": "TN",
            "postal_code": "37203",
            "lat": spot[0],
            "lng": spot[1],
        },
        "delivery_window": {"start": start.isoformat(), "end": (start + timedelta(hours=hours)).isoformat()},
        "totes": totes,
        "weight_lb": "20",
        "items_count": 12,
        "contains_alcohol": False,
        "tip_cents": 500,
    }
    res = requests.post(
        f"{live_server.url}/api/v1/orders/", json=body, headers={"Authorization": f"Api-Key {API_KEY}"}, timeout=20
    )
    assert res.status_code == 201, res.text


@contextmanager
def orders_held(store):
    """Hold the store's orders locked: a worker solving a run gets as far as making the batches
    and waits there, so the run stays "running" for as long as this lasts."""
    with transaction.atomic():
        list(Order.objects.select_for_update().filter(store=store))
        yield


def _worker(run_id: int, errors: list) -> threading.Thread:
    """What the Celery worker does with the queued run (no worker runs in the tests)."""

    def work():
        try:
            batching_run_execute(run_id=run_id)
        except Exception as exc:  # seen by the test, not lost in the thread
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _seconds(text: str) -> int:
    found = re.search(r"\d+", text)
    assert found, text
    return int(found.group())


def test_associate_walk_intake_autobatch_edit_publish_handoff(
    desktop_page, shop, clock, live_server, force_login, shot, htmx_settled
):
    page = desktop_page
    store, associate = shop

    # 1. Intake: three orders from the store's website. EARLY's window opens in 5 minutes, LATER's
    # at noon; PARTY is a big one (19 totes) that fills a trip on its own.
    _intake(
        live_server, store, "WM-EARLY", name="Ana Pérez", spot=("36.165000", "-86.775000"), opens_in=5, hours=1, totes=3
    )
    _intake(
        live_server,
        store,
        "WM-LATER",
        name="Ben Okafor",
        spot=("36.140000", "-86.760000"),
        opens_in=120,
        hours=1,
        totes=2,
    )
    _intake(
        live_server,
        store,
        "WM-PARTY",
        name="Cleo Park",
        spot=("36.175000", "-86.790000"),
        opens_in=30,
        hours=2,
        totes=19,
    )
    clock.shift(timedelta(minutes=20))  # the morning goes on: EARLY's window opened 15 minutes ago

    force_login(page, associate)
    page.goto("/dashboard/")
    expect(page).to_have_url(re.compile(rf"/dashboard/s/{store.pk}/$"))
    for external_id in ("WM-EARLY", "WM-LATER", "WM-PARTY"):
        expect(page.locator(f"tr[data-order='{external_id}']")).to_be_visible()
    flagged = page.locator("#window-started")
    expect(flagged.locator("h2")).to_have_text("Delivery window started, no batch yet")
    expect(flagged.locator("li[data-order]")).to_have_count(1)
    expect(flagged.locator("li[data-order='WM-EARLY']")).to_contain_text("Ana Pérez")
    expect(flagged.locator("li[data-order='WM-EARLY']")).to_contain_text("window 10:05 AM–11:05 AM")
    expect(page.locator("section.window h3").first).to_have_text(re.compile(r"· 1 order$"))
    shot(page, "intake-queue")

    # 2. Auto-batch the morning, 10:00 to 14:00 in the store's time.
    page.get_by_role("link", name="Auto-batch").click()
    page.locator("input[name=window_from]").fill("2026-12-03T10:00")
    page.locator("input[name=window_to]").fill("2026-12-03T14:00")
    page.locator("#run-autobatch").click()
    expect(page).to_have_url(re.compile(rf"/dashboard/s/{store.pk}/auto/\d+/$"))
    run = BatchingRun.objects.get(store=store)
    expect(page.locator("#progress")).to_contain_text("Waiting for a worker")

    errors: list[Exception] = []
    with orders_held(store):
        worker = _worker(run.pk, errors)
        working = page.locator("#progress-working")
        expect(working).to_have_text(re.compile(r"^Working… \d+ s$"))
        first = _seconds(working.inner_text())
        expect(working).not_to_have_text(f"Working… {first} s", timeout=5000)  # it counts on
        expect(page.locator("#run-status")).to_have_text("Solving")
        shot(page, "autobatch-working")
    worker.join(timeout=30)
    assert not worker.is_alive() and not errors, errors

    # The page reloads itself with the proposal: EARLY and LATER share a trip, PARTY is alone.
    expect(page.locator("#run-status")).to_have_text("Done")
    expect(page.locator("section.proposal")).to_have_count(2)
    expect(page.get_by_text("3 orders considered, 2 batches proposed.")).to_be_visible()
    shared = Batch.objects.get(stops__order__external_id="WM-EARLY")
    party = Batch.objects.get(stops__order__external_id="WM-PARTY")
    card = page.locator(f"section.proposal[data-batch='{shared.pk}']")
    expect(card.locator("ol li")).to_have_count(2)
    expect(card.locator("ol li").first).to_contain_text("WM-EARLY")
    party_card = page.locator(f"section.proposal[data-batch='{party.pk}']")
    expect(party_card.locator("ol li")).to_have_text(re.compile("WM-PARTY"))
    expect(party_card.locator("p")).to_have_text(re.compile(r"^1 stop · 19 totes · [\d.]+ mi$"))
    htmx_settled(page)
    shot(page, "autobatch-proposal")
    assert stop_sequence(shared) == ["WM-EARLY", "WM-LATER"]

    # 3. Edit with a warning: LATER first would make Ana's delivery late.
    card.get_by_role("link", name="Edit").click()
    expect(page).to_have_url(re.compile(rf"/dashboard/s/{store.pk}/batches/{shared.pk}/$"))
    stop_ids = page.locator("#stops li.stop .what b")
    expect(stop_ids).to_have_text(["WM-EARLY", "WM-LATER"])
    move_later_up = page.locator("#stops li.stop").filter(has_text="WM-LATER").get_by_role("button", name="Move up")
    move_later_up.click()
    step = page.locator("#confirm-step")
    expect(step.locator("h2")).to_have_text("In this order, these deliveries would arrive after their window closes:")
    expect(step.locator("li[data-order]")).to_have_count(1)
    warned = step.locator("li[data-order='WM-EARLY']")
    expect(warned).to_contain_text("Ana Pérez")
    expect(warned).to_contain_text("window 10:05 AM–11:05 AM")
    expect(warned).to_contain_text(re.compile(r"arrives about 12:\d\d PM"))
    htmx_settled(page)
    shot(page, "move-warning")

    # Said no first: nothing moved.
    step.get_by_role("link", name="No, leave the batch as it is").click()
    expect(page.locator("#confirm-step")).to_have_count(0)
    expect(stop_ids).to_have_text(["WM-EARLY", "WM-LATER"])
    assert stop_sequence(shared) == ["WM-EARLY", "WM-LATER"]

    # Then yes (the customer agreed on the phone to a later delivery).
    move_later_up.click()
    step.get_by_role("button", name="Use this order anyway").click()
    expect(page.locator("#confirm-step")).to_have_count(0)
    expect(stop_ids).to_have_text(["WM-LATER", "WM-EARLY"])
    assert stop_sequence(shared) == ["WM-LATER", "WM-EARLY"]
    htmx_settled(page)
    shot(page, "moved")

    # 4. Publish: asked again, since EARLY still arrives after its window.
    page.locator("#publish").click()
    expect(step.locator("h2")).to_contain_text("Leaving now, in this stop order")
    expect(step.locator("li[data-order]")).to_have_text(re.compile("WM-EARLY"))
    htmx_settled(page)
    shot(page, "publish-question")
    step.get_by_role("button", name="Publish anyway").click()
    expect(page.locator("#batch-status")).to_have_text("Published")
    expect(page.locator("#messages")).to_contain_text(f"Batch {shared.pk} is published; offers to drivers will follow.")
    htmx_settled(page)
    shot(page, "published")
    assert Batch.objects.get(pk=shared.pk).status == Batch.Status.PUBLISHED

    # Back on the run's page, the party trip is accepted as proposed: the one draft left goes out.
    page.get_by_role("link", name="Auto-batch").click()
    page.locator("section.card").filter(has_text="Recent runs").get_by_role("link").first.click()
    expect(page.locator(f"section.proposal[data-batch='{shared.pk}'] .pill")).to_have_text("Published")
    page.locator("#publish-all").click()
    expect(page.locator("#messages .success")).to_have_text("1 batch published.")
    expect(party_card.locator(".pill")).to_have_text("Published")
    expect(page.locator("#publish-all")).to_have_count(0)  # no draft left to publish
    shot(page, "party-trip-published")
    assert Batch.objects.get(pk=party.pk).status == Batch.Status.PUBLISHED

    # 5. Handoff: a driver takes the batch and checks in at the store with the phone.
    driver = DriverFactory(
        user__first_name="Dana",
        user__last_name="Rivers",
        vehicle_color="Red",
        vehicle_make="Honda",
        vehicle_model="Fit",
        vehicle_plate="TN4242",
    )
    batch_set_status(batch=shared, to=Batch.Status.ASSIGNED, updates={"driver": driver})
    batch_check_in(batch=Batch.objects.get(pk=shared.pk), driver=driver, lat=store.lat, lng=store.lng)
    shared.refresh_from_db()
    wrong = "000000" if shared.pickup_code != "000000" else "111111"

    page.get_by_role("link", name="Handoff").click()
    handoff = page.locator(f"section.handoff[data-batch='{shared.pk}']")
    expect(handoff.locator("h3")).to_have_text("Dana R.")
    expect(handoff.locator(".bring-out h4")).to_have_text("Bring out 5 totes")
    expect(handoff.locator(".bring-out-orders li")).to_have_count(2)
    expect(handoff.locator("li[data-order='WM-LATER']")).to_contain_text("Ben Okafor · 2 totes")
    expect(handoff.locator("li[data-order='WM-EARLY']")).to_contain_text("Ana Pérez · 3 totes")
    shot(page, "handoff-card")

    code = handoff.get_by_label("Driver's pickup code")
    id_checked = handoff.get_by_label("ID checked: the name matches the driver")
    code.fill(wrong)
    id_checked.check()
    handoff.get_by_role("button", name="Hand over").click()
    error = handoff.locator(".handoff-error")  # in the card worked on, not at the page top
    expect(error).to_have_text("That pickup code does not match this batch. Nothing was handed over.")
    expect(error).to_be_in_viewport()
    expect(handoff).to_be_visible()
    shot(page, "wrong-code")
    assert Batch.objects.get(pk=shared.pk).status == Batch.Status.AT_STORE

    code.fill(shared.pickup_code)
    id_checked.check()
    handoff.get_by_role("button", name="Hand over").click()
    expect(page.locator("#messages .success")).to_have_text(f"Batch {shared.pk} handed over.")
    expect(handoff).to_have_count(0)
    shot(page, "handed-over")

    # The Batches list shows it picked up.
    page.get_by_role("link", name="Batches").click()
    row = page.locator("#batch-rows tr").filter(has=page.get_by_role("link", name=f"Batch {shared.pk}", exact=True))
    expect(row).to_contain_text("Picked up")
    shot(page, "batches-picked-up")
    shared.refresh_from_db()
    assert shared.status == Batch.Status.PICKED_UP
    statuses = dict(Order.objects.filter(store=store).values_list("external_id", "status"))
    assert statuses == {"WM-EARLY": "picked_up", "WM-LATER": "picked_up", "WM-PARTY": "ready"}
