"""`manage.py seed_demo`: the demo world of `make run`, idempotent, with logins that work."""

from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Count, Max
from django.utils import timezone
from rest_framework.test import APIRequestFactory

from drivers.models import Driver, DriverEvent
from orders.models import Batch, BatchEvent, Order, OrderEvent, Stop
from payments.driver_earnings import current_week_start
from payments.models import BatchPay, Entry, Payout, PayPolicy, Tip, TipCharge
from payments.selectors import driver_balance_cents, ledger_total_cents
from spark.demo.history import PREFIX as HISTORY_PREFIX
from spark.money import format_cents
from store_api.authentication import StoreApiKeyAuthentication
from stores.models import DeliverySlot, Store, StoreApiKey, StoreMembership, Zone

pytestmark = pytest.mark.django_db

PASSWORD = "spark-demo"
STAFF_LOGINS = ["ops@spark.test", "associate@spark.test", "manager@spark.test"]
DRIVER_LOGINS = [f"driver{i}@spark.test" for i in range(1, 11)]
# Every table the seed may write, including history and allauth tables.
SEEDED_APPS = ("accounts", "account", "stores", "orders", "drivers", "payments", "dispatch")


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def row_counts() -> dict[str, int]:
    return {
        model._meta.label: model._default_manager.count()
        for app in SEEDED_APPS
        for model in apps.get_app_config(app).get_models()
    }


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"  # the history's proof photos


@pytest.fixture
def seeded():
    return seed()


def day_orders():
    """The day's orders (spark.demo.orders), without the money history's (spark.demo.history)."""
    return Order.objects.exclude(external_id__startswith=HISTORY_PREFIX)


def test_two_pilot_zones_with_pay_policies_and_three_stores_each(seeded):
    zones = {z.slug: z for z in Zone.objects.all()}
    assert set(zones) == {"nashville", "new-orleans"}
    assert {z.timezone for z in zones.values()} == {"America/Chicago"}
    assert PayPolicy.objects.filter(zone__in=zones.values()).count() == 2
    per_zone = dict(Store.objects.values_list("zone__slug").annotate(n=Count("pk")))
    assert per_zone == {"nashville": 3, "new-orleans": 3}
    for store in Store.objects.select_related("zone"):
        assert store.pickup_instructions and store.store_rules
        # the store is in its metro: within 25 km of the zone centre
        assert abs(float(store.lat) - float(store.zone.center_lat)) < 0.25
        assert abs(float(store.lng) - float(store.zone.center_lng)) < 0.25


def test_slots_for_today_and_tomorrow_at_every_store(seeded):
    assert Store.objects.exists()
    for store in Store.objects.all():
        slots = list(DeliverySlot.objects.filter(store=store))
        days = {timezone.localtime(s.starts_at, timezone=_tz(store)).date() for s in slots}
        assert len(days) == 2
        assert len(slots) == 12
        assert all(4 <= s.capacity <= 8 for s in slots)
        # Only seats taken by demo drivers 1-3 in the slot running now (spark.demo.drivers.put_on_duty).
        now = timezone.now()
        assert all(s.claimed == 0 or (s.starts_at <= now < s.ends_at and s.claimed <= 3) for s in slots)
        assert all((s.ends_at - s.starts_at).total_seconds() == 2 * 3600 for s in slots)


def test_about_two_hundred_orders_spread_over_stores_and_the_day(seeded):
    orders = day_orders()
    assert 180 <= orders.count() <= 220
    per_store = dict(orders.values_list("store__number").annotate(n=Count("pk")))
    assert len(per_store) == 6 and min(per_store.values()) >= 20
    hours = {timezone.localtime(o.window_start, timezone=_tz(o.store)).hour for o in orders.select_related("store")}
    assert hours == {8, 10, 12, 14, 16, 18}
    assert orders.filter(is_heavy=True).exists() and orders.filter(contains_alcohol=True).exists()
    assert orders.filter(tip_cents=0).exists() and orders.filter(tip_cents__gt=0).exists()
    assert all(1 <= o.totes <= 8 and 0 <= o.tip_cents <= 1500 for o in orders)


def test_published_batches_with_stops_and_events(seeded):
    batches = Batch.objects.filter(status=Batch.Status.PUBLISHED).select_related("store__zone")
    per_zone = dict(batches.values_list("store__zone__slug").annotate(n=Count("pk")))
    assert per_zone == {"nashville": 6, "new-orleans": 3}
    for batch in batches:
        stops = list(batch.stops.select_related("order"))
        assert 2 <= len(stops) <= 3
        assert [s.sequence for s in stops] == list(range(1, len(stops) + 1))
        assert {s.order.status for s in stops} == {Order.Status.READY}
        assert batch.route_meters > 0 and batch.route_seconds > 0 and batch.published_at
        assert batch.stops_count == len(stops)
        assert batch.pickup_by and batch.pickup_by < min(s.order.window_end for s in stops)
        assert sum(s.order.totes for s in stops) <= batch.store.batch_max_totes
        assert BatchEvent.objects.filter(batch=batch, to_status=Batch.Status.PUBLISHED).count() == 1
        for stop in stops:
            assert list(OrderEvent.objects.filter(order=stop.order).values_list("to_status", flat=True)) == [
                Order.Status.RECEIVED,
                Order.Status.BATCHED,
                Order.Status.READY,
            ]
    # every other order is as intake left it
    others = Order.objects.filter(status=Order.Status.RECEIVED)
    assert OrderEvent.objects.filter(order__in=others).count() == others.count()


