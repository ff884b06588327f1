"""The ops admin: every model's pages load, status is read-only and changes only through
service-calling actions, the ledger cannot be touched, and the batch list stays cheap."""

from datetime import date, time, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.messages import get_messages
from django.db import connection
from django.db.models.fields.files import FieldFile
from django.forms import MultiWidget
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from simple_history.admin import SimpleHistoryAdmin
from simple_history.models import HistoricalChanges

from dispatch.models import ClaimAttempt, Offer, OfferEvent
from dispatch.tests.factories import OfferFactory
from drivers.models import Driver, DriverEvent, Location, PushSubscription
from drivers.services import driver_set_status
from drivers.tests.factories import DriverFactory, RouteFactory, SlotClaimFactory
from orders.models import (
    Batch,
    BatchEvent,
    BatchingRun,
    DeliveryRating,
    Order,
    OrderEvent,
    StopEvent,
    SupportRequest,
)
from orders.tests.factories import BatchFactory, OrderFactory, StopFactory
from payments.models import (
    Account,
    BatchPay,
    DriverNotice,
    Entry,
    LedgerTransaction,
    OfferPaySnapshot,
    PayAdjustment,
    Payout,
    PayoutAccount,
    PayoutRun,
    Reconciliation,
    ScreeningCase,
    ScreeningEvent,
    TaxProfile,
    Tip,
    TipAdjustment,
    TipCharge,
    WebhookEvent,
)
from payments.services import account_for_driver, ledger_post, system_account
from payments.tests.factories import PayPolicyFactory
from stores.models import DeliverySlot, SlotTemplate, Store, StoreApiKey, StoreMembership, Zone
from stores.tests.factories import (
    DeliverySlotFactory,
    StoreApiKeyFactory,
    StoreFactory,
    StoreMembershipFactory,
    UserFactory,
    ZoneFactory,
)

pytestmark = pytest.mark.django_db

ADMIN_APPS = ["stores", "orders", "drivers", "payments"]
MODELS = [
    model
    for label in ADMIN_APPS
    for model in apps.get_app_config(label).get_models()
    if not issubclass(model, HistoricalChanges)  # simple_history's tables are shown on each object's History page
]
ADDABLE = {Zone, Store, StoreMembership, DeliverySlot, SlotTemplate, apps.get_model("payments", "PayPolicy")}
LEDGER = [Account, LedgerTransaction, Entry]


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def ops_admin(client, settings):
    user = UserFactory(email="ops-admin@example.test", is_staff=True, is_superuser=True)
    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = [user.email]
    client.force_login(user)
    return user


