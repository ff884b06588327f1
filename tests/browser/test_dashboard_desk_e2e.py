"""The associate's desk in a real browser at desk size (1280x800): refused htmx actions show their
message where the associate looks, the handoff card (what to bring out, the ID check, the lock
after wrong codes), confirmations before revoking, removing or cancelling, an API key shown once
after a redirect, slot templates edited and deleted, and the Batches list refreshing itself.
"""

import re
from datetime import time, timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from drivers.tests.factories import DriverFactory
from orders import handoff_guard
from orders.batch_editing import batch_create, batch_publish
from orders.delivery import batch_check_in
from orders.models import Batch, Stop
from orders.tests.factories import OrderFactory
from orders.transitions import batch_set_status
from outbox.models import Message
from stores import services as store_services
from stores.models import DeliverySlot, SlotTemplate, StoreApiKey, StoreMembership
from stores.tests.factories import StoreFactory, StoreMembershipFactory

pytestmark = pytest.mark.slow


@pytest.fixture
def shop(db):
    store = StoreFactory(name="Spark Desk Market")
    associate = StoreMembershipFactory(store=store, role=StoreMembership.Role.ASSOCIATE).user
    manager = StoreMembershipFactory(store=store, role=StoreMembership.Role.MANAGER).user
    return store, associate, manager


def _orders(store, totes: list[int], prefix: str = "DESK"):
    start = timezone.now() + timedelta(hours=2)
    return [
        OrderFactory(
            store=store,
            external_id=f"{prefix}-{i + 1:03d}",
            totes=n,
            window_start=start,
            window_end=start + timedelta(hours=2),
        )
        for i, n in enumerate(totes)
    ]


def _live_stops(batch) -> list[str]:
    stops = batch.stops.exclude(status=Stop.Status.REMOVED).order_by("sequence")
    return list(stops.values_list("order__external_id", flat=True))


def test_refused_batch_edits_show_the_message_next_to_the_control(desktop_page, shop, force_login, shot):
    page = desktop_page
    store, associate, _ = shop
    batch = batch_create(store=store, orders=_orders(store, [8, 8]))
    big = _orders(store, [8], prefix="BIG")[0]

    force_login(page, associate)
    page.goto(f"/dashboard/s/{store.pk}/batches/{batch.pk}/")
    page.locator("#add-order").select_option(str(big.pk))
    page.get_by_role("button", name="Add", exact=True).click()
    error = page.locator("form.add-orders .htmx-error")
    expect(error).to_have_text(f"That is 24 totes; one vehicle takes at most {store.batch_max_totes}.")
    expect(error).to_have_attribute("role", "alert")
    expect(page.locator("#stop-count")).to_have_text("2")
    shot(page, "over-totes")
    assert _live_stops(batch) == ["DESK-001", "DESK-002"]

    # The first stop is removed in another tab; this page still shows it.
    first = batch.stops.get(order__external_id="DESK-001")
    Stop.objects.filter(pk=first.pk).update(status=Stop.Status.REMOVED)
    row = page.locator("#stops li.stop").filter(has_text="DESK-001")
    row.get_by_role("button", name="Move down").click()
    expect(row.locator(".htmx-error")).to_have_text("That stop is not in this batch.")
    shot(page, "stop-gone")

    # Dropped in a new order that misses a stop (the list changed meanwhile): refused in place.
    page.evaluate("""() => {
        document.querySelector("#stops li.stop:last-child").remove();
        htmx.trigger("#reorder-form", "reorder");
    }""")
    expect(page.locator("#reorder-form > .htmx-error")).not_to_be_empty()
    page.reload()

    # Removing a stop asks first; saying no changes nothing, yes removes it and clears the error.
    other = page.locator("#stops li.stop").filter(has_text="DESK-002")
    page.once("dialog", lambda dialog: dialog.dismiss())
    other.get_by_role("button", name="Remove").click()
    page.wait_for_timeout(300)
    assert _live_stops(batch) == ["DESK-002"]
    page.once("dialog", lambda dialog: dialog.accept())
    other.get_by_role("button", name="Remove").click()
    expect(page.locator("#stop-count")).to_have_text("0")
    expect(page.locator(".htmx-error")).to_have_count(0)
    assert _live_stops(batch) == []


