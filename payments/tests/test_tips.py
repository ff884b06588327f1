"""Tips (payments.tips): intake, authorisation on a saved card, raises from the tracking page, ops
lowering with a reason, capture when the adjust window closes (or before Stripe's deadline),
credit to the driver, Spark's cover of a shown tip that ended at zero; the customer's rating.

Card tips talk to localstripe over HTTP with the real Stripe SDK (payments/tests/conftest.py)."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from orders.batch_editing import batch_create, batch_publish
from orders.models import DeliveryRating, Order
from orders.tests.factories import OrderFactory
from orders.tests.helpers import HOMES, NOW, make_driver
from orders.transitions import batch_set_status, order_set_status, stop_set_status
from payments import tasks, tips
from payments.models import Account, DriverNotice, Entry, LedgerTransaction, Tip, TipAdjustment
from payments.selectors import driver_balance_cents, ledger_total_cents
from payments.tests.factories import PayPolicyFactory
from payments.tests.helpers import post_stripe_event
from payments.tests.tip_helpers import Run
from payments.tips_selectors import driver_pending_tips
from stores.tests.factories import StoreApiKeyFactory, UserFactory, ZoneFactory

pytestmark = pytest.mark.django_db

DECLINES_WHEN_CHARGED = "4000000000000341"


@pytest.fixture(autouse=True)
def _frozen_clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def zone(db):
    z = ZoneFactory(
        name="Denver", slug="denver", timezone="America/Denver", center_lat="39.7392", center_lng="-104.9903"
    )
    PayPolicyFactory(zone=z, tip_cover_cap_cents=500)
    return z


def after_window(clock, hours=25):
    clock.shift(timedelta(hours=hours))
    return tips.tips_settle_due()


def posted(key: str) -> dict[str, int]:
    """The entries of the ledger transaction `key`, by account kind."""
    txn = LedgerTransaction.objects.filter(idempotency_key=key).first()
    if txn is None:
        return {}
    return {e.account.kind: e.amount_cents for e in txn.entries.select_related("account")}


def tips_payable(driver) -> int:
    return int(
        Entry.objects.filter(account__kind=Account.Kind.TIPS_PAYABLE, account__driver=driver).aggregate(
            s=Sum("amount_cents")
        )["s"]
        or 0
    )


# --- Intake ---------------------------------------------------------------------------------


def intake_body(store, **extra):
    return {
        "store": store.number,
        "external_id": "WM-77",
        "customer": {"name": "Ada Lovelace", "phone": "+1 615 555 0100", "email": "ada@example.test"},
        "address": {
            "line1": "501 Broadway",
            "city": "Denver",
            "state": "CO",
            "postal_code": "80203",
            "lat": str(HOMES[0][0]),
            "lng": str(HOMES[0][1]),
        },
        "delivery_window": {
            "start": (NOW + timedelta(hours=3)).isoformat(),
            "end": (NOW + timedelta(hours=5)).isoformat(),
        },
        "totes": 2,
        "weight_lb": "20.0",
        "items_count": 9,
        "tip_cents": 600,
        **extra,
    }


@pytest.fixture
def store_api(zone):
    from stores.tests.factories import StoreFactory

    store = StoreFactory(zone=zone, lat="39.740000", lng="-104.990000")
    StoreApiKeyFactory(store=store, raw_key="tips-store-key-0123456789")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Api-Key tips-store-key-0123456789")
    return store, api


def test_intake_with_a_saved_card_authorises_the_tip_after_commit(
    store_api, localstripe, django_capture_on_commit_callbacks
):
    store, api = store_api
    customer, method = localstripe.saved_card()
    with django_capture_on_commit_callbacks() as queued:
        res = api.post(
            "/api/v1/orders/",
            intake_body(store, stripe_customer=customer, stripe_payment_method=method),
            format="json",
        )
    assert res.status_code == 201, res.content
    order = Order.objects.get(external_id="WM-77")
    tip = Tip.objects.get(order=order)
    assert (tip.status, tip.amount_cents, order.tip_cents) == ("pending", 600, 600)
    # Stripe is not called in the request's transaction: one task waits for the commit.
    assert len(queued) == 1 and not tip.stripe_payment_intent_id
    charge = tip.charges.get()
    tasks.authorize_tip_charge(charge.pk)
    tip.refresh_from_db()
    assert tip.status == "authorized" and tip.authorized_cents == 600
    pi = localstripe.payment_intent(tip.stripe_payment_intent_id)
    assert (pi["status"], pi["capture_method"], pi["amount"]) == ("requires_capture", "manual", 600)
    assert pi["customer"] == customer and pi["metadata"]["charge_id"] == str(charge.pk)
    # Running the task again (redelivered) changes nothing and asks Stripe for nothing new.
    tasks.authorize_tip_charge(charge.pk)
    tip.refresh_from_db()
    assert tip.authorized_cents == 600 and LedgerTransaction.objects.count() == 0
    # A replay of the intake with the same body is the same order and tip; with another tip, 409.
    again = api.post(
        "/api/v1/orders/", intake_body(store, stripe_customer=customer, stripe_payment_method=method), format="json"
    )
    assert again.status_code == 200 and Tip.objects.count() == 1
    other = api.post(
        "/api/v1/orders/",
        intake_body(store, tip_cents=900, stripe_customer=customer, stripe_payment_method=method),
        format="json",
    )
    assert other.status_code == 409
    order.refresh_from_db()
    assert order.tip_cents == 600 and Tip.objects.get().amount_cents == 600


@pytest.mark.parametrize(
    "extra",
    [
        {"stripe_customer": "cus_abc123"},  # a customer without a card
        {"stripe_payment_method": "pm_abc123"},
        {"stripe_customer": "cus_<script>", "stripe_payment_method": "pm_abc123"},
        {"stripe_customer": "cus_abc", "stripe_payment_method": "card_123"},
        {"stripe_customer": 12, "stripe_payment_method": "pm_abc123"},
    ],
)
def test_intake_refuses_bad_card_ids_and_creates_nothing(store_api, extra):
    store, api = store_api
    res = api.post("/api/v1/orders/", intake_body(store, **extra), format="json")
    assert res.status_code == 400
    assert not Order.objects.exists() and not Tip.objects.exists()


def test_store_collected_tip_is_booked_then_credited_in_full_when_the_window_closes(zone, _frozen_clock):
    run = Run(zone, amount=650)
    assert run.tip.status == "booked" and run.order.tip_cents == 650
    run.claim().pick_up().deliver()
    assert run.batch.stops_tip_cents == 650
    tips.tips_settle_due()  # stamps the window
    [pending] = driver_pending_tips(run.driver)
    assert pending["cents"] == 650 and pending["settles_at"] == NOW + timedelta(hours=24)
    assert after_window(_frozen_clock, hours=23)["settled"] == 0  # the window is still open
    assert after_window(_frozen_clock, hours=2)["settled"] == 1
    assert posted(f"tip-booked:{run.tip.pk}") == {"tips_held": 650, "tips_receivable": -650}
    assert posted(f"tip-credited:{run.tip.pk}") == {"tips_payable": 650, "tips_held": -650}
    assert driver_balance_cents(driver=run.driver) == 650 and ledger_total_cents() == 0
    assert driver_pending_tips(run.driver) == []  # credited: in the balance, no longer pending
    # A second run posts nothing.
    assert after_window(_frozen_clock, hours=1)["settled"] == 0
    assert LedgerTransaction.objects.count() == 2


def test_card_tip_is_captured_and_credited_when_the_window_closes(zone, localstripe, _frozen_clock):
    run = Run(zone, card=localstripe.saved_card()).authorise()
    run.claim().pick_up().deliver()
    tips.tips_settle_due()
    assert localstripe.payment_intent(run.tip.stripe_payment_intent_id)["status"] == "requires_capture"
    after_window(_frozen_clock)
    run.refresh()
    assert run.tip.status == "captured" and run.tip.settled_at is not None
    assert localstripe.payment_intent(run.tip.stripe_payment_intent_id)["status"] == "succeeded"
    charge = run.tip.charges.get()
    assert posted(f"tip-captured:{charge.pk}") == {"tips_held": 650, "stripe_clearing": -650}
    assert posted(f"tip-credited:{run.tip.pk}") == {"tips_payable": 650, "tips_held": -650}
    assert tips_payable(run.driver) == 650 and ledger_total_cents() == 0


def test_capture_happens_before_stripes_capture_before_even_if_the_window_is_open(zone, localstripe, _frozen_clock):
    run = Run(zone, card=localstripe.saved_card()).authorise()
    run.claim().pick_up()
    # Stripe says (payment_intent webhook) the hold must be captured within 50 minutes; the
    # margin is 60, so the next sweep captures, while the order is still on its way.
    pi = localstripe.payment_intent(run.tip.stripe_payment_intent_id)
    deadline = NOW + timedelta(minutes=50)
    pi["latest_charge"]["payment_method_details"] = {"card": {"capture_before": int(deadline.timestamp())}}
    assert tips.tip_payment_intent_event(pi) is True
    run.refresh()
    assert run.tip.capture_before == deadline
    assert tips.tips_settle_due()["captured"] == 1
    run.refresh()
    assert run.tip.status == "captured" and run.tip.settled_at is None  # money held, driver not yet credited
    assert localstripe.payment_intent(run.tip.stripe_payment_intent_id)["status"] == "succeeded"
    assert tips_payable(run.driver) == 0
    run.deliver()
    after_window(_frozen_clock)
    assert tips_payable(run.driver) == 650
    assert LedgerTransaction.objects.filter(kind=tips.TIP_CAPTURED).count() == 1


def test_a_decline_before_any_driver_saw_the_tip_shows_zero_and_is_not_covered(zone, localstripe, _frozen_clock):
    run = Run(zone, card=localstripe.saved_card(DECLINES_WHEN_CHARGED)).authorise()
    assert run.tip.status == "canceled" and run.tip.amount_cents == 0 and run.order.tip_cents == 0
    assert run.tip.adjustments.get().reason.startswith("card declined")
    run.claim().pick_up().deliver()
    assert run.batch.stops_tip_cents == 0
    after_window(_frozen_clock)
    assert tips_payable(run.driver) == 0 and not LedgerTransaction.objects.exists()


def test_a_shown_tip_declined_after_the_claim_is_covered_up_to_the_zone_cap(zone, localstripe, _frozen_clock):
    # The authorisation task was lost until after a driver claimed the batch with the $6.50 shown.
    run = Run(zone, card=localstripe.saved_card(DECLINES_WHEN_CHARGED)).claim()
    run.authorise()
    assert run.tip.status == "canceled" and run.order.tip_cents == 650  # still what the driver was shown
    run.pick_up().deliver()
    after_window(_frozen_clock)
    run.refresh()
    assert run.tip.covered_cents == 500
    assert posted(f"tip-cover:{run.tip.pk}") == {"tips_payable": 500, "platform_expense": -500}
    assert tips_payable(run.driver) == 500 and ledger_total_cents() == 0


def test_a_hold_cancelled_at_stripe_ends_at_zero_and_is_covered(zone, localstripe, _frozen_clock):
    run = Run(zone, amount=300, card=localstripe.saved_card()).authorise()
    run.claim().pick_up().deliver()
    localstripe.cancel(run.tip.stripe_payment_intent_id)  # the bank let the hold go
    after_window(_frozen_clock)
    run.refresh()
    assert run.tip.status == "canceled" and run.tip.covered_cents == 300
    assert not LedgerTransaction.objects.filter(kind=tips.TIP_CAPTURED).exists()
    assert tips_payable(run.driver) == 300


def test_a_returned_order_releases_the_hold_and_covers_the_driver(zone, localstripe, _frozen_clock):
    run = Run(zone, amount=400, card=localstripe.saved_card()).authorise()
    run.claim().pick_up()
    stop = run.trip.stop(0)
    stop_set_status(stop=stop, to="arrived")
    stop_set_status(stop=stop, to="failed", updates={"failure_reason": "no_one_home"})
    order_set_status(order=run.order, to=Order.Status.UNDELIVERABLE)
    after_window(_frozen_clock)
    run.refresh()
    assert localstripe.payment_intent(run.tip.stripe_payment_intent_id)["status"] == "canceled"
    assert run.tip.status == "canceled" and tips_payable(run.driver) == 400  # under the $5 cap


def capture_early(run, localstripe):
    """Stripe's capture_before falls inside our margin: the sweep captures while on the way."""
    pi = localstripe.payment_intent(run.tip.stripe_payment_intent_id)
    deadline = int((NOW + timedelta(minutes=50)).timestamp())
    pi["latest_charge"]["payment_method_details"] = {"card": {"capture_before": deadline}}
    tips.tip_payment_intent_event(pi)
    assert tips.tips_settle_due()["captured"] == 1