def test_about_thirty_drivers_in_every_onboarding_state(seeded):
    drivers = Driver.objects.all()
    assert 25 <= drivers.count() <= 35
    assert set(drivers.values_list("status", flat=True)) == set(Driver.Status.values)
    assert set(drivers.values_list("home_zone__slug", flat=True)) == {"nashville", "new-orleans"}
    for driver in drivers.filter(status__in=[Driver.Status.SUSPENDED, Driver.Status.DEACTIVATED]):
        assert driver.reason_code
    for driver in drivers.exclude(status=Driver.Status.APPLICANT):
        assert DriverEvent.objects.filter(driver=driver, to_status=driver.status).exists()
    assert all(d.vehicle_make and d.license_expires_on and d.insurance_expires_on for d in drivers)


def test_ten_active_demo_drivers_in_nashville(seeded):
    demo = Driver.objects.filter(user__email__in=DRIVER_LOGINS)
    assert demo.count() == 10
    assert set(demo.values_list("status", "home_zone__slug")) == {(Driver.Status.ACTIVE, "nashville")}


def test_store_staff_and_ops_roles(seeded):
    first_store = Store.objects.get(number="5260")
    assert first_store.zone.slug == "nashville"
    memberships = set(StoreMembership.objects.values_list("user__email", "store__number", "role"))
    assert ("associate@spark.test", "5260", "associate") in memberships
    assert ("manager@spark.test", "5260", "manager") in memberships
    ops = get_user_model().objects.get(email="ops@spark.test")
    assert ops.is_staff and ops.is_superuser


@pytest.mark.parametrize("email", STAFF_LOGINS + DRIVER_LOGINS)
def test_demo_accounts_log_in(seeded, client, email):
    assert client.login(email=email, password=PASSWORD)
    assert EmailAddress.objects.filter(email=email, verified=True, primary=True).exists()


