"""The staff dashboard in a real browser at a phone viewport: an associate builds, edits and
publishes a batch, hands a batch over to its driver, and runs auto-batching.

Each step is checked on screen (Playwright's auto-waiting expect) and in the database.
"""

import re
import zoneinfo
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from drivers.tests.factories import DriverFactory
from orders.batch_editing import batch_create, batch_publish
from orders.batching_runs import batching_run_execute
from orders.delivery import batch_check_in
from orders.models import Batch, BatchingRun, Order, Stop
from orders.tests.factories import OrderFactory
from orders.transitions import batch_set_status
from payments.services import pay_quote
from spark.money import format_cents
from stores.models import StoreMembership
from stores.tests.factories import StoreFactory, StoreMembershipFactory

pytestmark = pytest.mark.slow

# Customer addresses around downtown Nashville (the store is at 36.15, -86.79).
SPOTS = [
    ("36.165000", "-86.775000"),
    ("36.120000", "-86.800000"),
    ("36.180000", "-86.820000"),
    ("36.140000", "-86.760000"),
    ("36.175000", "-86.790000"),
    ("36.130000", "-86.830000"),
]


def _make_orders(store, n: int, *, start, hours: int = 2, prefix: str = "WEB") -> list[Order]:
    orders = []
    for i in range(n):
        lat, lng = SPOTS[i % len(SPOTS)]
        orders.append(
            OrderFactory(
                store=store,
                external_id=f"{prefix}-{i + 1:03d}",
                lat=Decimal(lat),
                lng=Decimal(lng),
                window_start=start,
                window_end=start + timedelta(hours=hours),
                totes=2 + i % 3,
            )
        )
    return orders


