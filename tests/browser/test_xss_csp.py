"""Stored XSS and the Content-Security-Policy, in a real browser.

1. A store's e-commerce system sends an order whose address line is HTML with a script in it
   (POST /api/v1/orders/ with the store's Api-Key). The associate builds a batch from it and
   hovers its stop on the batch map: the tooltip shows the address as literal text, no script
   runs (no dialog), the hostile <img> is never requested, and nothing breaks the policy.
2. Every surface loads under the policy with no violation reported: the driver app, the staff
   dashboard, the customer's tracking page (with its map), the ops admin, the Swagger UI and the
   allauth pages. Violations are collected from the page's `securitypolicyviolation` events (a
   listener installed before any page script runs) and from Chromium's console messages.
"""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import Page, expect

from drivers.models import Location
from drivers.tests.factories import DriverFactory
from orders.batch_editing import batch_create, batch_publish
from orders.delivery import batch_check_in, batch_handoff
from orders.models import Order
from orders.tests.factories import OrderFactory
from orders.transitions import batch_set_status
from stores.models import StoreMembership
from stores.tests.factories import StoreApiKeyFactory, StoreFactory, StoreMembershipFactory, UserFactory
from tests.browser.conftest import PASSWORD

pytestmark = pytest.mark.slow

HOSTILE = "<img src=x onerror=alert(1)>"
API_KEY = "xss-test-key-0123456789abcdef"

