"""Real-browser tests: Playwright's sync API driving Debian's Chromium against pytest-django's
`live_server` (a threaded WSGI server in this process, transactional database).

Fixtures for any surface (dashboard now, the driver app later):

- `browser`: one headless Chromium for this folder's tests, at /usr/bin/chromium (or $SPARK_CHROMIUM;
  Playwright's own browser download does not work here). Missing binary: skipped locally, a
  hard failure when $CI is set.
- `page`: a phone (Playwright's "iPhone 13" descriptor, run in Chromium); `desktop_page`: 1280x800.
  Both have `base_url` = the live server, so `page.goto("/dashboard/")` works, a ~10 s default
  timeout, every request that is not for the live server aborted (map tiles, fonts, analytics: a
  test never touches the network; see `page.blocked_urls`), and uncaught JavaScript errors
  collected in `page.js_errors`: any left at the end fails the test.
- `login(page, user)`: signs in through the real allauth page; `force_login(page, user)`: injects
  a session cookie made by Django's test client (faster, for tests that are not about login).
- `htmx_settled(page)`: wait for htmx to finish swapping; `fits_width(page)`: no sideways scrolling.
- `shot(page, "step")`: a full-page screenshot in <repo>/test-artifacts/screenshots/, named after
  the test and the step, numbered in order. A failing test gets a "FAILED" screenshot too.
  `shot(page, "step", full_page=False)`: what the phone's screen shows, for a sheet or a toast
  (fixed on screen; a full-page shot draws them wherever the page had scrolled to).

Every browser test module should set `pytestmark = pytest.mark.slow`.
"""

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

CHROMIUM = os.environ.get("SPARK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 10_000
NAVIGATION_TIMEOUT_MS = 20_000  # a first page load on a busy 2-core machine can be slow
PHONE = "iPhone 13"
PASSWORD = "pw-for-tests-1"  # stores.tests.factories.UserFactory

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "test-artifacts" / "screenshots"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}

expect.set_options(timeout=TIMEOUT_MS)

_reports = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item so fixtures can tell whether the test failed."""
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


def _test_failed(request) -> bool:
    reports = request.node.stash.get(_reports, {})
    return any(r.failed for r in reports.values())


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120]


@pytest.fixture(scope="package")
def playwright_instance():
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` (root)."
        if os.environ.get("CI"):
            pytest.fail(f"{message} CI must run the browser tests.", pytrace=False)
        pytest.skip(f"{message} Browser tests skipped (they fail instead when CI is set).")
    # Playwright's sync API runs an asyncio event loop in this (the test's) thread for as long as
    # it is started: it lives in a greenlet that is merely switched away from while test code
    # runs, so asyncio.get_running_loop() keeps returning it. Django's ORM sees a running loop and
    # raises SynchronousOnlyOperation on every query a test makes (factories, DB asserts, the
    # flush after a transactional test). Nothing runs concurrently with those queries (the loop
    # is parked), so allowing them is safe, and only for as long as Playwright runs: this fixture
    # is package-scoped, so the guard is back on for every test outside tests/browser/.
    with pytest.MonkeyPatch.context() as env, sync_playwright() as p:
        env.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield p


@pytest.fixture(scope="package")
def browser(playwright_instance) -> Iterator[Browser]:
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="package")
def phone_context_args(playwright_instance) -> dict:
    """Playwright's iPhone 13 (viewport, screen 390x844, DPR, touch, mobile UA), in Chromium."""
    args = dict(playwright_instance.devices[PHONE])
    args.pop("default_browser_type", None)  # WebKit; we only have Chromium
    return args


@pytest.fixture(scope="session")
def desktop_context_args() -> dict:
    return {"viewport": {"width": 1280, "height": 800}}