@pytest.fixture
def world(ops_admin):
    """One row of every model the admin shows, built the way the app builds them."""
    zone = ZoneFactory()
    store = StoreFactory(zone=zone)
    slot = DeliverySlotFactory(store=store, claimed=1)
    order = OrderFactory(store=store)
    now = timezone.now()
    run = BatchingRun.objects.create(store=store, window_from=now, window_to=now + timedelta(hours=2))
    batch = BatchFactory(store=store, batching_run=run)
    stop = StopFactory(batch=batch, order=order, sequence=1)
    driver = DriverFactory(home_zone=zone)
    offer = OfferFactory(batch=batch, driver=driver)
    event = {"from_status": "a", "to_status": "b", "actor": ops_admin, "reason": "test"}
    txn = ledger_post(
        idempotency_key=f"batch-pay:{batch.pk}",
        kind="batch_pay",
        batch=batch,
        entries=[
            (account_for_driver(driver=driver), 1350),
            (system_account(kind=Account.Kind.PLATFORM_EXPENSE), -1350),
        ],
    ).transaction
    tip = Tip.objects.create(order=order, amount_cents=500, authorized_cents=500)
    rows = [
        zone,
        store,
        slot,
        order,
        run,
        batch,
        stop,
        driver,
        offer,
        txn,
        tip,
        StoreMembershipFactory(store=store),
        StoreApiKeyFactory(store=store),
        SlotTemplate.objects.create(store=store, weekdays="01234", start_time=time(10), end_time=time(12), capacity=8),
        OrderEvent.objects.create(order=order, **event),
        BatchEvent.objects.create(batch=batch, **event),
        StopEvent.objects.create(stop=stop, **event),
        OfferEvent.objects.create(offer=offer, **event),
        DriverEvent.objects.create(driver=driver, **event),
        RouteFactory(driver=driver),
        SlotClaimFactory(driver=driver, slot=slot),
        Location.objects.create(driver=driver, lat=Decimal("36.1"), lng=Decimal("-86.7"), accuracy_m=12),
        PayPolicyFactory(zone=zone),
        OfferPaySnapshot.objects.create(
            offer=offer,
            base_cents=400,
            stops_cents=150,
            miles_cents=300,
            heavy_cents=0,
            incentive_cents=0,
            tip_cents=500,
            total_cents=1350,
            routed_meters=12000,
        ),
        txn.entries.first(),
        txn.entries.first().account,
        TipAdjustment.objects.create(tip=tip, old_cents=500, new_cents=700, reason="customer raised it"),
        TipCharge.objects.create(tip=tip, kind=TipCharge.Kind.RAISE, amount_cents=200, request_key="k" * 20),
        DeliveryRating.objects.create(order=order, driver=driver, stars=5, note="<b>kind</b>"),
        Payout.objects.create(driver=driver, kind=Payout.Kind.WEEKLY, amount_cents=1350, idempotency_key="payout:1"),
        WebhookEvent.objects.create(source="stripe", event_id="evt_1", event_type="payout.paid", payload={}),
        PayoutAccount.objects.create(driver=driver, account_id="acct_1", requirements_due=["external_account"]),
        PayoutRun.objects.create(zone=zone, week_of=now.date(), payouts=1, total_cents=1350),
        Reconciliation.objects.create(ok=False, differences=["Payout 1 is paid but Stripe has no transfer for it."]),
        TaxProfile.objects.create(
            driver=driver,
            legal_name="Ana López",
            tin_type="ssn",
            tin_encrypted="encrypted",
            tin_last4="6789",
            address_line1="100 Broadway",
            city="Nashville",
            state="TN",
            postal_code="37203",
            certified_at=now,
        ),
        ClaimAttempt.objects.create(batch=batch, driver=driver, score=1.5, detail={"slot": True}),
        PushSubscription.objects.create(
            driver=driver, endpoint="https://push.example.test/sub/1", p256dh="k", auth="a"
        ),
        SupportRequest.objects.create(
            driver=driver, batch=batch, topic="order", text="<b>Gate locked</b> and the customer did not answer"
        ),
    ]
    pay = BatchPay.objects.create(
        batch=batch,
        driver=driver,
        snapshot_cents=1350,
        base_cents=400,
        stops_cents=150,
        miles_cents=300,
        heavy_cents=0,
        routed_meters=12000,
        stops_paid=1,
        heavy_paid=0,
        incentive_cents=0,
        wait_minutes=0,
        wait_cents=0,
        final_cents=1350,
    )
    rows += [
        pay,
        PayAdjustment.objects.create(batch_pay=pay, amount_cents=100, reason="goodwill", created_by=ops_admin),
    ]
    case = ScreeningCase.objects.create(driver=driver, status=ScreeningCase.Status.IN_REVIEW, submitted_at=now)
    rows += [
        case,
        ScreeningEvent.objects.create(case=case, **event),
        DriverNotice.objects.create(
            driver=driver,
            case=case,
            kind=DriverNotice.Kind.SCREENING_UNDER_REVIEW,
            key=f"screening_under_review:{case.pk}",
        ),
    ]
    return {type(row): row for row in rows}


def run_action(client, model, action: str, objects, **extra):
    data = {"action": action, "_selected_action": [obj.pk for obj in objects], **extra}
    response = client.post(url(model, "changelist"), data)
    assert response.status_code == 302, response.content[:2000]
    return [(m.level, str(m)) for m in get_messages(response.wsgi_request)]