# Installed with add_init_script: it runs before the page's own scripts, and DevTools-injected
# scripts are not subject to the page's policy.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
    " at " + (e.sourceFile || location.pathname) + ":" + e.lineNumber);
});
"""


@pytest.fixture
def watched(new_page, desktop_context_args):
    """watched(**context_args): a page that records CSP violations, dialogs and every request."""

    def make(**context_args) -> Page:
        page = new_page(**(context_args or desktop_context_args))
        page.add_init_script(WATCH_CSP)
        page.csp_console = []
        page.dialogs = []
        page.requested = []
        page.on("console", lambda m: page.csp_console.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: page.requested.append(r.url))
        return page

    return make


def assert_clean(page: Page, what: str) -> None:
    """No CSP violation on the page as it stands, nor any logged since the page was opened."""
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)  # late violations (a deferred script, an htmx swap) show up by now
    violations = page.evaluate("window.__cspViolations || []")
    assert violations == [], f"{what}: CSP violations {violations}"
    assert page.csp_console == [], f"{what}: CSP console messages {page.csp_console}"
    assert page.dialogs == [], f"{what}: dialogs {page.dialogs}"


def visit(page: Page, url: str, *, ready: str = "body") -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url}: {response and response.status}"
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy, f"{url}: no strict policy ({policy!r})"
    expect(page.locator(ready).first).to_be_visible()
    assert_clean(page, url)


def _intake(live_server, store, *, external_id: str, line1: str) -> dict:
    start = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    body = {
        "store": store.number,
        "external_id": external_id,
        "customer": {"name": "Mallory Hacker", "phone": "+1 615 555 0199"},
        "address": {
            "line1": line1,
            "city": "Nashville",
            "state": "TN",
            "postal_code": "37203",
            "lat": "36.165000",
            "lng": "-86.775000",
        },
        "delivery_window": {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()},
        "totes": 2,
        "weight_lb": "20.0",
        "items_count": 10,
    }
    res = requests.post(
        f"{live_server.url}/api/v1/orders/", json=body, timeout=20, headers={"Authorization": f"Api-Key {API_KEY}"}
    )
    assert res.status_code == 201, res.text
    return res.json()


def _hover_latlng(page: Page, map_selector: str, lat: float, lng: float) -> None:
    """Move the mouse over the map at (lat, lng), the way an associate points at a stop."""
    page.locator(map_selector).scroll_into_view_if_needed()
    x, y = page.evaluate(
        """([sel, lat, lng]) => {
            const el = document.querySelector(sel);
            const p = el._leaflet_map.latLngToContainerPoint([lat, lng]);
            const r = el.getBoundingClientRect();
            return [r.left + p.x, r.top + p.y];
        }""",
        [map_selector, lat, lng],
    )
    page.mouse.move(x - 30, y - 30)
    page.mouse.move(x, y, steps=5)


def test_hostile_address_from_intake_shows_as_text_on_the_batch_map(
    live_server, transactional_db, watched, phone_context_args, force_login, shot
):
    store = StoreFactory(name="Spark Test Market")
    StoreApiKeyFactory(store=store, raw_key=API_KEY)
    associate = StoreMembershipFactory(store=store, role=StoreMembership.Role.ASSOCIATE).user
    created = _intake(live_server, store, external_id="EVIL-1", line1=HOSTILE)
    order = Order.objects.get(pk=created["id"])
    assert order.address_line1 == HOSTILE  # stored as sent: the defence is at output

    page = watched(**phone_context_args)
    force_login(page, associate)
    visit(page, f"/dashboard/s/{store.pk}/", ready="#build-batch")
    row = page.locator("tr[data-order='EVIL-1']")
    expect(row).to_contain_text(HOSTILE)  # the queue's template escapes it
    page.get_by_label("Select EVIL-1").check()
    page.locator("#build-batch").click()
    expect(page).to_have_url(re.compile(rf"/dashboard/s/{store.pk}/batches/\d+/$"))
    expect(page.locator("#stops li.stop")).to_have_count(1)
    expect(page.locator("#stops li.stop .what")).to_contain_text(HOSTILE)
    expect(page.locator("#map .leaflet-overlay-pane path.leaflet-interactive")).to_have_count(3)  # line + 2 dots

    _hover_latlng(page, "#map", float(order.lat), float(order.lng))
    tooltip = page.locator("#map .leaflet-tooltip")
    expect(tooltip).to_be_visible()
    expect(tooltip).to_have_text(f"1. {HOSTILE}")
    assert tooltip.locator("img").count() == 0
    page.wait_for_timeout(500)  # an onerror handler would have fired by now
    assert page.dialogs == []
    assert not [u for u in page.requested if re.search(r"/x$", u)], "the hostile <img> was loaded"
    assert_clean(page, "batch map with the hostile tooltip")
    shot(page, "hostile-tooltip")

    # The store marker's tooltip is built the same way.
    _hover_latlng(page, "#map", float(store.lat), float(store.lng))
    expect(page.locator("#map .leaflet-tooltip", has_text="Spark Test Market")).to_be_visible()
    assert page.dialogs == []


@pytest.fixture
def world(transactional_db, settings):
    """A Nashville store with a manager, a driver on the road with a picked-up batch of two
    orders (the first customer's page shows the driver's position), and an ops user."""
    store = StoreFactory(name="Spark Test Market")
    manager = StoreMembershipFactory(store=store, role=StoreMembership.Role.MANAGER).user
    start = timezone.now() + timedelta(minutes=40)
    orders = [
        OrderFactory(
            store=store,
            external_id=f"CSP-{i}",
            lat=Decimal(lat),
            lng=Decimal(lng),
            window_start=start,
            window_end=start + timedelta(hours=2),
            address_line1=HOSTILE,
        )
        for i, (lat, lng) in enumerate([("36.158000", "-86.781000"), ("36.166000", "-86.772000")], start=1)
    ]
    waiting = OrderFactory(
        store=store, external_id="CSP-WAIT", window_start=start, window_end=start + timedelta(hours=2)
    )
    batch = batch_create(store=store, orders=orders)
    batch_publish(batch=batch)
    driver = DriverFactory(user__first_name="Ana")
    batch_set_status(batch=batch, to="assigned", updates={"driver": driver})
    batch_check_in(batch=batch, driver=driver, lat=batch.store.lat, lng=batch.store.lng)
    batch.refresh_from_db()
    batch_handoff(batch=batch, pickup_code=batch.pickup_code)
    Location.objects.update_or_create(
        driver=driver,
        defaults={"lat": Decimal("36.152000"), "lng": Decimal("-86.786000"), "recorded_at": timezone.now()},
    )
    draft = batch_create(store=store, orders=[waiting])
    ops = UserFactory(email="ops-csp@example.test", is_staff=True, is_superuser=True)
    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = [ops.email]
    orders[0].refresh_from_db()
    return {
        "store": store,
        "manager": manager,
        "driver": driver,
        "orders": orders,
        "batch": batch,
        "draft": draft,
        "ops": ops,
    }


def test_every_surface_loads_without_csp_violations(world, watched, phone_context_args, force_login, login, shot):
    store, batch = world["store"], world["batch"]

    # The customer's tracking page, with the map of the driver's approximate position.
    customer = watched(**phone_context_args)
    visit(customer, f"/t/{world['orders'][0].tracking_token}", ready="#trk-headline")
    expect(customer.locator("#trk-map.leaflet-container")).to_be_visible()
    expect(customer.locator("#trk-map .leaflet-overlay-pane path")).to_have_count(2)
    assert_clean(customer, "tracking map")
    shot(customer, "tracking")

    # The driver app.
    driver = watched(**phone_context_args)
    force_login(driver, world["driver"].user)
    visit(driver, "/driver/", ready="#route-map.leaflet-container")
    driver.locator("#route-map").click(position={"x": 100, "y": 100})  # a pin and its tooltip
    expect(driver.locator("#route-map .leaflet-tooltip")).to_have_count(1)
    assert_clean(driver, "driver route pin")
    shot(driver, "driver-home")
    visit(driver, "/driver/offers/", ready="#offers-live")
    visit(driver, "/driver/batch/", ready="#batch-status")
    expect(driver.locator("#main")).to_contain_text(HOSTILE)  # the driver's stop list escapes it
    shot(driver, "driver-batch")
    visit(driver, "/driver/standing/", ready="#main")

    # The staff dashboard, every tab.
    staff = watched()
    force_login(staff, world["manager"])
    base = f"/dashboard/s/{store.pk}/"
    visit(staff, base, ready="#queue")
    staff.locator("#q").fill("CSP")  # the htmx filter form swaps the queue in
    expect(staff.locator("#queue tr[data-order]")).to_have_count(3)
    assert_clean(staff, "queue after an htmx swap")
    for path, ready in [
        ("batches/", "table.batches"),
        ("handoff/", "#handoff-list"),
        ("returns/", "main"),
        ("auto/", "main"),
        ("slots/", "main"),
        ("team/", "main"),
    ]:
        visit(staff, base + path, ready=ready)
    visit(staff, f"{base}batches/{world['draft'].pk}/", ready="#map.leaflet-container")
    visit(staff, f"{base}batches/{batch.pk}/", ready="#map.leaflet-container")
    shot(staff, "dashboard-batch")
    # The store switcher works without its old inline handler.
    second = StoreFactory(name="Second Market")
    StoreMembershipFactory(user=world["manager"], store=second, role=StoreMembership.Role.MANAGER)
    visit(staff, base, ready="#store-select")
    staff.locator("#store-select").select_option(str(second.pk))
    expect(staff).to_have_url(re.compile(rf"/dashboard/s/{second.pk}/$"))
    assert_clean(staff, "store switch")

    # The ops admin.
    ops = watched()
    force_login(ops, world["ops"])
    visit(ops, "/admin/", ready="#content")
    visit(ops, "/admin/orders/order/", ready="#result_list")
    visit(ops, f"/admin/orders/order/{world['orders'][0].pk}/change/", ready="#content-main form")
    visit(ops, "/admin/orders/batch/", ready="#result_list")
    visit(ops, f"/admin/orders/batch/{batch.pk}/change/", ready="#content-main form")
    visit(ops, "/admin/drivers/driver/", ready="#result_list")
    # Widgets that build their markup in JavaScript: select2 autocomplete, calendar and clock.
    visit(ops, "/admin/stores/storemembership/add/", ready="#storemembership_form")
    ops.locator(".field-store .select2-selection").click()
    ops.locator(".select2-search__field").fill("Spark")
    expect(ops.locator(".select2-results__option", has_text="Spark Test Market")).to_be_visible()
    ops.keyboard.press("Enter")
    expect(ops.locator(".field-store .select2-selection__rendered")).to_contain_text("Spark Test Market")
    assert_clean(ops, "admin autocomplete")
    visit(ops, "/admin/stores/deliveryslot/add/", ready="#deliveryslot_form")
    ops.locator(".field-starts_at .datetimeshortcuts a").first.click()  # "Today"
    ops.locator(".field-starts_at a[id^='calendarlink']").click()
    expect(ops.locator(".calendarbox").first).to_be_visible()
    ops.locator(".field-starts_at a[id^='clocklink']").click()
    expect(ops.locator(".clockbox").first).to_be_visible()
    assert_clean(ops, "admin calendar and clock")
    shot(ops, "admin")

    # Staff without a second factor set it up first: allauth's TOTP page with its QR code image.
    newcomer = watched()
    login(newcomer, UserFactory(email="new-ops-csp@example.test", is_staff=True), next_url="/admin/")
    expect(newcomer).to_have_url(re.compile(r"/accounts/reauthenticate/"))  # allauth asks again first
    assert_clean(newcomer, "reauthenticate")
    newcomer.locator("input[name=password]").fill(PASSWORD)
    newcomer.locator("main form button[type=submit]").click()
    expect(newcomer).to_have_url(re.compile(r"/accounts/2fa/totp/activate/"))
    qr = newcomer.locator("form img[src^='data:image/svg']")
    expect(qr).to_be_visible()
    assert newcomer.evaluate("(img) => img.complete && img.naturalWidth > 0", qr.element_handle())
    assert_clean(newcomer, "TOTP activation")
    shot(newcomer, "totp-activation")

    # Swagger UI (drf-spectacular-sidecar), as the ops user.
    visit(ops, "/api/docs/", ready="#swagger-ui")
    expect(ops.locator(".swagger-ui .info .title")).to_contain_text("Spark API")
    expect(ops.locator(".swagger-ui .opblock").first).to_be_visible()
    ops.locator(".swagger-ui .opblock-summary").first.click()  # expand an operation
    expect(ops.locator(".swagger-ui .opblock-body").first).to_be_visible()
    assert_clean(ops, "swagger ui")
    shot(ops, "api-docs")

    # allauth pages and the driver sign-up funnel, logged out.
    guest = watched(**phone_context_args)
    for path, ready in [
        ("/accounts/login/", "input[name=login]"),
        ("/accounts/password/reset/", "main form"),
        ("/driver/join/", "main"),
        ("/", "main"),
    ]:
        visit(guest, path, ready=ready)
    visit(guest, "/accounts/signup/", ready="#signup-form")
    # The funnel's styles now come from static/css/onboarding.css.
    assert guest.evaluate("getComputedStyle(document.querySelector('.ob')).maxWidth") == "480px"
    shot(guest, "signup")
    login(guest, world["manager"], next_url="/dashboard/")  # the real login form posts fine
    assert_clean(guest, "after login")


def test_csp_reports_inline_script_handlers_and_styles(watched, live_server, transactional_db):
    """The watcher itself works: inline script, an inline handler and an inline style are each
    blocked and reported (guards the tests above against passing because nothing listens)."""
    page = watched()
    page.goto("/accounts/login/")
    page.evaluate("""() => {
        const s = document.createElement("script");
        s.textContent = "window.ran = 1";
        document.body.appendChild(s);
        document.body.insertAdjacentHTML("beforeend",
            '<img src="/nothing-here.png" onerror="window.ran = 2"><p id="red" style="color: rgb(255, 0, 0)">x</p>');
    }""")
    page.wait_for_timeout(300)
    assert page.evaluate("window.ran") is None
    assert page.evaluate("getComputedStyle(document.getElementById('red')).color") != "rgb(255, 0, 0)"
    violations = page.evaluate("window.__cspViolations")
    assert any(v.startswith("script-src-elem") for v in violations), violations
    assert any(v.startswith("script-src-attr") for v in violations), violations
    assert any(v.startswith("style-src-attr") for v in violations), violations
    page.csp_console.clear()


def test_dashboard_polls_wait_while_the_associate_is_busy(
    live_server, transactional_db, watched, phone_context_args, force_login
):
    """The queue and handoff polls used hx-trigger filters, which htmx evals; without eval they
    hold through data-poll-hold: no refresh while orders are ticked or a pickup code is typed."""
    store = StoreFactory()
    associate = StoreMembershipFactory(store=store, role=StoreMembership.Role.ASSOCIATE).user
    start = timezone.now() + timedelta(hours=2)
    OrderFactory(store=store, external_id="POLL-1", window_start=start, window_end=start + timedelta(hours=2))
    waiting = OrderFactory(store=store, window_start=start, window_end=start + timedelta(hours=2))
    batch = batch_create(store=store, orders=[waiting])
    batch_publish(batch=batch)
    batch_set_status(batch=batch, to="assigned", updates={"driver": DriverFactory()})

    page = watched(**phone_context_args)
    force_login(page, associate)
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if r.headers.get("hx-request") else None)
    page.clock.install()

    visit(page, f"/dashboard/s/{store.pk}/", ready="#queue")
    page.get_by_label("Select POLL-1").check()
    page.clock.run_for(65_000)  # three poll periods
    page.wait_for_timeout(300)
    assert polls == [], "the queue refreshed under a ticked order"
    page.get_by_label("Select POLL-1").uncheck()
    with page.expect_request(lambda r: bool(r.headers.get("hx-request"))):
        page.clock.run_for(21_000)

    polls.clear()
    visit(page, f"/dashboard/s/{store.pk}/handoff/", ready="#handoff-list input[name$=pickup_code]")
    page.locator("#handoff-list input[name$=pickup_code]").focus()
    page.clock.run_for(50_000)
    page.wait_for_timeout(300)
    assert polls == [], "the handoff list refreshed while a code was being typed"
    page.locator("h1").click()  # focus leaves the input
    with page.expect_request(lambda r: bool(r.headers.get("hx-request"))):
        page.clock.run_for(16_000)
    assert_clean(page, "polls")