def test_a_tip_captured_early_on_an_order_not_delivered_is_refunded_and_the_driver_covered(
    zone, localstripe, _frozen_clock
):
    run = Run(zone, amount=650, card=localstripe.saved_card()).authorise()
    run.claim().pick_up()
    capture_early(run, localstripe)
    stop = run.trip.stop(0)
    stop_set_status(stop=stop, to="arrived")
    stop_set_status(stop=stop, to="failed", updates={"failure_reason": "no_one_home"})
    order_set_status(order=run.order, to=Order.Status.UNDELIVERABLE)
    after_window(_frozen_clock)
    run.refresh()
    charge = run.tip.charges.get()
    assert localstripe.payment_intent(charge.stripe_payment_intent_id)["latest_charge"]["amount_refunded"] == 650
    assert charge.refunded_cents == 650 and run.tip.settled_at is not None
    assert posted(f"tip-refunded:{charge.pk}:650") == {"tips_held": -650, "stripe_clearing": 650}
    # The driver was shown $6.50 and drove it: covered up to the zone's $5 cap, as for a released hold.
    assert run.tip.covered_cents == 500 and tips_payable(run.driver) == 500
    assert not LedgerTransaction.objects.filter(kind=tips.TIP_CREDITED).exists()
    assert ledger_total_cents() == 0
    after_window(_frozen_clock)  # a second sweep refunds and posts nothing more
    assert LedgerTransaction.objects.filter(kind=tips.TIP_REFUNDED).count() == 1


