"""spark.roles: every queryset a user reaches is scoped by role (DESIGN rule 6)."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.urls import path
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from dispatch.models import Offer
from dispatch.tests.factories import OfferFactory
from drivers.models import Driver
from drivers.tests.factories import DriverFactory
from orders.models import Order, Stop
from orders.tests.factories import OrderFactory, StopFactory
from spark import roles
from stores.models import DeliverySlot, StoreMembership
from stores.tests.factories import (
    DeliverySlotFactory,
    StoreApiKeyFactory,
    StoreFactory,
    StoreMembershipFactory,
    UserFactory,
)


@pytest.mark.django_db
class TestScopeToStores:
    def test_member_sees_only_their_stores_rows(self, store, other_store, associate):
        mine = OrderFactory(store=store)
        OrderFactory(store=other_store)
        scoped = roles.scope_to_stores(Order.objects.all(), associate)
        assert list(scoped) == [mine]
        assert not scoped.filter(store=other_store).exists()

    def test_other_stores_order_is_not_found_by_pk(self, store, other_store, associate):
        theirs = OrderFactory(store=other_store)
        assert not roles.scope_to_stores(Order.objects.all(), associate).filter(pk=theirs.pk).exists()

    def test_member_of_two_stores_sees_both(self, store, other_store, associate):
        StoreMembershipFactory(user=associate, store=other_store)
        third = StoreFactory()
        a, b = OrderFactory(store=store), OrderFactory(store=other_store)
        OrderFactory(store=third)
        assert set(roles.scope_to_stores(Order.objects.all(), associate)) == {a, b}

    def test_inactive_store_is_out_of_scope(self, store, associate):
        OrderFactory(store=store)
        store.is_active = False
        store.save(update_fields=["is_active"])
        assert not roles.scope_to_stores(Order.objects.all(), associate).exists()
        assert roles.store_ids_for(associate) == []

    def test_managers_only(self, store, associate, manager):
        order = OrderFactory(store=store)
        assert list(roles.scope_to_stores(Order.objects.all(), manager, manager=True)) == [order]
        assert not roles.scope_to_stores(Order.objects.all(), associate, manager=True).exists()
        assert roles.is_store_member(associate, store.pk)
        assert not roles.is_store_member(associate, store.pk, manager=True)
        assert roles.is_store_member(manager, store.pk, manager=True)

    def test_manager_of_one_store_is_associate_elsewhere(self, store, other_store, manager):
        StoreMembershipFactory(user=manager, store=other_store, role=StoreMembership.Role.ASSOCIATE)
        here, there = OrderFactory(store=store), OrderFactory(store=other_store)
        assert set(roles.scope_to_stores(Order.objects.all(), manager)) == {here, there}
        assert list(roles.scope_to_stores(Order.objects.all(), manager, manager=True)) == [here]

    def test_custom_store_field(self, store, other_store, associate):
        mine = StopFactory(batch__store=store)
        StopFactory(batch__store=other_store)
        assert list(roles.scope_to_stores(Stop.objects.all(), associate, store_field="batch__store")) == [mine]
        slot = DeliverySlotFactory(store=store)
        DeliverySlotFactory(store=other_store)
        assert list(roles.scope_to_stores(DeliverySlot.objects.all(), associate)) == [slot]

    def test_no_membership_anonymous_and_ops_see_nothing(self, store, ops_user):
        OrderFactory(store=store)
        for user in (UserFactory(), AnonymousUser(), None, ops_user):
            assert not roles.scope_to_stores(Order.objects.all(), user).exists()

    def test_scope_to_api_key(self, store, other_store):
        key = StoreApiKeyFactory(store=store)
        mine = OrderFactory(store=store)
        OrderFactory(store=other_store)
        assert list(roles.scope_to_api_key(Order.objects.all(), key)) == [mine]


@pytest.mark.django_db
class TestScopeToDriver:
    def test_driver_sees_only_their_rows(self, driver, other_driver):
        mine = OfferFactory(driver=driver)
        OfferFactory(driver=other_driver)
        assert list(roles.scope_to_driver(Offer.objects.all(), driver)) == [mine]

    def test_no_driver_sees_nothing(self, driver):
        OfferFactory(driver=driver)
        assert not roles.scope_to_driver(Offer.objects.all(), None).exists()

    def test_custom_driver_field(self, driver, other_driver):
        mine = StopFactory(batch__driver=driver)
        StopFactory(batch__driver=other_driver)
        assert list(roles.scope_to_driver(Stop.objects.all(), driver, driver_field="batch__driver")) == [mine]

    def test_driver_of(self, driver):
        assert roles.driver_of(driver.user) == driver
        assert roles.driver_of(UserFactory()) is None
        assert roles.driver_of(AnonymousUser()) is None


@pytest.mark.django_db
def test_is_ops(ops_user, associate):
    assert roles.is_ops(ops_user)
    assert not roles.is_ops(associate) and not roles.is_ops(AnonymousUser()) and not roles.is_ops(None)
    ops_user.is_active = False
    assert not roles.is_ops(ops_user)


# --- permissions through a test-only URLconf ---------------------------------------------------------


class ActiveDriverView(APIView):
    permission_classes = [roles.IsActiveDriver]

    def get(self, request):
        return Response({"driver": request.driver.pk})


class DriverView(APIView):
    permission_classes = [roles.IsDriver]

    def get(self, request):
        return Response({"driver": request.driver.pk, "status": request.driver.status})


class OpsView(APIView):
    permission_classes = [roles.IsOps]

    def get(self, request):
        return Response({"ok": True})


class IntegrationView(APIView):
    permission_classes = [roles.IsStoreIntegration]

    def get(self, request):
        return Response({"store": request.auth.store_id})


urlpatterns = [
    path("t/active-driver/", ActiveDriverView.as_view()),
    path("t/driver/", DriverView.as_view()),
    path("t/ops/", OpsView.as_view()),
    path("t/integration/", IntegrationView.as_view()),
]


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.urls(__name__)
@pytest.mark.django_db
class TestPermissions:
    def test_active_driver_passes(self, driver):
        response = client_for(driver.user).get("/t/active-driver/")
        assert response.status_code == 200 and response.json() == {"driver": driver.pk}

    def test_suspended_driver_gets_403_with_reason(self):
        driver = DriverFactory(status=Driver.Status.SUSPENDED, reason_code=Driver.ReasonCode.DOCUMENTS_EXPIRED)
        response = client_for(driver.user).get("/t/active-driver/")
        assert response.status_code == 403
        body = response.json()
        assert body["code"] == "permission_denied" and body["fields"] == {}
        assert body["detail"] == "Your account is suspended: License or insurance expired."

    @pytest.mark.parametrize(
        "status", [Driver.Status.APPLICANT, Driver.Status.SCREENING, Driver.Status.DEACTIVATED]
    )
    def test_not_yet_or_no_longer_active_driver_gets_403_with_status(self, status):
        driver = DriverFactory(status=status)
        response = client_for(driver.user).get("/t/active-driver/")
        assert response.status_code == 403
        assert status.label.lower() in response.json()["detail"]

    def test_suspended_driver_still_passes_is_driver(self):
        driver = DriverFactory(status=Driver.Status.SUSPENDED)
        response = client_for(driver.user).get("/t/driver/")
        assert response.status_code == 200 and response.json()["status"] == "suspended"

    def test_non_driver_gets_403(self, associate):
        for url in ("/t/active-driver/", "/t/driver/"):
            response = client_for(associate).get(url)
            assert response.status_code == 403
            assert response.json()["detail"] == "This endpoint is for drivers."

    def test_anonymous_gets_401(self):
        response = APIClient().get("/t/active-driver/")
        assert response.status_code == 401 and response.json()["code"] == "not_authenticated"

    def test_is_ops(self, ops_user, associate, driver):
        assert client_for(ops_user).get("/t/ops/").status_code == 200
        for user in (associate, driver.user):
            assert client_for(user).get("/t/ops/").status_code == 403

    def test_is_store_integration(self, store, associate):
        raw = "test-key-roles-abcdefghijklmnopqrstuvwxyz"
        StoreApiKeyFactory(store=store, raw_key=raw)
        response = APIClient().get("/t/integration/", HTTP_AUTHORIZATION=f"Api-Key {raw}")
        assert response.status_code == 200 and response.json() == {"store": store.pk}
        response = client_for(associate).get("/t/integration/")
        assert response.status_code == 403 and "Api-Key" in response.json()["detail"]
