"""The dashboard's time rules in a real browser at desk size: an associate moves a stop out of
its window order (a warning listing the order that would be late, then confirmed), publishes the
batch (asked again, then confirmed), and presses "Publish all drafts now" on an auto-batch run
with a draft that has its own ready-at (a confirm step; left scheduled unless ticked).

The clock is pinned at 22:10 in the store's zone (America/Chicago), 04:10 UTC the next day,
and ticks on from there: the live server reads the same clock."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from orders.batch_editing import batch_create, batch_publish, batch_schedule_publish
from orders.models import Batch, BatchingRun
from orders.tests.helpers import CENTRAL_NIGHT, order_in_window, stop_sequence
from stores.models import StoreMembership
from stores.tests.factories import StoreFactory, StoreMembershipFactory

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def night():
    with time_machine.travel(CENTRAL_NIGHT, tick=True):
        yield


@pytest.fixture
def shop(db):
    store = StoreFactory(name="Spark Night Market")
    associate = StoreMembershipFactory(store=store, role=StoreMembership.Role.ASSOCIATE).user
    return store, associate


def test_moving_a_stop_warns_and_publishing_late_asks_first(desktop_page, shop, force_login, shot, htmx_settled):
    page = desktop_page
    store, associate = shop
    early = order_in_window(
        store,
        starts_in=10,
        external_id="EARLY",
        customer_name="Ana Pérez",
        lat=Decimal("36.165"),
        lng=Decimal("-86.775"),
    )
    later = order_in_window(store, starts_in=120, external_id="LATER", lat=Decimal("36.140"), lng=Decimal("-86.760"))
    batch = batch_create(store=store, orders=[early, later])

    force_login(page, associate)
    page.goto(f"/dashboard/s/{store.pk}/batches/{batch.pk}/")
    stop_ids = page.locator("#stops li.stop .what b")
    expect(stop_ids).to_have_text(["EARLY", "LATER"])

    # LATER (00:10-01:10) first: the driver waits for its window, and EARLY's (22:20-23:20) closes.
    page.locator("#stops li.stop").filter(has_text="LATER").get_by_role("button", name="Move up").click()
    step = page.locator("#confirm-step")
    expect(step).to_be_visible()
    expect(step.locator("h2")).to_have_text("In this order, these deliveries would arrive after their window closes:")
    warned = step.locator("li[data-order]")
    expect(warned).to_have_count(1)
    expect(warned).to_contain_text("EARLY")
    expect(warned).to_contain_text("Ana Pérez")
    expect(warned).to_contain_text("window 10:20 PM–11:20 PM")
    expect(warned).to_contain_text(re.compile(r"arrives about 12:\d\d AM"))
    expect(stop_ids).to_have_text(["EARLY", "LATER"])  # nothing moved yet
    assert stop_sequence(batch) == ["EARLY", "LATER"]
    htmx_settled(page)
    shot(page, "move-warning")

    step.get_by_role("button", name="Use this order anyway").click()
    expect(page.locator("#confirm-step")).to_have_count(0)
    expect(stop_ids).to_have_text(["LATER", "EARLY"])
    assert stop_sequence(batch) == ["LATER", "EARLY"]
    htmx_settled(page)
    shot(page, "moved")

    # Publishing it is asked too: leaving now, EARLY still arrives after its window.
    page.locator("#publish").click()
    expect(step).to_be_visible()
    expect(step.locator("h2")).to_contain_text("Leaving now, in this stop order")
    expect(step.locator("li[data-order]")).to_have_text(re.compile("EARLY"))
    expect(page.locator("#batch-status")).to_have_text("Draft")
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.DRAFT
    htmx_settled(page)
    shot(page, "publish-question")

    step.get_by_role("button", name="Publish anyway").click()
    expect(page.locator("#batch-status")).to_have_text("Published")
    expect(page.locator("#messages")).to_contain_text(f"Batch {batch.pk} is published; offers to drivers will follow.")
    expect(page.locator("#confirm-step")).to_have_count(0)
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.PUBLISHED
    htmx_settled(page)
    shot(page, "published")


def test_publish_all_keeps_a_drafts_own_ready_at_unless_ticked(desktop_page, shop, force_login, shot):
    page = desktop_page
    store, associate = shop
    now = timezone.now()
    run = BatchingRun.objects.create(store=store, status=BatchingRun.Status.DONE, window_from=now, window_to=now)
    free = batch_create(store=store, orders=[order_in_window(store, starts_in=60)], batching_run=run)
    scheduled = batch_create(store=store, orders=[order_in_window(store, starts_in=90)], batching_run=run)
    also_scheduled = batch_create(store=store, orders=[order_in_window(store, starts_in=90)], batching_run=run)
    batch_schedule_publish(batch=scheduled, ready_at=now + timedelta(minutes=30))
    batch_schedule_publish(batch=also_scheduled, ready_at=now + timedelta(minutes=50))

    force_login(page, associate)
    page.goto(f"/dashboard/s/{store.pk}/auto/{run.pk}/")
    page.locator("#publish-all").click()

    step = page.locator("#publish-all-step #confirm-step")
    expect(step).to_be_visible()
    expect(step).to_contain_text("1 draft is ready to go now.")
    expect(step.locator(f"li[data-batch='{scheduled.pk}']")).to_contain_text(
        f"Publish batch {scheduled.pk} now instead of at 10:40 PM"
    )
    expect(step.locator(f"li[data-batch='{also_scheduled.pk}']")).to_contain_text("11:00 PM")
    expect(step.locator("input[name=confirm]:checked")).to_have_count(0)  # left scheduled unless ticked
    assert set(Batch.objects.filter(batching_run=run).values_list("status", flat=True)) == {"draft"}
    shot(page, "publish-all-question")

    step.get_by_label(f"Publish batch {scheduled.pk} now instead of at 10:40 PM").check()
    step.get_by_role("button", name="Publish the drafts that are ready and the ones ticked").click()

    expect(page).to_have_url(re.compile(rf"/dashboard/s/{store.pk}/auto/{run.pk}/$"))
    expect(page.locator("#messages .success")).to_have_text("2 batches published.")
    expect(page.locator("#messages .info")).to_have_text(
        f"Batch {also_scheduled.pk} stays scheduled: it publishes itself at 11:00 PM."
    )
    shot(page, "publish-all-answered")
    statuses = dict(Batch.objects.filter(batching_run=run).values_list("pk", "status"))
    assert statuses == {free.pk: "published", scheduled.pk: "published", also_scheduled.pk: "draft"}
    assert Batch.objects.get(pk=also_scheduled.pk).ready_at == now + timedelta(minutes=50)


def test_queue_flags_waiting_orders_first_and_at_risk_says_how_late(desktop_page, shop, force_login, shot):
    page = desktop_page
    store, associate = shop
    order_in_window(store, starts_in=-25, external_id="WAITING", customer_name="Luis Gómez")
    order_in_window(store, starts_in=40, external_id="NOT-YET")
    late = batch_create(store=store, orders=[order_in_window(store, starts_in=60, hours=3)])
    batch_publish(batch=late)
    Batch.objects.filter(pk=late.pk).update(pickup_by=timezone.now() - timedelta(minutes=12))

    force_login(page, associate)
    page.goto(f"/dashboard/s/{store.pk}/")

    flagged = page.locator("#window-started")
    expect(flagged.locator("h2")).to_have_text("Delivery window started, no batch yet")
    expect(flagged.locator("li[data-order]")).to_have_count(1)
    expect(flagged.locator("li[data-order='WAITING']")).to_contain_text("Luis Gómez")
    expect(flagged.locator("li[data-order='WAITING']")).to_contain_text("window 9:45 PM–10:45 PM")
    expect(flagged.locator("li[data-order='WAITING']")).to_contain_text("started 25\xa0minutes ago")
    # Above the queue's own list, where the associate looks first.
    flagged_top = flagged.bounding_box()["y"]
    assert flagged_top < page.locator("#build-form").bounding_box()["y"]
    expect(page.locator("tr[data-order='WAITING']")).to_contain_text("no batch yet")
    expect(page.locator("tr[data-order='NOT-YET']")).not_to_contain_text("no batch yet")

    risk = page.locator(f"#at-risk li[data-batch='{late.pk}']")
    expect(risk.locator(".lateness")).to_have_text("12 min late")
    expect(risk).to_contain_text("pick up by 9:58 PM")
    shot(page, "queue-flags")