def test_a_refund_made_at_stripe_after_delivery_never_cuts_the_drivers_tip(zone, localstripe, client, settings):
    run = Run(zone, amount=650, card=localstripe.saved_card()).authorise().claim().pick_up()
    capture_early(run, localstripe)
    run.deliver()
    charge = run.tip.charges.get()
    # The store refunds $2.00 of the tip from Stripe's dashboard; Stripe tells us with a
    # charge.refunded event whose copy we do not trust: the webhook fetches the PaymentIntent.
    localstripe.client.v1.refunds.create(params={"payment_intent": charge.stripe_payment_intent_id, "amount": 200})
    event = {
        "id": "evt_refund_1",
        "object": "event",
        "type": "charge.refunded",
        "data": {"object": {"id": "ch_x", "object": "charge", "payment_intent": charge.stripe_payment_intent_id}},
    }
    assert post_stripe_event(client, settings, event).json()["status"] == "processed"
    later = {**event, "id": "evt_refund_2", "type": "refund.created"}  # the same refund, told again
    assert post_stripe_event(client, settings, later).json()["status"] == "processed"
    charge.refresh_from_db()
    assert charge.refunded_cents == 200
    assert posted(f"tip-refunded:{charge.pk}:200") == {"platform_expense": -200, "stripe_clearing": 200}
    with time_machine.travel(NOW + timedelta(hours=25), tick=False):
        tips.tips_settle_due()
    assert tips_payable(run.driver) == 650  # all of it, as shown: Spark bore the refund
    assert ledger_total_cents() == 0


