"""Being at the store is one fact (issue 12), in a real browser: a driver at the store checks in
for their batch and their slot shows checked in too (phone); a driver far away is told the
distance in miles and how to get an associate to confirm them, without location as well; the
associate confirms them on the desk (desk size) and the driver's phone moves on by itself."""

import pytest
from playwright.sync_api import Page, expect

from drivers.tests.factories import DriverFactory
from orders.models import Batch
from orders.tests.helpers import make_batch, north_of, slot_seat
from stores.models import StoreMembership
from stores.tests.factories import StoreFactory, StoreMembershipFactory
from tests.browser.flow_helpers import AT_STORE, AUTO_ADVANCE_MS

pytestmark = pytest.mark.slow


@pytest.fixture
def world(transactional_db):
    store = StoreFactory(name="Green Hills Market")
    driver = DriverFactory(home_zone=store.zone, user__first_name="Ana", user__last_name="Quintero")
    batch, _ = make_batch(store, driver, picked_up=False)
    seat = slot_seat(store, driver)
    associate = StoreMembershipFactory(store=store, role=StoreMembership.Role.ASSOCIATE).user
    return {"store": store, "driver": driver, "batch": batch, "seat": seat, "associate": associate}


@pytest.fixture
def phone_at(new_page, phone_context_args):
    """phone_at(position): a phone whose browser gives the page that position; None: location off."""

    def make(position: dict | None) -> Page:
        if position is None:
            return new_page(**phone_context_args)
        return new_page(**phone_context_args, geolocation=position, permissions=["geolocation"])

    return make


def _far(store) -> dict:
    lat, lng = north_of(store, 10_000)
    return {"latitude": float(lat), "longitude": float(lng), "accuracy": 15}


def _my_slot(page: Page):
    return page.get_by_test_id("my-slot")


def test_a_driver_at_the_store_checks_in_once_for_the_batch_and_the_slot(
    world, phone_at, force_login, shot, fits_width
):
    phone = phone_at(AT_STORE)
    force_login(phone, world["driver"].user)
    phone.goto("/driver/batch/")
    shot(phone, "on the way")
    phone.get_by_test_id("check-in").click()
    expect(phone.locator("#batch-main[data-phase=at_store]")).to_have_count(1)
    expect(phone.get_by_test_id("check-in")).to_have_count(0)
    shot(phone, "at the store")
    phone.goto("/driver/")
    expect(_my_slot(phone)).to_contain_text("Checked in")
    expect(phone.get_by_test_id("slot-check-in")).to_have_count(0)
    fits_width(phone)
    shot(phone, "slot checked in")
    world["batch"].refresh_from_db()
    world["seat"].refresh_from_db()
    assert (world["batch"].status, world["seat"].status) == (Batch.Status.AT_STORE, "checked_in")


def test_a_driver_far_away_is_told_the_miles_and_the_associate_confirms_them(
    world, phone_at, new_page, desktop_context_args, force_login, shot, fits_width
):
    phone = phone_at(_far(world["store"]))
    force_login(phone, world["driver"].user)
    # the batch's "I'm here" from 6.2 miles away: refused, with the way out on screen
    phone.goto("/driver/batch/")
    phone.get_by_test_id("check-in").click()
    help_box = phone.get_by_test_id("check-in-help")
    expect(help_box).to_be_visible()
    expect(phone.get_by_test_id("check-in-refused")).to_have_text(
        "You are 6.2 miles from the store; check in within 820 feet of it, or ask an associate to confirm you are here."
    )
    expect(help_box).to_contain_text("Confirm driver is here")
    fits_width(phone)
    shot(phone, "batch check-in refused far away")
    # the slot's check-in says the same
    phone.goto("/driver/")
    phone.get_by_test_id("slot-check-in").click()
    expect(phone.get_by_test_id("slot-check-in-refused")).to_contain_text("You are 6.2 miles from the store")
    expect(phone.get_by_test_id("slot-check-in-help")).to_contain_text("ask an associate to confirm you are here")
    fits_width(phone)
    shot(phone, "slot check-in refused far away")
    world["batch"].refresh_from_db()
    assert world["batch"].status == Batch.Status.ASSIGNED

    # the associate, at the desk, confirms the driver is here
    phone.goto("/driver/batch/")
    desk = new_page(**desktop_context_args)
    force_login(desk, world["associate"])
    desk.goto(f"/dashboard/s/{world['store'].pk}/handoff/")
    card = desk.locator(f"[data-batch='{world['batch'].pk}']")
    expect(card).to_contain_text("on the way")
    shot(desk, "desk before")
    card.get_by_role("button", name="Confirm driver is here").click()
    expect(desk.get_by_text("Ana is checked in at the store.")).to_be_visible()
    expect(desk.locator(f"[data-batch='{world['batch'].pk}']")).to_contain_text("waiting")
    expect(desk.get_by_role("button", name="Confirm driver is here")).to_have_count(0)  # the slot seat too
    shot(desk, "desk after")

    # the driver's batch page moves on by itself; the slot shows checked in
    expect(phone.locator("#batch-main[data-phase=at_store]")).to_have_count(1, timeout=AUTO_ADVANCE_MS)
    phone.goto("/driver/")
    expect(_my_slot(phone)).to_contain_text("Checked in")
    shot(phone, "checked in by the associate")
    world["seat"].refresh_from_db()
    assert world["seat"].checked_in_by == world["associate"]


def test_without_location_the_driver_sees_the_same_way_out(world, phone_at, force_login, shot):
    phone = phone_at(None)
    force_login(phone, world["driver"].user)
    phone.goto("/driver/batch/")
    phone.get_by_test_id("check-in").click()
    expect(phone.get_by_test_id("check-in-refused")).to_have_text(
        "Share your location to check in, or ask an associate to confirm you are here."
    )
    expect(phone.get_by_test_id("check-in-help")).to_contain_text("Confirm driver is here")
    shot(phone, "no location")
