"""The customer's tracking page on a phone after delivery (issue 10, item 8): they raise the tip on
the card saved with their order (a manual-capture PaymentIntent at localstripe, a separate
process) and rate the delivery; the page fits the screen and runs no inline script."""

import pytest
from playwright.sync_api import Page, expect

from payments.models import Tip, TipCharge
from payments.tests.conftest import _localstripe_server, localstripe  # noqa: F401 (fixtures)
from payments.tests.factories import PayPolicyFactory
from payments.tests.tip_helpers import Run
from stores.tests.factories import ZoneFactory

pytestmark = pytest.mark.slow


def test_customer_raises_the_tip_and_rates_the_delivery_on_a_phone(page: Page, localstripe, fits_width, shot):  # noqa: F811
    zone = ZoneFactory(
        name="Denver", slug="denver-e2e", timezone="America/Denver", center_lat="39.7392", center_lng="-104.9903"
    )
    PayPolicyFactory(zone=zone)
    run = Run(zone, card=localstripe.saved_card()).authorise().claim().pick_up().deliver()
    assert run.tip.status == Tip.Status.AUTHORIZED

    page.goto(f"/t/{run.order.tracking_token}")
    expect(page.locator("#trk-tip-amount")).to_have_text("$6.50")
    fits_width(page)
    shot(page, "delivered")

    page.get_by_label("Raise your tip to ($)").fill("9")
    page.get_by_role("button", name="Raise tip").click()
    expect(page.locator("#trk-done")).to_contain_text("Your tip was raised")
    expect(page.locator("#trk-tip-amount")).to_have_text("$9.00")
    raise_charge = TipCharge.objects.get(tip=run.tip, kind=TipCharge.Kind.RAISE)
    assert localstripe.payment_intent(raise_charge.stripe_payment_intent_id)["status"] == "requires_capture"

    page.get_by_label("5").check()
    page.get_by_label("Note (optional)").fill("Left it in the shade, thanks!")
    page.get_by_role("button", name="Send rating").click()
    expect(page.locator("#trk-rated")).to_contain_text("You rated this delivery 5 out of 5.")
    fits_width(page)
    shot(page, "raised-and-rated")
    assert not page.js_errors