# --- Changes --------------------------------------------------------------------------------


def test_store_changes_the_tip_either_way_until_a_driver_claims_the_batch(zone):
    run = Run(zone, amount=650)
    run.batch = batch_create(store=run.trip.store, orders=[run.order])
    batch_publish(batch=run.batch)
    tips.tip_change_by_store(order=run.order, amount_cents=200)
    run.refresh()
    assert run.order.tip_cents == 200 and run.batch.stops_tip_cents == 200  # the feed ranks on it
    tips.tip_change_by_store(order=run.order, amount_cents=900)
    run.refresh()
    assert run.tip.amount_cents == 900 and run.batch.stops_tip_cents == 900
    run.driver = make_driver(home_zone=zone)
    batch_set_status(batch=run.batch, to="assigned", updates={"driver": run.driver})
    with pytest.raises(tips.InvalidTransition):
        tips.tip_change_by_store(order=run.order, amount_cents=100)
    run.refresh()
    assert run.tip.amount_cents == 900 and run.order.tip_cents == 900


@pytest.fixture
def ops(client, settings):
    user = UserFactory(email="ops-tips@example.test", is_staff=True, is_superuser=True)
    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = [user.email]
    client.force_login(user)
    return user


def test_ops_lower_a_tip_with_a_reason_and_the_driver_is_told(zone, client, ops, commit, _frozen_clock):
    run = Run(zone, amount=1000).claim().pick_up()
    url = reverse("admin:payments_tip_lower", args=[run.tip.pk])
    assert client.get(url).status_code == 200
    # No reason, or a raise: refused, nothing changes.
    assert client.post(url, {"new_amount_cents": 400, "reason": " "}).status_code == 400
    assert client.post(url, {"new_amount_cents": 1500, "reason": "typo"}).status_code == 400
    assert client.post(url, {"new_amount_cents": -1, "reason": "typo"}).status_code == 400
    assert client.post(url, {"new_amount_cents": "ten", "reason": "typo"}).status_code == 400
    run.refresh()
    assert run.tip.amount_cents == 1000 and not TipAdjustment.objects.exists() and not mail.outbox
    with commit():
        res = client.post(url, {"new_amount_cents": 400, "reason": "Customer asked: $10 was a typo for $4"})
    assert res.status_code == 302
    run.refresh()
    adjustment = run.tip.adjustments.get()
    assert (adjustment.old_cents, adjustment.new_cents, adjustment.decided_by) == (1000, 400, ops)
    assert run.order.tip_cents == 400 and run.batch.stops_tip_cents == 400
    notice = DriverNotice.objects.get(driver=run.driver, kind=DriverNotice.Kind.TIP_LOWERED)
    assert notice.sent_at is not None and adjustment.driver_notified_at is not None
    [email] = [m for m in mail.outbox if m.to == [run.driver.user.email]]  # (the customer got "on the way")
    assert "$10.00" in email.body and "$4.00" in email.body and "a typo for $4" in email.body
    run.deliver()
    after_window(_frozen_clock)
    assert tips_payable(run.driver) == 400
    # Once the window closed the tip is settled as it stands: ops can no longer lower it.
    assert client.post(url, {"new_amount_cents": 100, "reason": "late complaint"}).status_code == 400
    run.refresh()
    assert run.tip.amount_cents == 400 and run.tip.adjustments.count() == 1