def test_htmx_errors_without_a_message_of_their_own_still_say_something(desktop_page, shop, force_login, shot):
    page = desktop_page
    store, associate, _ = shop
    batch = batch_create(store=store, orders=_orders(store, [1, 1]))
    force_login(page, associate)

    # The filter of the order queue after the associate was taken off the store: a 404 page.
    page.goto(f"/dashboard/s/{store.pk}/")
    StoreMembership.objects.filter(user=associate, store=store).delete()
    page.locator("form.filters select[name=status]").select_option("received")
    expect(page.locator("form.filters > .htmx-error")).to_have_text("That did not work. Reload the page and try again.")
    shot(page, "not-a-member-any-more")

    # A batch edit after the session ended says so, instead of swapping the login page in.
    StoreMembershipFactory(user=associate, store=store, role=StoreMembership.Role.ASSOCIATE)
    page.goto(f"/dashboard/s/{store.pk}/batches/{batch.pk}/")
    page.context.clear_cookies(name=settings.SESSION_COOKIE_NAME)  # the session ended; the CSRF cookie stays
    row = page.locator("#stops li.stop").first
    row.get_by_role("button", name="Move down").click()
    expect(row.locator(".htmx-error")).to_have_text("Your session has ended. Log in again to go on.")
    expect(page.locator("#batch-editor input[name=login]")).to_have_count(0)
    shot(page, "session-ended")


def test_handoff_card_lists_what_to_bring_out_and_locks_after_wrong_codes(
    desktop_page, shop, force_login, shot, ops_user
):
    page = desktop_page
    store, associate, _ = shop
    driver = DriverFactory(user__first_name="Dana", user__last_name="Rivers")
    orders = _orders(store, [2, 3])
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    batch_set_status(batch=batch, to=Batch.Status.ASSIGNED, updates={"driver": driver})
    batch_check_in(batch=batch, driver=driver, lat=store.lat, lng=store.lng)
    batch.refresh_from_db()
    wrong = "000000" if batch.pickup_code != "000000" else "111111"

    force_login(page, associate)
    page.goto(f"/dashboard/s/{store.pk}/handoff/")
    card = page.locator(f"section.handoff[data-batch='{batch.pk}']")
    expect(card.locator(".bring-out h4")).to_have_text("Bring out 5 totes")
    expect(card.locator(".bring-out-orders li")).to_have_count(2)
    expect(card.locator("li[data-order='DESK-001']")).to_contain_text("2 totes")
    expect(card.locator("li[data-order='DESK-002']")).to_contain_text("3 totes")
    # No photo to compare with: the associate checks the driver's ID.
    expect(card.get_by_label("ID checked: the name matches the driver")).to_be_visible()
    expect(card.get_by_text("face matches the photo")).to_have_count(0)
    shot(page, "card")

    for attempt in range(handoff_guard.HANDOFF_MAX_WRONG_CODES):
        card.get_by_label("Driver's pickup code").fill(wrong)
        card.get_by_label("ID checked: the name matches the driver").check()
        card.get_by_role("button", name="Hand over").click()
        if attempt < handoff_guard.HANDOFF_MAX_WRONG_CODES - 1:
            expect(card.locator(".handoff-error")).to_contain_text("does not match")  # in the card
    expect(card.locator(".handoff-locked")).to_contain_text(
        re.compile(r"Too many wrong pickup codes: this handoff is locked until \d{1,2}:\d\d")
    )
    expect(card.locator(".handoff-error")).to_have_count(0)  # said once, by the lock
    shot(page, "locked")

    # Even the right code waits for the lock to end; ops were told.
    card.get_by_label("Driver's pickup code").fill(batch.pickup_code)
    card.get_by_label("ID checked: the name matches the driver").check()
    card.get_by_role("button", name="Hand over").click()
    expect(card.locator(".handoff-locked")).to_contain_text("locked until")
    batch.refresh_from_db()
    assert batch.status == Batch.Status.AT_STORE
    assert Message.objects.filter(kind=handoff_guard.HANDOFF_LOCKED, payload__user_id=ops_user.pk).count() == 1


