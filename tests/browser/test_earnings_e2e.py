"""The driver's earnings in a real browser at phone size: the Earnings tab, a settled batch's pay
beside its offer, and this week's statement downloaded as CSV that adds up to the balance."""

import csv
import io
from pathlib import Path

import pytest
from playwright.sync_api import expect

from drivers.tests.factories import DriverFactory
from payments.selectors import driver_balance_cents
from payments.tests.earnings_builders import adjust, ended_batch, settle, tip_rows
from payments.tests.factories import PayPolicyFactory
from spark.money import format_cents
from stores.tests.factories import StoreFactory, ZoneFactory

pytestmark = pytest.mark.slow


def test_earnings_batch_breakdown_and_statement_download(page, force_login, fits_width, shot):
    zone = ZoneFactory()
    PayPolicyFactory(zone=zone)
    driver = DriverFactory(home_zone=zone)
    store = StoreFactory(zone=zone, name="Green Hills")
    batch = ended_batch(driver, store=store)
    pay = settle(batch)
    adjust(pay, 150, reason="wait", note="Store was short-staffed")
    tip_rows(batch, captured=1)
    balance = driver_balance_cents(driver=driver)
    assert balance == pay.final_cents + 150 + 500

    force_login(page, driver.user)
    page.goto("/driver/")
    page.get_by_test_id("tab-earnings").click()
    expect(page.get_by_test_id("balance")).to_have_text(format_cents(balance))
    expect(page.get_by_test_id("test-payments")).to_have_text("Test payments: no real money moves")
    expect(page.get_by_test_id("pending-tip")).to_have_count(1)
    fits_width(page)
    shot(page, "earnings")

    page.get_by_test_id("batch-link").first.click()
    expect(page.get_by_test_id("paid-final")).to_have_text(format_cents(pay.final_cents))
    expect(page.get_by_test_id("offered-total")).to_have_text("$14.50")
    expect(page.get_by_test_id("paid-wait")).to_have_text("$1.20")
    expect(page.get_by_test_id("adjustment")).to_contain_text("Wait at the store not counted")
    expect(page.get_by_test_id("adjustment-note")).to_have_text("Store was short-staffed")
    expect(page.get_by_test_id("tip")).to_have_count(2)
    fits_width(page)
    shot(page, "batch breakdown")

    page.go_back()
    page.get_by_test_id("statement-link").first.click()
    expect(page.get_by_test_id("closing-balance")).to_have_text(format_cents(balance))
    fits_width(page)
    shot(page, "statement")
    with page.expect_download() as download_info:
        page.get_by_test_id("statement-download").click()
    download = download_info.value
    assert download.suggested_filename.startswith("spark-statement-") and download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert sum(int(r["amount_cents"]) for r in rows) == balance
    assert {r["type"] for r in rows} == {"batch_pay", "adjustment", "tip"}
