"""Contact without sharing numbers, and the Help screen, in a real browser.

1. On a phone, a driver at the pickup taps "Call the store", then after the handoff taps Call
   beside the customer's note asking for a call: each time the page shows the masked number
   (the console provider's stand-in) with Dial and Send a text links to it, and never the real
   number of the store or the customer.
2. The driver files a help report from the active batch screen (the batch attached), sees it
   waiting; ops at a desk find it in the admin's queue and resolve it; the driver sees it resolved.
"""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from drivers.tests.factories import DriverFactory
from orders.contact import CONSOLE_PROXY_NUMBER
from orders.delivery import batch_check_in, batch_handoff
from orders.models import SupportRequest
from orders.tests.helpers import make_batch
from payments.tests.factories import PayPolicyFactory
from stores.tests.factories import StoreFactory, UserFactory, ZoneFactory
from tests.browser.flow_helpers import top_offer

pytestmark = pytest.mark.slow

STORE_PHONE = "+16155550150"
MASKED = "(615) 555-0188"  # CONSOLE_PROXY_NUMBER as the app shows it


@pytest.fixture
def trip(transactional_db, settings):
    settings.SPARK_CONTACT_BACKEND = "console"
    zone = ZoneFactory()
    PayPolicyFactory(zone=zone)
    store = StoreFactory(zone=zone, name="Green Hills Market", phone=STORE_PHONE)
    driver = DriverFactory(home_zone=zone, user__first_name="Ana", user__last_name="Lopez")
    batch, stops = make_batch(store, driver, picked_up=False)
    order = stops[0].order
    order.notes = "Call me when here, the buzzer is broken"
    order.save(update_fields=["notes"])
    return {"store": store, "driver": driver, "batch": batch, "stops": stops}


def test_driver_calls_the_store_and_the_customer_through_a_masked_number(
    page, trip, force_login, shot, fits_width, htmx_settled
):
    batch, stops, driver = trip["batch"], trip["stops"], trip["driver"]
    force_login(page, driver.user)

    # At the pickup: call the store.
    page.goto("/driver/batch/")
    expect(page.locator("h1")).to_have_text("Pick up at Green Hills Market")
    store_panel = page.locator("#contact-store")
    expect(store_panel).to_be_hidden()
    page.get_by_test_id("store-call").click()
    expect(store_panel).to_be_visible()
    expect(store_panel.get_by_test_id("masked-number")).to_have_text(MASKED)
    expect(store_panel.get_by_test_id("dial")).to_have_attribute("href", f"tel:{CONSOLE_PROXY_NUMBER}")
    expect(store_panel.get_by_test_id("send-text")).to_have_attribute("href", f"sms:{CONSOLE_PROXY_NUMBER}")
    expect(store_panel).to_contain_text("the store does not see your number")
    assert STORE_PHONE not in page.content() and "555-0150" not in page.content()
    fits_width(page)
    shot(top_offer(page), "pickup-call-store")

    # The associate hands the batch over; the stops show, the note asking for a call has Call.
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    page.reload()
    expect(page.locator("h1")).to_have_text("Deliveries")
    card = page.locator(f"#stop-{stops[0].pk}")
    expect(card.get_by_test_id("customer-notes")).to_contain_text("Call me when here")
    panel = card.get_by_test_id("contact-panel")
    expect(panel).to_be_hidden()
    with page.expect_response(f"**/api/v1/driver/stops/{stops[0].pk}/contact/") as answered:
        card.get_by_test_id("note-call").click()
    assert answered.value.status == 200
    expect(panel).to_be_visible()
    expect(panel.get_by_test_id("masked-number")).to_have_text(MASKED)
    expect(panel.get_by_test_id("dial")).to_have_attribute("href", f"tel:{CONSOLE_PROXY_NUMBER}")
    expect(panel).to_contain_text("the customer does not see your number, and you do not see theirs")
    real = stops[0].order.customer_phone
    assert real not in page.content() and real[-4:] not in panel.inner_text()
    fits_width(page)
    shot(top_offer(page), "stop-call-customer")

    # Text works the same way (the same private line); the second stop, not yet open, has none.
    card.get_by_test_id("stop-text").click()
    expect(panel.get_by_test_id("send-text")).to_be_focused()
    expect(page.locator(f"#stop-{stops[1].pk}").get_by_test_id("stop-call")).to_have_count(0)


def test_driver_reports_a_problem_and_ops_resolve_it_in_the_admin_queue(
    page, desktop_page, trip, force_login, settings, shot, fits_width
):
    batch, driver = trip["batch"], trip["driver"]
    force_login(page, driver.user)

    # From the active batch screen, with the batch attached.
    page.goto("/driver/batch/")
    page.get_by_test_id("batch-help").click()
    expect(page).to_have_url(re.compile(rf"/driver/help/\?batch={batch.pk}$"))
    expect(page.locator("h1")).to_have_text("Report a problem")
    expect(page.locator("select[name=batch]")).to_have_value(str(batch.pk))
    # Sent without a topic and with too little text: both fields say what is wrong.
    page.locator("textarea[name=text]").fill("late")
    page.get_by_test_id("help-submit").click()
    expect(page.get_by_test_id("topic-error")).to_have_text("Choose what the problem is about.")
    expect(page.get_by_test_id("text-error")).to_contain_text("at least 10 characters")
    assert not SupportRequest.objects.exists()
    page.get_by_label("A store").check()
    page.locator("textarea[name=text]").fill("The pickup desk had <b>no totes</b> ready; waited 25 minutes.")
    fits_width(page)
    shot(top_offer(page), "help-form")
    page.get_by_test_id("help-submit").click()
    expect(page.locator("#messages")).to_contain_text("Sent. Ops see your report in their queue")
    report = page.get_by_test_id("help-report")
    expect(report).to_have_count(1)
    expect(report).to_contain_text("Waiting for ops")
    expect(report).to_contain_text("had <b>no totes</b> ready")  # shown as typed, not as markup
    shot(top_offer(page), "help-sent")
    # The Help link is in the app bar on every screen.
    expect(page.get_by_test_id("menu-help")).to_have_attribute("aria-current", "page")

    # Ops at a desk: the queue of open requests, then resolve.
    ops = UserFactory(email="ops-queue@example.test", is_staff=True, is_superuser=True)
    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = [ops.email]
    force_login(desktop_page, ops)
    desktop_page.goto("/admin/orders/supportrequest/?status__exact=open")
    rows = desktop_page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("The pickup desk had <b>no totes</b>")
    expect(rows.first).to_contain_text(f"Batch {batch.pk}")
    shot(desktop_page, "ops-queue")
    rows.first.locator("input.action-select").check()
    desktop_page.locator("select[name=action]").select_option("resolve")
    desktop_page.locator("button[name=index]").click()
    expect(desktop_page.locator("ul.messagelist")).to_contain_text("1 resolved.")
    expect(desktop_page.locator("#result_list tbody tr")).to_have_count(0)
    filed = SupportRequest.objects.get()
    assert (filed.status, filed.batch_id, filed.resolved_by_id) == ("resolved", batch.pk, ops.pk)
    assert filed.resolved_at <= timezone.now()

    page.reload()
    expect(page.get_by_test_id("help-report")).to_contain_text("Resolved")
