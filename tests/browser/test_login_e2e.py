"""The sign-in page at phone size: Spark's look, the app it opens named, a wrong password told
on the page, and the right one landing in that app."""

import pytest
from playwright.sync_api import expect

from stores.tests.factories import UserFactory
from tests.browser.conftest import PASSWORD, verify_email

pytestmark = pytest.mark.slow


def test_associate_signs_in_to_the_dashboard_from_a_phone(page, shot, fits_width, db):
    user = UserFactory(email="dana.driver@example.test")
    verify_email(user)
    page.goto("/accounts/login/?next=/dashboard/")
    expect(page.locator("h1")).to_have_text("Log in to the store dashboard")
    fits_width(page)
    shot(page, "login-for-the-dashboard")
    page.locator("input[name=login]").fill(user.email)
    page.locator("input[name=password]").fill("not-the-password")
    page.locator("#login-form button[type=submit]").click()
    expect(page.locator("#form-errors")).to_be_visible()
    shot(page, "wrong-password")
    expect(page.locator("h1")).to_have_text("Log in to the store dashboard")  # the app it opens, kept
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("#login-form button[type=submit]").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    expect(page.locator(".topbar .who")).to_have_text(user.email)