def test_demo_driver_logs_in_through_allauth_and_sees_the_driver_home(seeded, client):
    response = client.post("/accounts/login/", {"login": "driver1@spark.test", "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    assert response.url == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert b'id="role-driver"' in home.content


def test_demo_store_api_key_authenticates_for_the_first_nashville_store(seeded, settings):
    request = APIRequestFactory().get("/api/v1/", HTTP_AUTHORIZATION=f"Api-Key {settings.SPARK_DEMO_API_KEY}")
    user, key = StoreApiKeyAuthentication().authenticate(request)
    assert isinstance(key, StoreApiKey)
    assert key.store.number == "5260"
    assert key.prefix == settings.SPARK_DEMO_API_KEY[:8]
    assert not user.is_authenticated


def test_a_second_run_changes_nothing():
    today = timezone.localdate().isoformat()
    seed("--date", today)
    before = row_counts()
    orders_touched = Order.objects.aggregate(m=Max("updated_at"))["m"]
    passwords = dict(get_user_model().objects.values_list("email", "password"))

    output = seed("--date", today)

    assert row_counts() == before
    assert Order.objects.aggregate(m=Max("updated_at"))["m"] == orders_touched
    assert dict(get_user_model().objects.values_list("email", "password")) == passwords
    assert "Created: nothing new." in output


def test_the_same_seed_draws_the_same_world():
    seed("--date", "2026-11-21")
    first = list(Order.objects.order_by("external_id").values_list("external_id", "address_line1", "lat", "tip_cents"))
    Batch.objects.filter(status=Batch.Status.PUBLISHED).delete()  # stops cascade
    TipCharge.objects.filter(tip__order__in=day_orders()).delete()
    Tip.objects.filter(order__in=day_orders()).delete()
    day_orders().delete()
    seed("--date", "2026-11-21")
    again = list(Order.objects.order_by("external_id").values_list("external_id", "address_line1", "lat", "tip_cents"))
    assert again == first


def test_rerun_restores_broken_demo_logins(client):
    seed()
    user = get_user_model().objects.get(email="driver3@spark.test")
    user.set_password("something-else-123")
    user.save()
    EmailAddress.objects.filter(user=user).update(verified=False)
    from drivers.services import driver_set_status

    driver_set_status(driver=user.driver, to=Driver.Status.SUSPENDED, reason_code=Driver.ReasonCode.OTHER)
    before = Driver.objects.count()

    seed()

    assert client.login(email="driver3@spark.test", password=PASSWORD)
    user.driver.refresh_from_db()
    assert user.driver.status == Driver.Status.ACTIVE
    assert EmailAddress.objects.get(user=user).verified
    assert Driver.objects.count() == before


def _tz(store):
    from zoneinfo import ZoneInfo

    return ZoneInfo(store.zone.timezone)


# --- The money history (spark.demo.history) ---------------------------------------------------


def test_demo_drivers_delivered_batches_that_settled_into_their_balance(seeded):
    driver1 = Driver.objects.get(user__email="driver1@spark.test")
    driver2 = Driver.objects.get(user__email="driver2@spark.test")
    done = Batch.objects.filter(status=Batch.Status.COMPLETED)
    assert dict(done.values_list("driver__user__email").annotate(n=Count("pk"))) == {
        "driver1@spark.test": 4,
        "driver2@spark.test": 2,
    }
    for batch in done:
        pay = BatchPay.objects.get(batch=batch)
        # each one claimed through dispatch: an accepted offer's pay snapshot, never paid less
        assert pay.snapshot is not None and pay.snapshot.offer.status == "accepted"
        assert pay.snapshot.offer.driver_id == batch.driver_id
        assert pay.final_cents >= pay.snapshot_cents > 0
        for stop in batch.stops.select_related("order"):
            assert stop.status == Stop.Status.DELIVERED and stop.proof_photo and stop.delivered_at
            assert stop.order.status == Order.Status.DELIVERED
        assert sum(e.amount_cents for e in Entry.objects.filter(transaction__batch=batch)) == 0
    # Every cent accounted for: the ledger balances, and each driver's balance is what their
    # batches paid less what was paid out (fee included); tips wait for their window.
    assert ledger_total_cents() == 0
    for driver in (driver1, driver2):
        paid = sum(BatchPay.objects.filter(driver=driver).values_list("final_cents", flat=True))
        out = sum(p.amount_cents + p.fee_cents for p in Payout.objects.filter(driver=driver, status="paid"))
        assert driver_balance_cents(driver=driver) == paid - out > 0
    # the tips on their deliveries are authorised and wait for their adjust window to close
    tips = Tip.objects.filter(order__stops__batch__in=done)
    assert tips.count() == 13
    assert {(t.status, t.settled_at) for t in tips} == {(Tip.Status.AUTHORIZED, None)}
    assert all(t.adjust_window_closes_at and t.adjust_window_closes_at > timezone.now() for t in tips)


def test_demo_driver1_had_a_weekly_payout_and_a_cash_out(seeded):
    payouts = list(Payout.objects.filter(driver__user__email="driver1@spark.test").order_by("pk"))
    assert [(p.kind, p.status) for p in payouts] == [("weekly", "paid"), ("instant", "paid")]
    weekly, cashout = payouts
    assert (
        weekly.fee_cents == 0 and cashout.fee_cents == PayPolicy.objects.get(zone__slug="nashville").cashout_fee_cents
    )
    assert weekly.external_id.startswith("sandbox_tr_") and cashout.external_id.startswith("sandbox_tr_")
    # driver2 was paid by the same weekly run
    assert Payout.objects.filter(driver__user__email="driver2@spark.test", kind="weekly", status="paid").count() == 1


def test_demo_driver1_sees_pay_payouts_and_a_statement(seeded, client):
    assert client.login(email="driver1@spark.test", password=PASSWORD)
    driver = Driver.objects.get(user__email="driver1@spark.test")
    home = client.get("/driver/earnings/")
    assert home.status_code == 200
    html = home.content.decode()
    assert format_cents(driver_balance_cents(driver=driver)) in html
    assert html.count('data-testid="batch-row"') == 4 and 'data-testid="batch-pay-pending"' not in html
    assert html.count('data-testid="pending-tip"') == 9
    payouts = client.get("/driver/earnings/payouts/").content.decode()
    assert "Weekly payout" in payouts and "Instant cash-out" in payouts
    week = current_week_start(driver=driver, now=timezone.now())
    csv = client.get(f"/driver/earnings/statements/{week.isoformat()}/csv/")
    assert csv.status_code == 200
    rows = csv.content.decode().splitlines()
    categories = {row.split(",")[2] for row in rows[1:]}
    assert {"batch_pay", "payout", "fee"} <= categories


def test_a_second_run_makes_no_second_history(seeded):
    before = (Batch.objects.count(), BatchPay.objects.count(), Payout.objects.count(), Entry.objects.count())
    output = seed()
    assert (Batch.objects.count(), BatchPay.objects.count(), Payout.objects.count(), Entry.objects.count()) == before
    assert "Created: nothing new." in output


def test_no_history_leaves_the_money_history_out():
    output = seed("--no-history")
    assert not Batch.objects.filter(status=Batch.Status.COMPLETED).exists()
    assert not BatchPay.objects.exists() and not Payout.objects.exists()
    assert "delivered batches" not in output