def _next_hour():
    return (timezone.now() + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def shop(db):
    store = StoreFactory(name="Spark Test Market")
    associate = StoreMembershipFactory(store=store, role=StoreMembership.Role.ASSOCIATE).user
    return store, associate


def _live_stop_orders(batch) -> list[str]:
    return list(
        batch.stops.exclude(status=Stop.Status.REMOVED)
        .order_by("sequence")
        .values_list("order__external_id", flat=True)
    )


def _miles(batch) -> str:
    batch.refresh_from_db()
    return str(round(batch.route_meters / 1609.344, 1))


def test_associate_builds_edits_and_publishes_a_batch(page, shop, login, shot, htmx_settled, fits_width):
    store, associate = shop
    start = _next_hour()
    early = _make_orders(store, 3, start=start, prefix="EARLY")
    # The later window opens while the early one is still open: the reorders below keep every
    # window, so no time warning stops them (test_dashboard_time_rules_e2e.py has those).
    late = _make_orders(store, 2, start=start + timedelta(hours=1), prefix="LATE")

    # Real login page, then on to the dashboard, which opens the associate's store.
    login(page, associate, next_url="/dashboard/")
    expect(page).to_have_url(re.compile(rf"/dashboard/s/{store.pk}/$"))
    windows = page.locator("section.window")
    expect(windows).to_have_count(2)
    expect(windows.nth(0).locator("h3")).to_contain_text("3 orders")
    expect(windows.nth(1).locator("h3")).to_contain_text("2 orders")
    expect(windows.nth(0).locator("tr[data-order]")).to_have_count(3)
    expect(windows.nth(1).locator("tr[data-order]")).to_have_count(2)
    shot(page, "queue")

    picked = [early[0], early[1], late[0]]
    for o in picked:
        page.get_by_label(f"Select {o.external_id}").check()
    expect(page.locator("#queue input[name=order]:checked")).to_have_count(3)
    shot(page, "queue-selected")

    page.locator("#build-batch").click()
    expect(page).to_have_url(re.compile(rf"/dashboard/s/{store.pk}/batches/\d+/$"))
    batch = Batch.objects.get(store=store)
    assert batch.status == Batch.Status.DRAFT
    assert _live_stop_orders(batch) == [o.external_id for o in picked]
    assert set(Order.objects.filter(pk__in=[o.pk for o in picked]).values_list("status", flat=True)) == {"batched"}

    expect(page.locator("#batch-status")).to_have_text("Draft")
    expect(page.locator("#stop-count")).to_have_text("3")
    expect(page.locator("#tote-count")).to_have_text(f"{sum(o.totes for o in picked)} / {store.batch_max_totes}")
    expect(page.locator("#miles")).to_have_text(_miles(batch))
    expect(page.locator("#pay")).to_have_text(format_cents(pay_quote(batch=batch)["total_cents"]))
    stop_ids = page.locator("#stops li.stop .what b")
    expect(stop_ids).to_have_text([o.external_id for o in picked])
    expect(page.locator("#map.leaflet-container")).to_be_visible()
    fits_width(page)
    shot(page, "batch-draft")

    # ↓ on the first stop (a tap: it is a touch screen): it becomes the second.
    first = page.locator("#stops li.stop").filter(has_text=picked[0].external_id)
    first.get_by_role("button", name="Move down").tap()
    moved = [picked[1], picked[0], picked[2]]
    expect(stop_ids).to_have_text([o.external_id for o in moved])
    expect(page.locator("#stops li.stop .seq")).to_have_text(["1", "2", "3"])
    assert _live_stop_orders(batch) == [o.external_id for o in moved]
    expect(page.locator("#miles")).to_have_text(_miles(batch))

    # ↑ on the last stop: it swaps with the one above it.
    last = page.locator("#stops li.stop").filter(has_text=picked[2].external_id)
    last.get_by_role("button", name="Move up").click()
    moved = [picked[1], picked[2], picked[0]]
    expect(stop_ids).to_have_text([o.external_id for o in moved])
    assert _live_stop_orders(batch) == [o.external_id for o in moved]
    expect(page.locator("#miles")).to_have_text(_miles(batch))
    expect(page.locator("#pay")).to_have_text(format_cents(pay_quote(batch=batch)["total_cents"]))
    # The map is drawn again for the new sequence, inside its box.
    htmx_settled(page)
    expect(page.locator("#map")).to_have_class(re.compile(r"\bleaflet-container\b"))
    # One route line plus a marker for the store and for each stop.
    expect(page.locator("#map .leaflet-overlay-pane path")).to_have_count(1 + 1 + len(moved))
    fits_width(page)
    shot(page, "batch-reordered")

    page.locator("#publish").click()
    expect(page.locator("#batch-status")).to_have_text("Published")
    expect(page.locator("#messages")).to_contain_text(f"Batch {batch.pk} is published; offers to drivers will follow.")
    expect(page.locator("#publish")).to_have_count(0)
    expect(page.get_by_role("button", name="Pull back to draft")).to_be_visible()
    shot(page, "batch-published")

    batch.refresh_from_db()
    assert batch.status == Batch.Status.PUBLISHED
    assert batch.published_at is not None
    assert _live_stop_orders(batch) == [o.external_id for o in moved]
    statuses = dict(Order.objects.filter(store=store).values_list("external_id", "status"))
    assert statuses == {
        picked[0].external_id: "ready",
        picked[1].external_id: "ready",
        picked[2].external_id: "ready",
        early[2].external_id: "received",
        late[1].external_id: "received",
    }

    # Back in the queue the batched orders show as ready and can no longer be ticked.
    page.get_by_role("link", name="Orders").click()
    row = page.locator(f"tr[data-order='{picked[0].external_id}']")
    expect(row.locator(".pill")).to_have_text("Ready")
    expect(row.locator("input[type=checkbox]")).to_have_count(0)
    expect(page.get_by_label(f"Select {early[2].external_id}")).to_be_visible()
    shot(page, "queue-after-publish")


def test_handoff_checks_pickup_code_and_face(page, shop, force_login, shot):
    store, associate = shop
    driver = DriverFactory(
        user__first_name="Dana",
        user__last_name="Rivers",
        vehicle_color="Red",
        vehicle_make="Honda",
        vehicle_model="Fit",
        vehicle_plate="TN4242",
    )
    orders = _make_orders(store, 2, start=_next_hour())
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    batch_set_status(batch=batch, to=Batch.Status.ASSIGNED, updates={"driver": driver})
    batch.refresh_from_db()
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    # The driver checked in a while ago.
    Batch.objects.filter(pk=batch.pk).update(arrived_at_store_at=timezone.now() - timedelta(minutes=7, seconds=20))
    batch.refresh_from_db()
    wrong_code = "000000" if batch.pickup_code != "000000" else "111111"

    force_login(page, associate)
    page.goto(f"/dashboard/s/{store.pk}/handoff/")
    card = page.locator(f"section.handoff[data-batch='{batch.pk}']")
    expect(card.locator("h3")).to_have_text("Dana R.")
    expect(card).to_contain_text("Red Honda Fit · TN4242")
    expect(card.locator(".wait")).to_have_text(re.compile(r"^waiting (7|8|9) min$"))
    shot(page, "driver-waiting")

    def hand_over(code: str, *, face: bool):
        card = page.locator(f"section.handoff[data-batch='{batch.pk}']")
        card.get_by_label("Driver's pickup code").fill(code)
        if face:
            card.get_by_label("ID checked: the name matches the driver").check()
        card.get_by_role("button", name="Hand over").click()

    def nothing_handed_over():
        batch.refresh_from_db()
        assert batch.status == Batch.Status.AT_STORE
        assert batch.picked_up_at is None
        assert set(Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("status", flat=True)) == {"ready"}

    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    # The right code is not enough: the browser will not send the form before the ID is checked
    # (the driver has no photo to compare a face with).
    hand_over(batch.pickup_code, face=False)
    face = card.get_by_label("ID checked: the name matches the driver")
    assert face.evaluate("el => el.validity.valueMissing") is True
    assert posts == []
    nothing_handed_over()

    hand_over(wrong_code, face=True)
    expect(card.locator(".handoff-error")).to_have_text(
        "That pickup code does not match this batch. Nothing was handed over."
    )
    expect(card.get_by_label("Driver's pickup code")).to_be_focused()
    expect(card).to_be_visible()
    shot(page, "wrong-code")
    nothing_handed_over()

    hand_over(batch.pickup_code, face=True)
    expect(page.locator("#messages .success")).to_have_text(f"Batch {batch.pk} handed over.")
    expect(card).to_have_count(0)
    expect(page.get_by_text("No driver is waiting.")).to_be_visible()
    shot(page, "handed-over")

    batch.refresh_from_db()
    assert batch.status == Batch.Status.PICKED_UP
    assert batch.picked_up_at is not None
    assert set(Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("status", flat=True)) == {"picked_up"}


def test_auto_batch_proposes_trips_on_a_map(page, shop, force_login, shot):
    store, associate = shop
    start = _next_hour()
    orders = _make_orders(store, 6, start=start, hours=3, prefix="AUTO")
    local = zoneinfo.ZoneInfo(store.zone.timezone)
    window_from = timezone.localtime(start - timedelta(hours=1), local)
    window_to = timezone.localtime(start + timedelta(hours=4), local)

    force_login(page, associate)
    page.goto(f"/dashboard/s/{store.pk}/auto/")
    page.locator("input[name=window_from]").fill(window_from.strftime("%Y-%m-%dT%H:%M"))
    page.locator("input[name=window_to]").fill(window_to.strftime("%Y-%m-%dT%H:%M"))
    shot(page, "form")
    page.locator("#run-autobatch").click()

    expect(page).to_have_url(re.compile(rf"/dashboard/s/{store.pk}/auto/\d+/$"))
    run = BatchingRun.objects.get(store=store)
    assert run.status == BatchingRun.Status.QUEUED
    assert (run.window_from, run.window_to) == (window_from, window_to)
    expect(page.locator("#run-status")).to_have_text("Queued")
    expect(page.locator("#progress")).to_contain_text("Waiting for a worker")
    shot(page, "queued")

    # No Celery worker runs in this test: do what the worker would.
    assert batching_run_execute(run_id=run.pk) is True
    run.refresh_from_db()
    assert run.status == BatchingRun.Status.DONE, run.error
    proposed = list(run.batches.exclude(status=Batch.Status.CANCELLED).order_by("pk"))
    assert proposed and run.orders_considered == len(orders)

    # The page polls the run and reloads itself once it is done.
    expect(page.locator("#run-status")).to_have_text("Done")
    expect(page.locator("section.proposal")).to_have_count(len(proposed))
    expect(page.locator("#map.leaflet-container")).to_be_visible()
    expect(page.locator("#map .leaflet-overlay-pane path").first).to_be_attached()
    for b in proposed:
        card = page.locator(f"section.proposal[data-batch='{b.pk}']")
        expect(card.locator("ol li")).to_have_count(b.stops.exclude(status=Stop.Status.REMOVED).count())
    batched = [e for b in proposed for e in _live_stop_orders(b)]
    assert sorted(batched + [Order.objects.get(pk=i).external_id for i in run.unassigned_order_ids]) == sorted(
        o.external_id for o in orders
    )
    shot(page, "proposals")

    page.locator("#publish-all").click()
    expect(page.locator("#messages .success")).to_have_text(f"{len(proposed)} batches published.")
    shot(page, "published")
    assert set(Batch.objects.filter(pk__in=[b.pk for b in proposed]).values_list("status", flat=True)) == {"published"}


def test_auto_batch_page_counts_the_seconds_while_the_solver_works(page, shop, force_login, shot):
    """The solver stops once its plan stops improving: the page counts the seconds it has been
    working (no made-up share done) and shows the proposal once the run is done."""
    store, associate = shop
    now = timezone.now()
    run = BatchingRun.objects.create(
        store=store,
        window_from=now,
        window_to=now + timedelta(hours=10),
        status=BatchingRun.Status.RUNNING,
        started_at=now - timedelta(seconds=2),
        time_limit_seconds=10,
    )
    force_login(page, associate)
    page.goto(f"/dashboard/s/{store.pk}/auto/{run.pk}/")
    working = page.locator("#progress-working")
    expect(working).to_have_text(re.compile(r"^Working… \d+ s$"))
    first = int(re.search(r"\d+", working.inner_text()).group())
    # The fragment is polled every second: the count goes up while the run works.
    expect(working).not_to_have_text(f"Working… {first} s", timeout=5000)
    assert int(re.search(r"\d+", working.inner_text()).group()) > first
    expect(page.locator("#progress")).to_contain_text("10 s at most")
    shot(page, "working")

    BatchingRun.objects.filter(pk=run.pk).update(status=BatchingRun.Status.DONE, finished_at=timezone.now())
    expect(page.locator("#run-status")).to_have_text("Done")
    expect(page.locator("#progress")).to_have_count(0)


def test_browser_is_kept_off_the_network(desktop_page):
    """The fixtures abort every request that is not for the live server (map tiles and the like)."""
    desktop_page.goto("/accounts/login/")
    # An image, as Leaflet loads tiles: the Content-Security-Policy lets images come from the tile
    # host (a fetch() there would be stopped by connect-src before it reached the fixture).
    outcome = desktop_page.evaluate("""() => new Promise((done) => {
        const img = new Image();
        img.onload = () => done('fetched');
        img.onerror = () => done('failed');
        img.src = 'https://tile.openstreetmap.org/0/0/0.png';
    })""")
    assert outcome == "failed"
    assert desktop_page.blocked_urls == ["https://tile.openstreetmap.org/0/0/0.png"]
