"""The driver's state rules on a phone (Debian's Chromium, iPhone 13 viewport):
1. A batch whose pickup time has passed is marked "Late" on the open board, with the late
   incentive in the pay shown.
2. Going offline during a batch is refused with a message on the screen; the driver stays
   online.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from dispatch import feed, rounds
from drivers.services import driver_go_online
from drivers.tests.factories import DriverFactory
from orders.models import Batch
from payments.tests.factories import PayPolicyFactory
from spark.money import format_cents
from stores.tests.factories import StoreFactory, ZoneFactory
from tests.browser.flow_helpers import AT_STORE, make_orders, published_batch

pytestmark = pytest.mark.slow


@pytest.fixture
def world(transactional_db):
    zone = ZoneFactory()
    policy = PayPolicyFactory(zone=zone)
    store = StoreFactory(zone=zone, name="Green Hills Market")
    driver = DriverFactory(home_zone=zone, user__first_name="Ana")
    return {"zone": zone, "policy": policy, "store": store, "driver": driver}


@pytest.fixture
def phone(new_page, phone_context_args, force_login) -> Page:
    return new_page(**phone_context_args, geolocation=AT_STORE, permissions=["geolocation"])


def on_the_board(store) -> Batch:
    batch = published_batch(store, make_orders(store))
    assert rounds.dispatch_advance(batch_id=batch.pk) == Batch.Stage.BOARD
    Batch.objects.filter(pk=batch.pk).update(board_at=timezone.now() - timedelta(minutes=1))  # past the pool
    return batch


def test_a_late_batch_is_marked_late_on_the_board_with_the_late_pay(world, phone, force_login, shot, fits_width):
    store, driver = world["store"], world["driver"]
    batch = on_the_board(store)
    Batch.objects.filter(pk=batch.pk).update(pickup_by=timezone.now() - timedelta(minutes=5))
    rounds.dispatch_sweep()
    batch.refresh_from_db()
    assert batch.incentive_cents == world["policy"].incentive_cap_cents > 0

    force_login(phone, driver.user)
    phone.goto("/driver/offers/")
    card = phone.locator(f"[data-testid=board-card][data-batch-id='{batch.pk}']")
    expect(card.get_by_test_id("late")).to_have_text("Late")
    expect(card.get_by_test_id("late")).to_be_visible()
    [entry] = feed.board_for(driver, now=timezone.now())
    expect(card.locator(".pay-total")).to_have_text(format_cents(entry["pay_total_cents"]))
    incentive = card.get_by_test_id("pay-breakdown").locator("dt:text-is('Incentive') + dd")
    expect(incentive).to_have_text(format_cents(world["policy"].incentive_cap_cents))  # the late incentive
    fits_width(phone)
    shot(phone, "board-late")


def test_going_offline_during_a_batch_is_refused_on_the_screen(world, phone, force_login, shot, fits_width):
    store, driver = world["store"], world["driver"]
    batch = on_the_board(store)
    driver_go_online(driver=driver, lat=store.lat, lng=store.lng)
    assert rounds.board_claim(driver=driver, batch_id=batch.pk).outcome == "assigned"

    force_login(phone, driver.user)
    phone.goto("/driver/")
    expect(phone.get_by_test_id("duty-state")).to_contain_text("You are online")
    expect(phone.get_by_test_id("offline-after-batch")).to_have_text("You can go offline once your batch is done.")
    with phone.expect_response("**/api/v1/driver/offline/") as answer:
        phone.get_by_test_id("go-offline").click()
    assert answer.value.status == 409
    expect(phone.locator("#toast")).to_contain_text("You can't go offline during a batch.")
    expect(phone.get_by_test_id("duty-state")).to_contain_text("You are online")
    expect(phone.get_by_test_id("duty-pill")).to_have_text("Online")
    fits_width(phone)
    shot(phone, "offline-refused")
    driver.refresh_from_db()
    assert driver.is_online
