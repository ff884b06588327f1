"""Issue 10's money path in a real browser at phone size (iPhone 13, 390x844), one driver, one batch:

1. The driver goes online, accepts the batch's offer on the Offers tab, checks in at the store and
   shows the pickup code; the associate hands the batch over on the dashboard (a second phone);
   the driver delivers both stops with a photo and completes the batch, all in the app.
2. The batch's pay settles. Completing the batch queues payments.tasks.settle_batch on commit
   (the batch_closed hook), but tests/browser/conftest.py runs no Celery worker and the test
   settings do not run tasks eagerly, so that message just sits in the test Redis db. The test
   runs what production runs when such a task is lost: the beat sweep
   payments.tasks.sweep_unsettled_batches, called in this process.
3. The batch-complete screen says "This batch paid $X"; the Earnings tab shows it as the balance.
4. Cash-out (/driver/payouts/cash-out/, reached from Earnings): the fee and what reaches the bank
   are shown before confirming; after confirming the balance dropped by the payout plus the fee,
   and payout history shows the cash-out (paid once its pay_payout task ran, also called here).
5. This week's statement: its page, and its CSV whose lines sum to the week's net (closing minus
   opening balance): the batch pay, the cash-out and its fee.

The customer's half (raising the tip on the tracking page after delivery, with a real
manual-capture PaymentIntent at localstripe, and rating) is tests/browser/test_tip_e2e.py. The
orders here carry $5 tips the store already collected (booked at intake, no card on file, so not
raisable; localstripe would also switch the payouts off the sandbox): the driver sees them as
tips to come, outside the balance until their window closes.
"""

import csv
import io
import re
from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone
from playwright.sync_api import expect