@pytest.fixture
def new_page(browser, live_server, request) -> Iterator[Callable[..., Page]]:
    """Factory: a page in a fresh browser context (own cookies) aimed at the live server."""
    contexts: list[BrowserContext] = []
    pages: list[Page] = []

    def make(**context_args) -> Page:
        context = browser.new_context(base_url=live_server.url, locale="en-US", **context_args)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
        allowed = LOCAL_HOSTS | {urlsplit(live_server.url).hostname}
        blocked: list[str] = []

        def only_live_server(route):
            if urlsplit(route.request.url).hostname in allowed:
                route.fallback()
            else:
                blocked.append(route.request.url)
                route.abort("blockedbyclient")

        context.route("**/*", only_live_server)
        page = context.new_page()
        page.blocked_urls = blocked
        page.js_errors = []
        page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
        contexts.append(context)
        pages.append(page)
        return page

    yield make

    failed = _test_failed(request)
    for page in pages:
        if failed and not page.is_closed():
            try:
                _screenshot(request, page, "FAILED", number=99)
            except Exception:
                pass  # a broken page must not hide the real failure
    for context in contexts:
        context.close()
    if not failed:
        errors = [e for p in pages for e in p.js_errors]
        assert not errors, f"Uncaught JavaScript errors in the page: {errors}"


@pytest.fixture
def page(new_page, phone_context_args) -> Page:
    """A phone-sized page (the default: drivers and associates both use phones)."""
    return new_page(**phone_context_args)


@pytest.fixture
def desktop_page(new_page, desktop_context_args) -> Page:
    return new_page(**desktop_context_args)


def verify_email(user) -> None:
    """allauth (ACCOUNT_EMAIL_VERIFICATION = "mandatory") refuses a login without a verified email."""
    from allauth.account.models import EmailAddress

    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})


@pytest.fixture
def login() -> Callable[..., None]:
    """login(page, user, next_url="/dashboard/"): sign in through the real allauth login page."""

    def do_login(page: Page, user, *, password: str = PASSWORD, next_url: str | None = None) -> None:
        verify_email(user)
        page.goto("/accounts/login/" + (f"?next={quote(next_url)}" if next_url else ""))
        page.locator("input[name=login]").fill(user.email)
        page.locator("input[name=password]").fill(password)
        page.locator("form button[type=submit]").first.click()
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        expect(page.locator(".topbar .who")).to_have_text(user.email)

    return do_login


@pytest.fixture
def force_login(live_server) -> Callable[..., None]:
    """force_login(page, user): give the page's context a logged-in session without the form."""
    from django.conf import settings
    from django.test import Client

    def do_force_login(page: Page, user) -> None:
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        page.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value, "url": live_server.url}]
        )

    return do_force_login


@pytest.fixture
def htmx_settled() -> Callable[[Page], None]:
    """htmx_settled(page): wait until no htmx request, swap or settle is in progress."""

    def wait(page: Page) -> None:
        expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)

    return wait


@pytest.fixture
def fits_width() -> Callable[[Page], None]:
    """fits_width(page): nothing on the page sticks out sideways (no horizontal scrolling on a phone)."""

    def check(page: Page) -> None:
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"page is {widths[0]}px wide in a {widths[1]}px viewport"

    return check


def _screenshot(request, page: Page, step: str, *, number: int, full_page: bool = True) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{_slug(request.node.name)}--{number:02d}-{_slug(step)}.png"
    # A click that navigates returns once the new page starts: let its styles and scripts load
    # first, or the full-page size is measured on a half-laid-out page and the shot is cut short.
    page.wait_for_load_state("load")
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path


@pytest.fixture
def shot(request) -> Callable[..., Path]:
    """shot(page, "step", full_page=True): save a numbered screenshot of this test's step."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOT_DIR.glob(f"{_slug(request.node.name)}--*.png"):
        old.unlink()  # no stale steps from an earlier run of this test
    counter = iter(range(1, 99))

    def take(page: Page, step: str, *, full_page: bool = True) -> Path:
        return _screenshot(request, page, step, number=next(counter), full_page=full_page)

    return take