def test_a_capture_whose_answer_was_lost_is_recorded_once(zone, localstripe, _frozen_clock):
    run = Run(zone, card=localstripe.saved_card()).authorise().claim().pick_up().deliver()
    charge = run.tip.charges.get()
    # Stripe captured, but the worker died before recording it.
    assert tips.StripeTipBackend().capture(charge, 650)["status"] == "captured"
    after_window(_frozen_clock)
    run.refresh()
    assert run.tip.status == "captured" and tips_payable(run.driver) == 650
    assert posted(f"tip-captured:{charge.pk}") == {"tips_held": 650, "stripe_clearing": -650}


# --- The tracking page: raise ---------------------------------------------------------------


def page(client, order):
    return client.get(reverse("tracking", args=[order.tracking_token]))


def raise_tip(client, order, amount, key="raise-key-0123456789abcd"):
    return client.post(reverse("tracking-tip", args=[order.tracking_token]), {"amount": amount, "request_key": key})


def test_customer_raises_the_tip_on_the_tracking_page_and_the_driver_gets_all_of_it(zone, localstripe, _frozen_clock):
    client = Client(enforce_csrf_checks=True)
    run = Run(zone, card=localstripe.saved_card()).authorise().claim().pick_up()
    html = page(client, run.order).content.decode()
    assert "Raise your tip" in html and 'name="request_key"' in html and "$6.50" in html
    csrf = client.cookies["csrftoken"].value
    # Without the CSRF token: refused.
    assert raise_tip(client, run.order, "9.00").status_code == 403
    res = client.post(
        reverse("tracking-tip", args=[run.order.tracking_token]),
        {"amount": "9.00", "request_key": "raise-key-0123456789abcd", "csrfmiddlewaretoken": csrf},
    )
    assert res.status_code == 303 and res["Location"].endswith("?done=raised")
    run.refresh()
    assert run.tip.amount_cents == 900 and run.order.tip_cents == 900 and run.batch.stops_tip_cents == 900
    raise_charge = run.tip.charges.get(kind="raise")
    assert raise_charge.amount_cents == 250 and raise_charge.status == "authorized"
    pi = localstripe.payment_intent(raise_charge.stripe_payment_intent_id)
    assert (pi["amount"], pi["capture_method"], pi["status"]) == (250, "manual", "requires_capture")
    # The same submit again (double tap, retry) is the same raise.
    again = client.post(
        reverse("tracking-tip", args=[run.order.tracking_token]),
        {"amount": "9.00", "request_key": "raise-key-0123456789abcd", "csrfmiddlewaretoken": csrf},
    )
    assert again.status_code == 303 and run.tip.charges.count() == 2
    assert "Thank you! Your tip was raised" in client.get(res["Location"]).content.decode()
    # Both holds are captured when the window closes, and the driver gets $9.00.
    run.deliver()
    after_window(_frozen_clock)
    assert tips_payable(run.driver) == 900
    assert localstripe.payment_intent(raise_charge.stripe_payment_intent_id)["status"] == "succeeded"