from dispatch import rounds
from dispatch.models import Offer
from drivers.tests.factories import DriverFactory
from orders.models import Batch
from payments import driver_earnings, payout_tasks, tips
from payments.models import BatchPay, Payout
from payments.selectors import driver_balance_cents
from payments.tasks import sweep_unsettled_batches
from payments.tests.factories import PayPolicyFactory
from spark.money import format_cents
from stores.models import StoreMembership
from stores.tests.factories import StoreFactory, StoreMembershipFactory, ZoneFactory
from tests.browser.flow_helpers import (
    AT_STORE,
    AUTO_ADVANCE_MS,
    jpeg,
    live_stops,
    make_orders,
    published_batch,
    slot_holder,
    top_offer,
    upload,
)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _media_and_cache(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"  # the live server runs in this process
    settings.SPARK_LOCATION_MIN_INTERVAL_SECONDS = 0
    cache.clear()
    yield
    cache.clear()


def test_driver_completes_a_batch_sees_its_pay_cashes_out_and_downloads_the_statement(
    transactional_db, new_page, phone_context_args, force_login, shot, htmx_settled, fits_width
):
    zone = ZoneFactory()
    zone.offer_ttl_seconds = 240
    zone.save()
    policy = PayPolicyFactory(zone=zone)
    store = StoreFactory(zone=zone, name="Green Hills Market")
    associate = StoreMembershipFactory(store=store, role=StoreMembership.Role.ASSOCIATE).user
    driver = DriverFactory(home_zone=zone, user__first_name="Ana", user__last_name="Quintero")
    slot_holder(store, driver)

    phone = new_page(**phone_context_args, geolocation=AT_STORE, permissions=["geolocation"])
    force_login(phone, driver.user)
    phone.goto("/driver/")
    phone.get_by_test_id("go-online").click()
    expect(phone.get_by_test_id("duty-pill")).to_have_text("Online")

    # --- The store publishes a batch; dispatch offers it to the driver (who holds a slot) -----------
    orders = make_orders(store, prefix="PAY")
    for order in orders:
        tips.tip_intake(order=order, amount_cents=500)  # the store's intake: a tip it collected itself
    batch = published_batch(store, orders)
    rounds.dispatch_advance(batch_id=batch.pk)
    offer = Offer.objects.select_related("pay").get(batch=batch, driver=driver)
    offered_total = offer.pay.total_cents

    phone.get_by_test_id("tab-offers").click()
    card = phone.locator(f"#offer-{offer.pk}")
    expect(card.get_by_test_id("offer-pay")).to_have_text(format_cents(offered_total))
    card.get_by_test_id("offer-accept").click()
    expect(phone).to_have_url(re.compile(r"/driver/batch/$"))

    # --- Pickup: check in, the associate hands over on their own phone ------------------------------
    phone.get_by_test_id("check-in").click()
    expect(phone.get_by_test_id("batch-status")).to_have_attribute("data-phase", "at_store")
    associate_phone = new_page(**phone_context_args)
    force_login(associate_phone, associate)
    associate_phone.goto(f"/dashboard/s/{store.pk}/handoff/")
    handoff = associate_phone.locator(f"section.handoff[data-batch='{batch.pk}']")
    handoff.get_by_label("Driver's pickup code").fill(phone.get_by_test_id("pickup-code").inner_text())
    handoff.get_by_label("ID checked: the name matches the driver").check()  # no photo on file
    handoff.get_by_role("button", name="Hand over").click()
    expect(associate_phone.locator("#messages .success")).to_have_text(f"Batch {batch.pk} handed over.")

    # --- Stops: the page moves on by itself; each stop delivered with a photo -----------------------
    expect(phone.locator("h1")).to_have_text("Deliveries", timeout=AUTO_ADVANCE_MS)
    for i, stop in enumerate(live_stops(batch)):
        card = phone.locator(f"#stop-{stop.pk}")
        expect(card).to_have_class(re.compile(r"\bcurrent\b"))
        phone.context.set_geolocation({"latitude": float(stop.order.lat), "longitude": float(stop.order.lng)})
        card.get_by_test_id("stop-arrive").click()
        expect(card).to_have_attribute("data-stop-status", "arrived")
        card.get_by_test_id("photo-input").set_input_files(upload(f"door-{i + 1}.jpg", jpeg()))
        card.get_by_test_id("stop-deliver").click()
        expect(card).to_have_attribute("data-stop-status", "delivered")
        htmx_settled(phone)
    phone.get_by_test_id("complete-batch").click()
    last = phone.get_by_test_id("last-batch")
    expect(last).to_contain_text("Your batch from Green Hills Market was completed")
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED
    # Nothing ran the queued settle task yet: the screen says so instead of showing a number.
    expect(phone.get_by_test_id("last-batch-pay")).to_contain_text("Pay being worked out")
    assert not BatchPay.objects.filter(batch=batch).exists()

    # --- Settlement: the beat sweep (no worker here; see the module docstring) ---------------------
    assert sweep_unsettled_batches() == 1
    assert sweep_unsettled_batches() == 0  # once
    pay = BatchPay.objects.get(batch=batch)
    # Never below what the offer promised, tips aside (they are paid on their own, later).
    assert pay.snapshot_cents == offered_total - offer.pay.tip_cents and pay.final_cents >= pay.snapshot_cents
    balance = driver_balance_cents(driver=driver)
    assert balance == pay.final_cents  # the customers' tips are not credited before their window closes

    phone.reload()
    batch_pay = phone.get_by_test_id("last-batch-pay")
    expect(batch_pay).to_contain_text(f"This batch paid {format_cents(pay.final_cents)}.")
    expect(batch_pay.get_by_test_id("last-batch-tips-pending")).to_have_text("+ $10.00 in tips to come")
    expect(phone.get_by_test_id("batch-status")).to_have_text("")  # no second "no active batch"
    expect(phone.get_by_test_id("test-payments")).to_have_text("Test payments: no real money moves")
    fits_width(phone)
    shot(top_offer(phone), "batch-complete")

    # --- Earnings: the balance ----------------------------------------------------------------------
    phone.get_by_test_id("last-batch-earnings-link").click()
    expect(phone).to_have_url(re.compile(r"/driver/earnings/$"))
    expect(phone.get_by_test_id("balance")).to_have_text(format_cents(balance))
    expect(phone.get_by_test_id("pending-tip")).to_have_count(2)
    row = phone.locator(f"[data-testid=batch-row][data-batch-id='{batch.pk}']")
    expect(row.get_by_test_id("batch-pay")).to_have_text(format_cents(pay.final_cents))
    fits_width(phone)
    shot(top_offer(phone), "earnings")

    # --- Cash out: the fee before confirming, then the balance drops by payout + fee ---------------
    phone.get_by_test_id("earnings-cashout").click()
    expect(phone).to_have_url(re.compile(r"/driver/payouts/cash-out/$"))
    fee, payout_cents = policy.cashout_fee_cents, balance - policy.cashout_fee_cents
    assert 0 < fee and payout_cents >= policy.cashout_min_cents
    expect(phone.get_by_test_id("cashout-available")).to_have_text(format_cents(balance))
    expect(phone.get_by_test_id("cashout-fee")).to_have_text(format_cents(fee))
    expect(phone.get_by_test_id("cashout-amount")).to_have_text(format_cents(payout_cents))
    confirm = phone.get_by_test_id("cashout-confirm")
    expect(confirm).to_have_text(f"Cash out {format_cents(payout_cents)} (fee {format_cents(fee)})")
    fits_width(phone)
    shot(top_offer(phone), "cash-out-confirm")
    confirm.click()
    expect(phone).to_have_url(re.compile(r"/driver/earnings/payouts/$"))  # payout history
    expect(phone.locator("#messages")).to_contain_text(
        f"Test cash-out of {format_cents(payout_cents)} recorded (fee {format_cents(fee)}): no real money moves."
    )
    payout = Payout.objects.get(driver=driver)
    assert (payout.kind, payout.amount_cents, payout.fee_cents) == (Payout.Kind.INSTANT, payout_cents, fee)
    after = driver_balance_cents(driver=driver)
    assert balance - after == payout_cents + fee
    cashed = phone.get_by_test_id("payout")
    expect(cashed).to_have_count(1)
    expect(cashed.get_by_test_id("payout-amount")).to_have_text(format_cents(payout_cents))
    expect(cashed).to_contain_text(f"fee {format_cents(fee)}")
    expect(cashed).to_contain_text("On its way")
    # The transfer is the pay_payout task queued on commit; no worker here either, so the test
    # runs what that task runs (payments.payout_tasks.pay_payout), then the page says "Paid".
    payout_tasks.pay_payout(payout.pk)
    phone.reload()
    expect(cashed).to_have_attribute("data-status", "paid")
    expect(cashed).to_contain_text("Paid")
    assert driver_balance_cents(driver=driver) == after  # paying out moves nothing more
    fits_width(phone)
    shot(top_offer(phone), "cashed-out")
    phone.locator(".banner-link a").click()
    expect(phone).to_have_url(re.compile(r"/driver/earnings/$"))
    expect(phone.get_by_test_id("balance")).to_have_text(format_cents(after))

    # --- This week's statement: page, then CSV summing to the week's net ----------------------------
    this_week = driver_earnings.current_week_start(driver=driver, now=timezone.now())  # in the zone's time
    statement = driver_earnings.weekly_statement(driver=driver, week=this_week)
    phone.get_by_test_id("statement-link").first.click()
    expect(phone).to_have_url(re.compile(rf"/driver/earnings/statements/{statement.week_start.isoformat()}/$"))
    expect(phone.get_by_test_id("opening-balance")).to_have_text(format_cents(statement.opening_balance_cents))
    expect(phone.get_by_test_id("closing-balance")).to_have_text(format_cents(after))
    expect(phone.get_by_test_id("statement-line")).to_have_count(3)
    fits_width(phone)
    shot(top_offer(phone), "statement")
    with phone.expect_download() as download_info:
        phone.get_by_test_id("statement-download").click()
    download = download_info.value
    assert download.suggested_filename == f"spark-statement-{statement.week_start.isoformat()}.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    by_type = {r["type"]: int(r["amount_cents"]) for r in rows}
    assert by_type == {"batch_pay": pay.final_cents, "payout": -payout_cents, "fee": -fee}
    week_net = statement.closing_balance_cents - statement.opening_balance_cents
    assert sum(int(r["amount_cents"]) for r in rows) == week_net
    assert statement.opening_balance_cents == 0 and week_net == after  # all of it happened this week