def test_manager_confirms_revoke_and_remove_and_sees_a_new_key_once(desktop_page, shop, force_login, shot):
    page = desktop_page
    store, associate, manager = shop
    driver = DriverFactory()
    force_login(page, manager)
    page.goto(f"/dashboard/s/{store.pk}/team/")

    page.get_by_label("Key name (the system that will use it)").fill("checkout")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key code")).to_have_text(re.compile(r"^spk_"))
    shot(page, "new-key")
    page.reload()  # a GET after the redirect: no second key, and the key is not shown again
    expect(page.locator("#new-key")).to_have_count(0)
    assert StoreApiKey.objects.filter(store=store).count() == 1
    key = StoreApiKey.objects.get(store=store)

    revoke = page.get_by_role("button", name="Revoke")
    questions = []

    def answer(accept: bool):
        def handle(dialog):
            questions.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return handle

    page.once("dialog", answer(False))
    revoke.click()
    page.wait_for_timeout(300)
    assert questions == ["Revoke the key “checkout”? It stops working at once."]
    key.refresh_from_db()
    assert key.revoked_at is None
    page.once("dialog", answer(True))
    revoke.click()
    expect(page.locator("#messages .success")).to_have_text("Key revoked; it stops working now.")
    key.refresh_from_db()
    assert key.revoked_at is not None

    row = page.locator("tr").filter(has_text=associate.email)
    page.once("dialog", answer(True))
    row.get_by_role("button", name="Remove").click()
    expect(page.locator("#messages .success")).to_have_text("Removed.")
    assert questions[-1] == f"Remove {associate.email} from this store?"
    assert not StoreMembership.objects.filter(user=associate, store=store).exists()

    # A driver's account is refused with a clear message.
    page.get_by_label("Email of their Spark account").fill(driver.user.email)
    page.get_by_role("button", name="Add person").click()
    expect(page.locator("#messages .error")).to_contain_text(
        "is a driver's account, and a driver cannot be store staff"
    )
    shot(page, "driver-refused")
    assert not StoreMembership.objects.filter(user=driver.user).exists()


def test_manager_edits_and_deletes_a_slot_template(desktop_page, shop, force_login, shot):
    page = desktop_page
    store, _, manager = shop
    template = store_services.slot_template_create(
        store=store, weekdays="0123456", start_time=time(10), end_time=time(12), capacity=4
    )
    force_login(page, manager)
    page.goto(f"/dashboard/s/{store.pk}/slots/")
    page.locator("ul.templates li").first.get_by_role("link", name="Edit").click()
    form = page.locator("#slot-template-form")
    expect(form).to_contain_text("Editing Daily 10:00–12:00")
    form.get_by_label("From").fill("14:00")
    form.get_by_label("To").fill("16:00")
    form.get_by_label("Driver seats").fill("6")
    shot(page, "editing")
    form.get_by_role("button", name="Save changes").click()
    expect(page.locator("ul.templates li").first).to_contain_text("Daily 14:00–16:00, 6 seats")
    template.refresh_from_db()
    assert template.capacity == 6
    assert not DeliverySlot.objects.filter(store=store, capacity=4, starts_at__gt=timezone.now()).exists()

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("ul.templates li").first.get_by_role("button", name="Delete").click()
    expect(page.locator("#messages .success")).to_contain_text("Template deleted")
    expect(page.locator("ul.templates")).to_contain_text("No templates yet.")
    shot(page, "deleted")
    assert not SlotTemplate.objects.filter(store=store).exists()


def test_batches_list_refreshes_itself_and_keeps_the_scroll(desktop_page, shop, force_login):
    page = desktop_page
    store, associate, _ = shop
    for order in _orders(store, [1] * 30, prefix="OLD"):
        batch_create(store=store, orders=[order])
    force_login(page, associate)
    page.goto(f"/dashboard/s/{store.pk}/batches/")
    expect(page.locator("#batch-rows tr")).to_have_count(30)
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    scrolled = page.evaluate("window.scrollY")
    assert scrolled > 0

    fresh = batch_create(store=store, orders=_orders(store, [1], prefix="NEW"))
    expect(page.get_by_role("link", name=f"Batch {fresh.pk}", exact=True)).to_be_visible(timeout=25_000)
    assert page.evaluate("window.scrollY") == scrolled