@pytest.mark.parametrize("amount", ["-5", "abc", "1e3", "99999999", "<script>alert(1)</script>", "", "6.50", "1.00"])
def test_hostile_or_lower_raises_are_refused_and_nothing_changes(zone, localstripe, client, amount):
    run = Run(zone, card=localstripe.saved_card()).authorise().claim()
    res = raise_tip(client, run.order, amount)
    assert res.status_code == 400
    assert "<script>alert(1)</script>" not in res.content.decode()
    run.refresh()
    assert run.tip.amount_cents == 650 and run.tip.charges.count() == 1 and run.order.tip_cents == 650


def test_without_a_saved_card_the_page_offers_no_raise_and_says_none(zone, client):
    run = Run(zone, amount=650).claim().pick_up().deliver()
    html = page(client, run.order).content.decode()
    assert "$6.50" in html and "Raise" not in html and "add to your tip" not in html
    assert "Paid to the store with your order" in html
    res = raise_tip(client, run.order, "9.00")
    assert res.status_code == 409
    run.refresh()
    assert run.tip.amount_cents == 650 and not run.tip.charges.exists()


def test_no_raise_once_the_window_closed(zone, localstripe, client, _frozen_clock):
    run = Run(zone, card=localstripe.saved_card()).authorise().claim().pick_up().deliver()
    after_window(_frozen_clock)
    assert "Raise your tip" not in page(client, run.order).content.decode()
    assert raise_tip(client, run.order, "9.00").status_code == 409


# --- The tracking page: rating --------------------------------------------------------------


def rate(client, order, **data):
    return client.post(reverse("tracking-rate", args=[order.tracking_token]), data)


def test_customer_rates_the_delivery_once_and_the_driver_sees_it_on_their_standing(zone, client):
    run = Run(zone).claim().pick_up()
    assert "Rate your delivery" not in page(client, run.order).content.decode()
    assert rate(client, run.order, stars=5).status_code == 409  # not delivered yet
    run.deliver()
    assert "Rate your delivery" in page(client, run.order).content.decode()
    res = rate(client, run.order, stars=4, note="<script>alert('x')</script> quick & kind")
    assert res.status_code == 303
    rating = DeliveryRating.objects.get(order=run.order)
    assert (rating.stars, rating.driver) == (4, run.driver)
    html = page(client, run.order).content.decode()
    assert "You rated this delivery 4 out of 5." in html
    assert "<script>alert('x')</script>" not in html and "&lt;script&gt;" in html
    # Once: a second rating is refused and the first stands.
    assert rate(client, run.order, stars=1).status_code == 409
    assert DeliveryRating.objects.get(order=run.order).stars == 4
    # The driver's standing shows the average and the count instead of "No ratings yet".
    driver_client = Client()
    driver_client.force_login(run.driver.user)
    standing = driver_client.get(reverse("driver_app:standing")).content.decode()
    assert "No ratings yet" not in standing
    assert re.search(r"4\.0 / 5</b><span>Rating from 1 customer<", standing)


