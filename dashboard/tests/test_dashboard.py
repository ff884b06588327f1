"""Staff dashboard flows through the Django test client: build, edit, auto-batch, publish,
handoff, return; scoping by StoreMembership; bad input refused with nothing changed."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from dashboard.tests.helpers import make_orders, url
from orders.batch_editing import batch_create, batch_publish, batches_publish_due
from orders.batching_runs import batching_run_execute
from orders.cancellation import order_cancel
from orders.delivery import batch_check_in, batch_handoff
from orders.models import Batch, BatchingRun, Order, Stop
from orders.tests.factories import OrderFactory
from orders.tests.helpers import make_batch, slot_seat
from orders.transitions import batch_set_status, order_set_status, stop_set_status
from stores.tests.factories import StoreFactory, StoreMembershipFactory


def build(staff, store, orders):
    return staff.post(url(store, "batches/new/"), {"order": [o.pk for o in orders]})


def test_dashboard_home_redirects_to_my_store(staff, store):
    res = staff.get("/dashboard/")
    assert res.status_code == 302 and res.url == url(store)


def test_non_member_gets_403_page_and_other_store_is_404(client, staff, store, other_store):
    assert staff.get(url(other_store)).status_code == 404
    theirs = batch_create(store=other_store, orders=make_orders(other_store, 1))
    assert staff.get(url(other_store, f"batches/{theirs.pk}/")).status_code == 404
    assert staff.get(url(store, f"batches/{theirs.pk}/")).status_code == 404
    client.logout()
    from stores.tests.factories import UserFactory

    client.force_login(UserFactory())
    assert client.get("/dashboard/").status_code == 403


def test_anonymous_is_sent_to_login(client, store):
    res = client.get(url(store))
    assert res.status_code == 302 and "/accounts/login/" in res.url


def test_queue_groups_orders_by_window_with_counts_and_search(staff, store, other_store):
    mine = make_orders(store, 3)
    later = make_orders(store, 1, window_start=timezone.now() + timedelta(hours=5))
    OrderFactory(store=other_store, external_id="THEIRS-1")
    res = staff.get(url(store))
    body = res.content.decode()
    assert res.status_code == 200
    for o in mine + later:
        assert o.external_id in body
    assert "THEIRS-1" not in body
    assert body.count('class="card window"') == 2
    res = staff.get(url(store), {"q": mine[0].external_id})
    assert mine[0].external_id in res.content.decode() and mine[1].external_id not in res.content.decode()


def test_build_batch_by_hand_shows_route_totes_and_pay(staff, store):
    orders = make_orders(store, 3, totes=2)
    res = build(staff, store, orders)
    batch = Batch.objects.get()
    assert res.status_code == 302 and res.url == url(store, f"batches/{batch.pk}/")
    assert [s.order_id for s in batch.stops.order_by("sequence")] == [o.pk for o in orders]
    assert set(Order.objects.values_list("status", flat=True)) == {"batched"}
    page = staff.get(res.url).content.decode()
    assert 'id="tote-count">6 / 20' in page
    assert batch.route_meters > 0 and batch.pickup_by is not None
    assert 'id="pay">$' in page


def test_reorder_with_buttons_and_drag(staff, store):
    orders = make_orders(store, 3)
    build(staff, store, orders)
    batch = Batch.objects.get()
    s1, s2, s3 = batch.stops.order_by("sequence")
    staff.post(url(store, f"batches/{batch.pk}/stops/{s3.pk}/up/"))
    assert list(batch.stops.order_by("sequence").values_list("pk", flat=True)) == [s1.pk, s3.pk, s2.pk]
    staff.post(url(store, f"batches/{batch.pk}/reorder/"), {"stop": [s2.pk, s1.pk, s3.pk]})
    assert list(batch.stops.order_by("sequence").values_list("pk", flat=True)) == [s2.pk, s1.pk, s3.pk]
    # A sequence that does not list each stop once is refused and changes nothing.
    staff.post(url(store, f"batches/{batch.pk}/reorder/"), {"stop": [s2.pk, s2.pk, s3.pk]})
    assert list(batch.stops.order_by("sequence").values_list("pk", flat=True)) == [s2.pk, s1.pk, s3.pk]


def test_remove_and_add_orders(staff, store):
    orders = make_orders(store, 3)
    build(staff, store, orders[:2])
    batch = Batch.objects.get()
    first = batch.stops.get(sequence=1)
    staff.post(url(store, f"batches/{batch.pk}/stops/{first.pk}/remove/"))
    first.refresh_from_db()
    assert first.status == "removed"
    assert Order.objects.get(pk=orders[0].pk).status == "received"
    assert list(batch.stops.exclude(status="removed").values_list("sequence", flat=True)) == [1]
    staff.post(url(store, f"batches/{batch.pk}/add/"), {"order": [orders[2].pk]})
    assert batch.stops.exclude(status="removed").count() == 2


@pytest.mark.parametrize("case", ["other_store", "already_batched", "over_capacity", "too_many_stops", "empty"])
def test_bad_batch_building_is_refused_and_changes_nothing(staff, store, other_store, case):
    if case == "other_store":
        orders = [*make_orders(store, 1), *make_orders(other_store, 1)]
    elif case == "already_batched":
        taken = make_orders(store, 1)
        batch_create(store=store, orders=taken)
        orders = [*make_orders(store, 1), *taken]
    elif case == "over_capacity":
        orders = make_orders(store, 3, totes=8)
    elif case == "too_many_stops":
        orders = make_orders(store, 6, totes=1)
    else:
        orders = []
    before = (Batch.objects.count(), list(Order.objects.order_by("pk").values_list("status", flat=True)))
    res = build(staff, store, orders)
    assert res.status_code == 302 and res.url == url(store)
    assert (Batch.objects.count(), list(Order.objects.order_by("pk").values_list("status", flat=True))) == before
    messages = [str(m) for m in staff.get(url(store)).context["messages"]]
    assert messages and messages[0]


def test_adding_over_capacity_to_a_batch_is_refused(staff, store):
    orders = make_orders(store, 2, totes=9)
    build(staff, store, orders[:1])
    batch = Batch.objects.get()
    extra = make_orders(store, 1, totes=12)
    res = staff.post(url(store, f"batches/{batch.pk}/add/"), {"order": [extra[0].pk]}, follow=True)
    assert "totes" in res.content.decode()
    assert batch.stops.exclude(status="removed").count() == 1
    assert Order.objects.get(pk=extra[0].pk).status == "received"


def test_publish_marks_orders_ready_and_empty_publish_is_refused(staff, store):
    orders = make_orders(store, 2)
    build(staff, store, orders)
    batch = Batch.objects.get()
    staff.post(url(store, f"batches/{batch.pk}/publish/"))
    batch.refresh_from_db()
    assert batch.status == "published" and batch.published_at
    assert set(Order.objects.values_list("status", flat=True)) == {"ready"}
    # Publishing again changes nothing.
    staff.post(url(store, f"batches/{batch.pk}/publish/"))
    assert batch.events.filter(to_status="published").count() == 1

    empty = Batch.objects.create(store=store)
    res = staff.post(url(store, f"batches/{empty.pk}/publish/"), follow=True)
    empty.refresh_from_db()
    assert empty.status == "draft"
    assert "empty batch" in res.content.decode()


def test_ready_at_publishes_when_due(staff, store):
    orders = make_orders(store, 1)
    build(staff, store, orders)
    batch = Batch.objects.get()
    ready_at = timezone.localtime(timezone.now() + timedelta(minutes=10))
    staff.post(url(store, f"batches/{batch.pk}/ready-at/"), {"ready_at": ready_at.strftime("%Y-%m-%dT%H:%M")})
    batch.refresh_from_db()
    assert batch.status == "draft" and batch.ready_at is not None
    assert batches_publish_due() == 0  # not due yet
    Batch.objects.filter(pk=batch.pk).update(ready_at=timezone.now() - timedelta(seconds=1))
    assert batches_publish_due() == 1
    assert batches_publish_due() == 0  # idempotent
    batch.refresh_from_db()
    assert batch.status == "published"


def test_unpublish_and_discard(staff, store):
    orders = make_orders(store, 2)
    build(staff, store, orders)
    batch = Batch.objects.get()
    staff.post(url(store, f"batches/{batch.pk}/publish/"))
    staff.post(url(store, f"batches/{batch.pk}/unpublish/"))
    batch.refresh_from_db()
    assert batch.status == "draft"
    assert set(Order.objects.values_list("status", flat=True)) == {"batched"}
    staff.post(url(store, f"batches/{batch.pk}/discard/"), {"confirmed": "1"})
    batch.refresh_from_db()
    assert batch.status == "cancelled"
    assert set(Order.objects.values_list("status", flat=True)) == {"received"}
    assert not Stop.objects.exclude(status="removed").exists()


def _assigned_batch(store, driver):
    orders = make_orders(store, 2)
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    batch_set_status(batch=batch, to="assigned", updates={"driver": driver})
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    batch.refresh_from_db()
    return batch


def test_handoff_screen_and_wrong_code(staff, store, driver):
    batch = _assigned_batch(store, driver)
    page = staff.get(url(store, "handoff/")).content.decode()
    assert driver.user.first_name in page and driver.vehicle_plate in page and "waiting" in page
    wrong = "000000" if batch.pickup_code != "000000" else "111111"
    res = staff.post(
        url(store, f"handoff/{batch.pk}/"),
        {f"b{batch.pk}-pickup_code": wrong, f"b{batch.pk}-face_matches": "on"},
        follow=True,
    )
    assert "does not match" in res.content.decode()
    batch.refresh_from_db()
    assert batch.status == "at_store"
    # Without confirming the face, nothing happens either.
    staff.post(url(store, f"handoff/{batch.pk}/"), {f"b{batch.pk}-pickup_code": batch.pickup_code})
    batch.refresh_from_db()
    assert batch.status == "at_store"


def test_handoff_with_right_code(staff, store, driver):
    batch = _assigned_batch(store, driver)
    staff.post(
        url(store, f"handoff/{batch.pk}/"),
        {f"b{batch.pk}-pickup_code": batch.pickup_code, f"b{batch.pk}-face_matches": "on"},
    )
    batch.refresh_from_db()
    assert batch.status == "picked_up" and batch.picked_up_at
    assert set(Order.objects.filter(stops__batch=batch).values_list("status", flat=True)) == {"picked_up"}


def test_return_check_in(staff, store, driver):
    batch = _assigned_batch(store, driver)
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    stop = batch.stops.order_by("sequence").first()
    stop_set_status(stop=stop, to="failed", updates={"failure_reason": "no_one_home"})
    order_set_status(order=stop.order, to="undeliverable")
    batch_set_status(batch=batch, to="returning")
    page = staff.get(url(store, "returns/")).content.decode()
    assert stop.order.external_id in page
    # A bogus reason is refused.
    staff.post(url(store, f"returns/{stop.order.pk}/"), {f"o{stop.order.pk}-reason": "aliens"})
    assert Order.objects.get(pk=stop.order.pk).status == "undeliverable"
    staff.post(url(store, f"returns/{stop.order.pk}/"), {f"o{stop.order.pk}-reason": "no_one_home"})
    order = Order.objects.get(pk=stop.order.pk)
    assert order.status == "returned" and order.return_reason == "no_one_home"
    batch.refresh_from_db()
    assert batch.status == "returned"


def test_autobatch_flow(staff, store):
    orders = make_orders(store, 12, totes=3)
    start = timezone.localtime(orders[0].window_start - timedelta(minutes=30))
    res = staff.post(
        url(store, "auto/"),
        {
            "window_from": start.strftime("%Y-%m-%dT%H:%M"),
            "window_to": (start + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    run = BatchingRun.objects.get()
    assert res.status_code == 302 and res.url == url(store, f"auto/{run.pk}/")
    assert "Waiting for a worker" in staff.get(res.url).content.decode()
    assert batching_run_execute(run_id=run.pk) is True
    assert batching_run_execute(run_id=run.pk) is False  # runs once
    run.refresh_from_db()
    assert run.status == "done" and run.batches_proposed >= 2
    batches = list(run.batches.all())
    assert sum(b.stops.count() for b in batches) == 12
    for b in batches:
        assert b.status == "draft"
        assert sum(s.order.totes for s in b.stops.all()) <= store.batch_max_totes
        assert b.stops.count() <= store.batch_max_stops
    page = staff.get(url(store, f"auto/{run.pk}/")).content.decode()
    assert 'id="map"' in page and page.count('class="card proposal"') == len(batches)
    # Discard one, publish the rest.
    staff.post(
        url(store, f"batches/{batches[0].pk}/discard/"), {"next": url(store, f"auto/{run.pk}/"), "confirmed": "1"}
    )
    staff.post(url(store, f"auto/{run.pk}/publish/"))
    statuses = sorted(Batch.objects.filter(batching_run=run).values_list("status", flat=True))
    assert statuses == sorted(["cancelled"] + ["published"] * (len(batches) - 1))


def test_autobatch_page_shows_how_long_the_solver_has_been_working(staff, store):
    """The solver stops when its plan stops improving, not at a set time: the polled view says
    how long it has been working, not a share done, and reloads the page once it is done."""
    now = timezone.now().replace(microsecond=0)
    start = timezone.localtime(now)
    window = {
        "window_from": start.strftime("%Y-%m-%dT%H:%M"),
        "window_to": (start + timedelta(hours=10)).strftime("%Y-%m-%dT%H:%M"),
    }
    poll = staff.post(url(store, "auto/"), window).url
    run = BatchingRun.objects.get()
    with time_machine.travel(now, tick=False):
        assert "Waiting for a worker" in staff.get(poll, HTTP_HX_REQUEST="true").content.decode()
        BatchingRun.objects.filter(pk=run.pk).update(status="running", started_at=now - timedelta(seconds=7))
        res = staff.get(poll, HTTP_HX_REQUEST="true")
        body = res.content.decode()
        assert res.status_code == 200 and body.lstrip().startswith('<div id="progress"')  # the fragment only
        assert "Working… 7 s" in body and "10 s at most" in body
        assert "value=" not in body  # no made-up percentage
        assert "Working… 7 s" in staff.get(poll).content.decode()  # the full page says the same
    BatchingRun.objects.filter(pk=run.pk).update(status="done", finished_at=now)
    res = staff.get(poll, HTTP_HX_REQUEST="true")
    assert res.status_code == 204 and res["HX-Refresh"] == "true"


def test_autobatch_form_validation(staff, store):
    now = timezone.localtime()
    res = staff.post(
        url(store, "auto/"),
        {
            "window_from": now.strftime("%Y-%m-%dT%H:%M"),
            "window_to": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert res.status_code == 200 and "end must be after" in res.content.decode()
    assert not BatchingRun.objects.exists()


def test_associate_of_several_stores_can_switch(client, associate, store):
    second = StoreFactory()
    StoreMembershipFactory(user=associate, store=second)
    client.force_login(associate)
    page = client.get(url(store)).content.decode()
    assert f"#{second.number}" in page
    assert client.get(url(second)).status_code == 200


# Local noon in the store's zone (America/Chicago): the orders' windows (two hours on) fall on the
# zone's day, whatever time of day the suite runs (run after 22:00 there, they fell on the next).
@time_machine.travel(datetime(2026, 12, 2, 18, 0, tzinfo=UTC), tick=True)
def test_metrics_and_at_risk(staff, store, driver):
    batch = _assigned_batch(store, driver)
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    risky = batch_create(store=store, orders=make_orders(store, 1))
    batch_publish(batch=risky)
    Batch.objects.filter(pk=risky.pk).update(pickup_by=timezone.now() + timedelta(minutes=10))
    res = staff.get(url(store))
    ctx = res.context
    assert ctx["metrics"]["orders"] == 3
    assert ctx["metrics"]["avg_dispense"] is not None
    assert [x.batch.pk for x in ctx["at_risk"]] == [risky.pk]
    assert 'id="at-risk"' in res.content.decode()


def test_batch_list_counts_live_stops_only(staff, store):
    """A stop the associate removed, or whose order the store cancelled, is no longer part of
    the trip: the open-batches list counts what the driver will actually deliver."""
    orders = make_orders(store, 4)
    build(staff, store, orders)
    batch = Batch.objects.get()
    removed = batch.stops.get(order=orders[0])
    staff.post(url(store, f"batches/{batch.pk}/stops/{removed.pk}/remove/"))
    order_cancel(order=Order.objects.get(pk=orders[1].pk), reason="customer cancelled")
    assert batch.stops.count() == 4 and batch.stops.exclude(status="removed").count() == 2

    page = staff.get(url(store, "batches/")).content.decode()

    row = page.split(f'href="{url(store, f"batches/{batch.pk}/")}"', 1)[1].split("</tr>", 1)[0]
    assert "<td>2</td>" in row and "<td>4</td>" not in row


# --- the associate confirms a driver is here --------------------------------------------------


def test_confirm_driver_is_here_checks_in_the_batch_and_the_slot_seat(staff, store, driver, associate):
    batch, _ = make_batch(store, driver, picked_up=False)
    seat = slot_seat(store, driver)
    page = staff.get(url(store, "handoff/")).content.decode()
    assert page.count("Confirm driver is here") == 2  # the batch on its way, the slot seat
    res = staff.post(url(store, f"handoff/{batch.pk}/here/"), follow=True)
    assert f"{driver.user.first_name} is checked in at the store." in res.content.decode()
    batch.refresh_from_db()
    seat.refresh_from_db()
    assert batch.status == "at_store" and batch.events.get(to_status="at_store").actor == associate
    assert seat.status == "checked_in" and seat.checked_in_by == associate
    # the page now shows the driver waiting, with no more confirm buttons; a repeat changes nothing
    page = staff.get(url(store, "handoff/")).content.decode()
    assert "Confirm driver is here" not in page and "waiting" in page
    staff.post(url(store, f"handoff/{batch.pk}/here/"))
    assert batch.events.filter(to_status="at_store").count() == 1


def test_confirm_a_slot_seat_checks_in_the_batch_too(staff, store, driver):
    batch, _ = make_batch(store, driver, picked_up=False)
    seat = slot_seat(store, driver)
    staff.post(url(store, f"slot-seats/{seat.pk}/here/"))
    batch.refresh_from_db()
    seat.refresh_from_db()
    assert (batch.status, seat.status) == ("at_store", "checked_in")


def test_another_stores_associate_cannot_confirm(client, store, other_store, driver):
    batch, _ = make_batch(store, driver, picked_up=False)
    seat = slot_seat(store, driver)
    client.force_login(StoreMembershipFactory(store=other_store).user)
    for path in (f"handoff/{batch.pk}/here/", f"slot-seats/{seat.pk}/here/"):
        assert client.post(url(store, path)).status_code == 404
        assert client.post(url(other_store, path)).status_code == 404
    batch.refresh_from_db()
    seat.refresh_from_db()
    assert (batch.status, seat.status) == ("assigned", "claimed")