def change_form_data(response, **changes) -> dict:
    """POST data for an admin change form as it was rendered, plus `changes`."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name)
        if isinstance(field.widget, MultiWidget):
            for i, part in enumerate(field.widget.decompress(value)):
                data[f"{name}_{i}"] = part
        elif value is not None and not isinstance(value, FieldFile):  # files are not re-posted
            data[name] = value
    for inline in response.context.get("inline_admin_formsets", []):
        management = inline.formset.management_form
        data.update({f"{management.prefix}-{key}": value for key, value in management.initial.items()})
    data.update(changes)
    return data


# --- every page loads ----------------------------------------------------------------------------------


def test_every_model_has_an_admin_and_a_test_row(world):
    for model in MODELS:
        assert admin.site.is_registered(model), model
        assert model in world, f"add a {model.__name__} to the world fixture"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_changelist_change_and_add_pages(client, world, model):
    obj = world[model]
    assert client.get(url(model, "changelist")).status_code == 200
    assert client.get(url(model, "change", obj.pk)).status_code == 200
    assert client.get(url(model, "add")).status_code == (200 if model in ADDABLE else 403)
    if isinstance(admin.site._registry[model], SimpleHistoryAdmin):
        assert client.get(url(model, "history", obj.pk)).status_code == 200


HISTORY_MODELS = [m for m in MODELS if isinstance(admin.site._registry[m], SimpleHistoryAdmin)]


@pytest.mark.parametrize("model", HISTORY_MODELS, ids=lambda m: m.__name__)
def test_history_pages_answer_404_for_ids_that_cannot_be_a_row(client, world, model):
    # simple-history looks ids up unchecked: "abc" was a 500 (ValueError) before.
    obj = world[model]
    for object_id, version_id in (("abc", None), ("1 OR 1=1", None), (obj.pk, "abc"), ("abc", "1")):
        path = (
            url(model, "history", object_id)
            if version_id is None
            else url(model, "simple_history", object_id, version_id)
        )
        assert client.get(path).status_code == 404, path


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("query", ["1", "Broadway example"])
def test_search(client, world, model, query):
    response = client.get(url(model, "changelist"), {"q": query})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("model", "params"),
    [
        (Batch, {"stuck": "unassigned"}),
        (Batch, {"stuck": "at_store"}),
        (Offer, {"expiry": "overdue"}),
        (Order, {"late": "yes"}),
        (Driver, {"documents": "expiring"}),
        (Driver, {"documents": "expired"}),
        (apps.get_model("drivers", "SlotClaim"), {"no_show": "unreleased"}),
        (StoreApiKey, {"state": "revoked"}),
        (DeliverySlot, {"seats": "free"}),
        (Tip, {"capture": "overdue"}),
        (Payout, {"stuck": "pending"}),
        (WebhookEvent, {"processed": "no"}),
    ],
)
def test_custom_filters_load(client, world, model, params):
    assert client.get(url(model, "changelist"), params).status_code == 200


def shown(response) -> set:
    return {obj.pk for obj in response.context["cl"].result_list}


def test_stuck_filter_lists_published_batches_unclaimed_for_over_ten_minutes(client, ops_admin):
    now = timezone.now()
    stuck = BatchFactory(status=Batch.Status.PUBLISHED, published_at=now - timedelta(minutes=11))
    BatchFactory(status=Batch.Status.PUBLISHED, published_at=now - timedelta(minutes=3))
    BatchFactory(status=Batch.Status.DRAFT)
    response = client.get(url(Batch, "changelist"), {"stuck": "unassigned"})
    assert shown(response) == {stuck.pk}


def test_offer_filter_lists_pending_offers_past_expiry(client, ops_admin):
    now = timezone.now()
    past = {"created_at": now - timedelta(minutes=5), "expires_at": now - timedelta(minutes=1)}
    overdue = OfferFactory(**past)
    OfferFactory()  # pending, not due
    OfferFactory(status=Offer.Status.EXPIRED, **past)
    response = client.get(url(Offer, "changelist"), {"expiry": "overdue"})
    assert shown(response) == {overdue.pk}


def test_documents_filter_lists_drivers_with_license_or_insurance_expiring_within_14_days(client, ops_admin):
    today = date.today()
    license_soon = DriverFactory(license_expires_on=today + timedelta(days=10))
    insurance_soon = DriverFactory(insurance_expires_on=today + timedelta(days=14))
    DriverFactory()  # a year and half a year away
    expired = DriverFactory(insurance_expires_on=today - timedelta(days=1))
    response = client.get(url(Driver, "changelist"), {"documents": "expiring"})
    assert shown(response) == {license_soon.pk, insurance_soon.pk}
    response = client.get(url(Driver, "changelist"), {"documents": "expired"})
    assert shown(response) == {expired.pk}


def test_admin_needs_mfa(client, settings):
    # given a superuser without TOTP who is not exempt
    settings.SPARK_ADMIN_MFA_EXEMPT_EMAILS = []
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    # then the admin sends them to set up TOTP
    response = client.get(url(Batch, "changelist"))
    assert response.status_code == 302
    assert reverse("mfa_activate_totp") in response["Location"]


# --- status is read-only; changes go through services ---------------------------------------------------


def test_status_is_not_editable_on_the_change_form(client, ops_admin):
    # given an active driver
    driver = DriverFactory(status=Driver.Status.ACTIVE)
    response = client.get(url(Driver, "change", driver.pk))
    assert "status" not in response.context["adminform"].form.fields
    # when ops save the form with a new vehicle colour and a forged status
    data = change_form_data(response, vehicle_color="Red", status=Driver.Status.DEACTIVATED)
    response = client.post(url(Driver, "change", driver.pk), data)
    # then the colour is saved and the status is not
    assert response.status_code == 302, response.context["adminform"].form.errors
    driver.refresh_from_db()
    assert (driver.vehicle_color, driver.status) == ("Red", Driver.Status.ACTIVE)
    assert not DriverEvent.objects.filter(driver=driver).exists()


@pytest.mark.parametrize("model", [Order, Batch, Driver, Offer, apps.get_model("orders", "Stop"), Tip, Payout])
def test_status_is_read_only_in_every_admin(rf, ops_admin, model):
    request = rf.get("/admin/")
    request.user = ops_admin
    model_admin = admin.site._registry[model]
    assert "status" in model_admin.get_readonly_fields(request) or not model_admin.has_change_permission(request)


def test_admin_save_does_not_undo_a_concurrent_status_change(rf, ops_admin):
    # given a driver the admin form has loaded
    driver = DriverFactory(status=Driver.Status.ACTIVE)
    stale = Driver.objects.get(pk=driver.pk)
    # when a service suspends the driver before the admin saves a new colour
    driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=Driver.ReasonCode.SAFETY)
    stale.vehicle_color = "Red"
    request = rf.post("/admin/")
    request.user = ops_admin
    admin.site._registry[Driver].save_model(request, stale, SimpleNamespace(changed_data=["vehicle_color"]), True)
    # then both changes stand
    driver.refresh_from_db()
    assert (driver.vehicle_color, driver.status) == ("Red", Driver.Status.SUSPENDED)


def test_history_revert_cannot_bring_an_old_status_back(client, ops_admin):
    # given a driver whose first history version is active, suspended since by the service
    driver = DriverFactory(status=Driver.Status.ACTIVE)
    first = driver.history.earliest()
    driver_set_status(driver=driver, to=Driver.Status.SUSPENDED, reason_code=Driver.ReasonCode.SAFETY)
    revert_url = url(Driver, "simple_history", driver.pk, first.history_id)
    response = client.get(revert_url)
    assert response.status_code == 200 and response.context["revert_disabled"]
    # when someone posts the old version anyway
    client.post(revert_url, change_form_data(response))
    # then the status stays what the service made it
    driver.refresh_from_db()
    assert driver.status == Driver.Status.SUSPENDED


def test_slot_capacity_below_claimed_seats_is_a_form_error(client, ops_admin):
    slot = DeliverySlotFactory(capacity=8, claimed=3)
    response = client.get(url(DeliverySlot, "change", slot.pk))
    response = client.post(url(DeliverySlot, "change", slot.pk), change_form_data(response, capacity=2))
    assert response.status_code == 200
    assert "capacity" in response.context["adminform"].form.errors
    slot.refresh_from_db()
    assert (slot.capacity, slot.claimed) == (8, 3)


def test_slot_capacity_change_leaves_the_claimed_counter_alone(client, ops_admin):
    slot = DeliverySlotFactory(capacity=8, claimed=3)
    response = client.get(url(DeliverySlot, "change", slot.pk))
    DeliverySlot.objects.filter(pk=slot.pk).update(claimed=4)  # a driver claims a seat meanwhile
    response = client.post(url(DeliverySlot, "change", slot.pk), change_form_data(response, capacity=6))
    assert response.status_code == 302
    slot.refresh_from_db()
    assert (slot.capacity, slot.claimed) == (6, 4)


# --- status actions -------------------------------------------------------------------------------------

REASON = {"reason_code": Driver.ReasonCode.SAFETY, "note": "report under review"}


def batch_with_stop(status="draft", order_status="batched", **kwargs):
    batch = BatchFactory(status=status, **kwargs)
    StopFactory(batch=batch, order=OrderFactory(store=batch.store, status=order_status))
    return batch


def pending_overdue_offer():
    now = timezone.now()
    return OfferFactory(created_at=now - timedelta(minutes=5), expires_at=now - timedelta(seconds=1))


# (model, action, make the object, POST extra, status it ends in, its event model)
ACTIONS_OK = [
    (Driver, "move_to_screening", lambda: DriverFactory(status="applicant"), {}, "screening", DriverEvent),
    (Driver, "activate", lambda: DriverFactory(status="screening"), {}, "active", DriverEvent),
    (Driver, "suspend", lambda: DriverFactory(status="active"), REASON, "suspended", DriverEvent),
    (Driver, "deactivate", lambda: DriverFactory(status="suspended"), REASON, "deactivated", DriverEvent),
    (Batch, "publish", batch_with_stop, {}, "published", BatchEvent),
    (Batch, "back_to_draft", lambda: batch_with_stop("published", "ready"), {}, "draft", BatchEvent),
    (Batch, "cancel", batch_with_stop, {"reason": "store closed"}, "cancelled", BatchEvent),
    (Order, "cancel", lambda: OrderFactory(status="received"), {"reason": "customer called"}, "cancelled", OrderEvent),
    (Offer, "withdraw", lambda: OfferFactory(status="pending"), {}, "withdrawn", OfferEvent),
    (Offer, "expire_overdue", pending_overdue_offer, {}, "expired", OfferEvent),
]

# (model, action, make an object the action must refuse, POST extra)
ACTIONS_REFUSED = [
    (Driver, "move_to_screening", lambda: DriverFactory(status="active"), {}),
    (Driver, "activate", lambda: DriverFactory(status="applicant"), {}),
    (Driver, "suspend", lambda: DriverFactory(status="applicant"), REASON),
    (Driver, "suspend", lambda: DriverFactory(status="active"), {}),  # no reason code
    (Driver, "deactivate", lambda: DriverFactory(status="active"), {}),  # no reason code
    (Batch, "publish", lambda: BatchFactory(status="draft"), {}),  # no stops
    (Batch, "back_to_draft", lambda: batch_with_stop("cancelled", "received"), {}),
    (Batch, "cancel", lambda: batch_with_stop("picked_up", "picked_up", driver=DriverFactory()), {}),
    (Order, "cancel", lambda: OrderFactory(status="picked_up"), {}),
    (Offer, "withdraw", lambda: OfferFactory(status="declined"), {}),
]


def event_count(event_model, obj) -> int:
    return event_model.objects.filter(**{obj._meta.model_name: obj}).count()


@pytest.mark.parametrize(
    ("model", "action", "make", "extra", "to", "event_model"),
    ACTIONS_OK,
    ids=[f"{a[0].__name__}.{a[1]}" for a in ACTIONS_OK],
)
def test_status_action_calls_the_service(client, ops_admin, model, action, make, extra, to, event_model):
    # given an object in a status the action applies to
    obj = make()
    # when ops run the action on it
    sent = run_action(client, model, action, [obj], **extra)
    # then the service moved it and wrote one event naming ops
    obj.refresh_from_db()
    assert obj.status == to
    event = event_model.objects.get(**{model._meta.model_name: obj})
    assert event.to_status == to
    assert event.actor == (None if action == "expire_overdue" else ops_admin)  # expiry is the system's doing
    assert (messages.SUCCESS, "1 changed.") in sent
    # and doing it again changes nothing
    sent = run_action(client, model, action, [obj], **extra)
    assert event_count(event_model, obj) == 1
    assert not any(level == messages.ERROR for level, _ in sent)


@pytest.mark.parametrize(
    ("model", "action", "make", "extra"),
    ACTIONS_REFUSED,
    ids=[f"{a[0].__name__}.{a[1]}-{i}" for i, a in enumerate(ACTIONS_REFUSED)],
)
def test_refused_status_action_shows_an_error_and_changes_nothing(client, ops_admin, model, action, make, extra):
    obj = make()
    before = obj.status
    sent = run_action(client, model, action, [obj], **extra)
    obj.refresh_from_db()
    assert obj.status == before
    assert [level for level, _ in sent] == [messages.ERROR]
    assert str(obj) in sent[0][1]


def test_one_refusal_does_not_stop_the_others(client, ops_admin):
    draft, cancelled = batch_with_stop(), BatchFactory(status="cancelled")
    sent = run_action(client, Batch, "publish", [draft, cancelled])
    draft.refresh_from_db()
    cancelled.refresh_from_db()
    assert (draft.status, cancelled.status) == ("published", "cancelled")
    assert sorted(level for level, _ in sent) == [messages.SUCCESS, messages.ERROR]


def test_cancelling_a_batch_sends_its_orders_back_to_the_queue(client, ops_admin):
    batch = batch_with_stop("published", "ready")
    run_action(client, Batch, "cancel", [batch], reason="store closed early")
    stop = batch.stops.get()
    assert (stop.status, stop.order.status) == ("removed", "received")


def test_expire_action_leaves_offers_that_are_not_due(client, ops_admin):
    offer = OfferFactory()  # expires in a minute
    sent = run_action(client, Offer, "expire_overdue", [offer])
    offer.refresh_from_db()
    assert offer.status == Offer.Status.PENDING
    assert not OfferEvent.objects.filter(offer=offer).exists()
    assert [level for level, _ in sent] == [messages.INFO]


# --- API keys -------------------------------------------------------------------------------------------


def test_api_key_hash_is_never_shown(client, ops_admin):
    key = StoreApiKeyFactory()
    response = client.get(url(StoreApiKey, "change", key.pk))
    assert key.key_hash not in response.content.decode()
    assert "key_hash" not in response.context["adminform"].form.fields


def test_revoke_action_sets_revoked_at_once(client, ops_admin):
    key, revoked = StoreApiKeyFactory(), StoreApiKeyFactory(revoked_at=timezone.now() - timedelta(days=1))
    earlier = revoked.revoked_at
    run_action(client, StoreApiKey, "revoke", [key, revoked])
    key.refresh_from_db()
    revoked.refresh_from_db()
    assert key.revoked_at is not None and not key.is_active
    assert revoked.revoked_at == earlier


# --- ledger ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", LEDGER, ids=lambda m: m.__name__)
def test_ledger_cannot_be_added_changed_or_deleted(client, world, model):
    obj = world[model]
    entries = list(Entry.objects.values_list("pk", "account_id", "amount_cents"))
    assert client.get(url(model, "add")).status_code == 403
    assert client.post(url(model, "add"), {}).status_code == 403
    assert client.post(url(model, "change", obj.pk), {"memo": "x", "name": "x", "amount_cents": 1}).status_code == 403
    assert client.get(url(model, "delete", obj.pk)).status_code == 403
    assert client.post(url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert client.get(url(model, "changelist")).context["action_form"] is None  # not even "delete selected"
    assert list(Entry.objects.values_list("pk", "account_id", "amount_cents")) == entries


def test_ledger_pages_show_money_formatted(client, world):
    txn = world[LedgerTransaction]
    content = client.get(url(LedgerTransaction, "change", txn.pk)).content.decode()
    assert "$13.50" in content and "-$13.50" in content  # its entries
    assert "$13.50" in client.get(url(LedgerTransaction, "changelist")).content.decode()  # amount moved
    content = client.get(url(Account, "changelist")).content.decode()
    assert "$13.50" in content and "-$13.50" in content  # balances


# --- query count ----------------------------------------------------------------------------------------


def test_batch_changelist_queries_do_not_grow_with_rows(client, ops_admin, django_assert_max_num_queries):
    def make_batches(n):
        for i in range(n):
            if i % 2:
                batch = BatchFactory(status=Batch.Status.ASSIGNED, driver=DriverFactory())
            else:
                batch = BatchFactory(status=Batch.Status.PUBLISHED, published_at=timezone.now())
            StopFactory.create_batch(2, batch=batch)

    make_batches(1)
    client.get(url(Batch, "changelist"))  # warm caches (content types, sessions)
    with CaptureQueriesContext(connection) as one:
        client.get(url(Batch, "changelist"))
    make_batches(19)
    with django_assert_max_num_queries(len(one)):
        response = client.get(url(Batch, "changelist"))
    assert len(response.context["cl"].result_list) == 20


# --- The batch's money (payments.money_trace) --------------------------------------------------


def test_batch_page_traces_every_cent_with_links_and_escapes_hostile_text(client, ops_admin):
    from payments.tests.money_trace_builders import settled_batch
    from spark.money import format_cents

    run, offer, pay = settled_batch(note='<script>alert("pay")</script> waited')
    Order.objects.filter(pk=run.order.pk).update(external_id="<img src=x onerror=alert(2)>")
    page = client.get(reverse("admin:orders_batch_change", args=[run.batch.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="money-trace"' in html
    snapshot = OfferPaySnapshot.objects.get(offer=offer)
    assert f'<b data-testid="trace-guaranteed">{format_cents(pay.snapshot_cents)}</b>' in html
    assert f'<b data-testid="trace-final">{format_cents(pay.final_cents)}</b>' in html
    assert f'<b data-testid="trace-pay-total">{format_cents(pay.final_cents + 250)}</b>' in html
    assert f'<b data-testid="trace-to-driver">{format_cents(pay.final_cents + 250)}</b>' in html
    assert '<td data-testid="trace-net">$0.00</td>' in html
    # each row links to its own admin page
    adjustment = PayAdjustment.objects.get(batch_pay=pay)
    for url in (
        reverse("admin:payments_offerpaysnapshot_change", args=[snapshot.pk]),
        reverse("admin:dispatch_offer_change", args=[offer.pk]),
        reverse("admin:payments_batchpay_change", args=[pay.pk]),
        reverse("admin:payments_payadjustment_change", args=[adjustment.pk]),
        reverse("admin:payments_ledgertransaction_change", args=[pay.ledger_transaction_id]),
        reverse("admin:payments_tip_change", args=[run.tip.pk]),
        reverse("admin:payments_tipcharge_change", args=[run.tip.charges.get().pk]),
    ):
        assert f'href="{url}"' in html
    for entry in Entry.objects.filter(transaction__batch=run.batch):
        assert f'href="{reverse("admin:payments_entry_change", args=[entry.pk])}"' in html
        assert f'href="{reverse("admin:payments_account_change", args=[entry.account_id])}"' in html
    assert html.count('data-testid="trace-transaction"') == 2
    # hostile text from an ops note and an order's external id is shown as text
    assert "<script>alert(" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;pay&quot;)&lt;/script&gt; waited" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html


def test_an_unsettled_batch_page_says_so(client, ops_admin):
    batch = BatchFactory()
    html = client.get(reverse("admin:orders_batch_change", args=[batch.pk])).content.decode()
    assert "Not settled." in html and "Nothing posted to the ledger for this batch yet." in html
    assert "No accepted offer" in html


# --- help requests ------------------------------------------------------------------------------------


def test_ops_see_help_requests_in_a_queue_and_resolve_them(client, world, ops_admin):
    # given a driver's report on a batch and one about pay, both open
    on_batch = world[SupportRequest]
    about_pay = SupportRequest.objects.create(driver=on_batch.driver, topic="pay", text="My pay for Tuesday is short")
    # when ops open the queue of open requests
    page = client.get(url(SupportRequest, "changelist"), {"status__exact": "open"})
    # then both are listed, the driver's text shown as text
    body = page.content.decode()
    assert page.status_code == 200
    assert "&lt;b&gt;Gate locked&lt;/b&gt;" in body and "<b>Gate locked" not in body
    assert "My pay for Tuesday is short" in body
    # when ops resolve the batch one
    assert run_action(client, SupportRequest, "resolve", [on_batch]) == [(messages.SUCCESS, "1 resolved.")]
    on_batch.refresh_from_db()
    assert (on_batch.status, on_batch.resolved_by) == (SupportRequest.Status.RESOLVED, ops_admin)
    assert on_batch.resolved_at is not None
    # then only the other stays in the open queue, and resolving again changes nothing
    body = client.get(url(SupportRequest, "changelist"), {"status__exact": "open"}).content.decode()
    assert "My pay for Tuesday is short" in body and "Gate locked" not in body
    resolved_at = on_batch.resolved_at
    assert run_action(client, SupportRequest, "resolve", [on_batch]) == [(messages.INFO, "1 were already resolved.")]
    on_batch.refresh_from_db()
    assert on_batch.resolved_at == resolved_at
    about_pay.refresh_from_db()
    assert about_pay.status == SupportRequest.Status.OPEN
    # the filters ops use
    for params in ({"topic__exact": "pay"}, {"status__exact": "resolved"}):
        assert client.get(url(SupportRequest, "changelist"), params).status_code == 200