@pytest.mark.parametrize(
    "data", [{"stars": 0}, {"stars": 6}, {"stars": "x"}, {}, {"stars": 5, "note": "n" * 501}, {"stars": "4.5"}]
)
def test_bad_ratings_are_refused_and_nothing_is_saved(zone, client, data):
    run = Run(zone).claim().pick_up().deliver()
    assert rate(client, run.order, **data).status_code == 400
    assert not DeliveryRating.objects.exists()


def test_a_driver_without_ratings_still_sees_no_ratings_yet(zone):
    run = Run(zone).claim()
    driver_client = Client()
    driver_client.force_login(run.driver.user)
    assert "No ratings yet" in driver_client.get(reverse("driver_app:standing")).content.decode()


def test_a_returned_order_says_the_store_refunds_it(zone, client):
    run = Run(zone).claim().pick_up()
    stop = run.trip.stop(0)
    stop_set_status(stop=stop, to="arrived")
    stop_set_status(stop=stop, to="failed", updates={"failure_reason": "no_one_home"})
    order_set_status(order=run.order, to=Order.Status.UNDELIVERABLE)
    html = page(client, run.order).content.decode()
    assert f"{run.trip.store.name} will refund you for this order" in html
    assert "Rate your delivery" not in html and "Raise your tip" not in html


# --- Webhook events -------------------------------------------------------------------------


def authorised_lost(localstripe, run, charge) -> dict:
    """A PaymentIntent Stripe authorised for `charge` whose answer our task never recorded (it
    carries our charge id in its metadata, as ours do)."""
    return localstripe.client.v1.payment_intents.create(
        params={
            "amount": charge.amount_cents,
            "currency": "usd",
            "customer": run.tip.stripe_customer_id,
            "payment_method": run.tip.stripe_payment_method_id,
            "capture_method": "manual",
            "confirm": True,
            "off_session": True,
            "metadata": {"charge_id": str(charge.pk)},
        }
    ).to_dict()


def test_payment_intent_events_in_any_order_and_twice_count_once(zone, localstripe):
    run = Run(zone, card=localstripe.saved_card())
    charge = run.tip.charges.get()
    # The webhook tells us about the authorisation before our task recorded it (the task was
    # lost after Stripe answered): the PaymentIntent carries our charge id in its metadata.
    pi = authorised_lost(localstripe, run, charge)
    assert tips.tip_payment_intent_event(pi) and tips.tip_payment_intent_event(pi)
    run.refresh()
    assert run.tip.status == "authorized" and run.tip.authorized_cents == 650
    assert tips.tip_payment_intent_event({"id": "pi_someone_else", "status": "succeeded"}) is False
    # A stale "requires_payment_method" after the authorisation moves nothing back.
    tips.tip_payment_intent_event({**pi, "status": "requires_payment_method"})
    run.refresh()
    assert run.tip.status == "authorized"


def test_the_stripe_webhook_records_an_authorisation_our_task_lost(zone, localstripe, client, settings):
    run = Run(zone, card=localstripe.saved_card())
    charge = run.tip.charges.get()
    pi = authorised_lost(localstripe, run, charge)
    # The event's copy says nothing useful: the webhook fetches the PaymentIntent from Stripe.
    event = {
        "id": "evt_tip_1",
        "object": "event",
        "type": "payment_intent.amount_capturable_updated",
        "data": {"object": {"id": pi["id"], "object": "payment_intent"}},
    }
    res = post_stripe_event(client, settings, event)
    assert res.status_code == 200 and res.json()["status"] == "processed"
    run.refresh()
    assert run.tip.status == "authorized" and run.tip.stripe_payment_intent_id == pi["id"]
    again = post_stripe_event(client, settings, event)
    assert again.json()["status"] == "duplicate"
    run.refresh()
    assert run.tip.authorized_cents == 650


def test_an_order_without_a_tip_row_shows_its_amount(zone, client):
    order = OrderFactory(tip_cents=300)
    assert "$3.00" in page(client, order).content.decode()


def test_the_tip_and_rating_are_in_spanish(zone, localstripe):
    es = Client(HTTP_ACCEPT_LANGUAGE="es")
    run = Run(zone, card=localstripe.saved_card()).authorise().claim().pick_up().deliver()
    html = page(es, run.order).content.decode()
    assert "Aumenta tu propina a ($)" in html and "Califica tu entrega" in html
    assert "Retenida en tu tarjeta y cobrada 24 horas después de la entrega" in html
    assert "Raise your tip" not in html
