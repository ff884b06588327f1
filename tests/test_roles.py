"""spark.roles: every queryset a user reaches is scoped by role (DESIGN rule 6)."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.urls import path
from rest_framework.response import Response
from rest_framework.test import APIClient
from rest_framework.views import APIView

from drivers.models import Driver
from drivers.tests.factories import DriverFactory
from spark import roles
from stores.models import StoreMembership
from stores.tests.factories import StoreApiKeyFactory, StoreFactory, StoreMembershipFactory, UserFactory

# Views scope by role themselves, each the way its surface works: the dashboard resolves the
# store in the URL against store_ids_for / is_store_member (dashboard.page.store_view), the intake
# API filters by the API key's store, the driver API and app by request.driver. Generic
# scope_to_* queryset helpers that no view used were deleted (issue 9, item 4); each surface's
# own tests check that another store's or driver's object is a 404.


@pytest.mark.django_db
class TestStoreMembership:
    def test_member_of_two_stores_has_both(self, store, other_store, associate):
        StoreMembershipFactory(user=associate, store=other_store)
        StoreFactory()
        assert set(roles.store_ids_for(associate)) == {store.pk, other_store.pk}

    def test_inactive_store_is_out_of_scope(self, store, associate):
        store.is_active = False
        store.save(update_fields=["is_active"])
        assert roles.store_ids_for(associate) == []
        assert not roles.is_store_member(associate, store.pk)

    def test_managers_only(self, store, associate, manager):
        assert roles.is_store_member(associate, store.pk)
        assert not roles.is_store_member(associate, store.pk, manager=True)
        assert roles.is_store_member(manager, store.pk, manager=True)

    def test_manager_of_one_store_is_associate_elsewhere(self, store, other_store, manager):
        StoreMembershipFactory(user=manager, store=other_store, role=StoreMembership.Role.ASSOCIATE)
        assert set(roles.store_ids_for(manager)) == {store.pk, other_store.pk}
        assert roles.store_ids_for(manager, roles=(StoreMembership.Role.MANAGER,)) == [store.pk]

    def test_no_membership_anonymous_and_ops_have_no_store(self, store, ops_user):
        for user in (UserFactory(), AnonymousUser(), None, ops_user):
            assert roles.store_ids_for(user) == []


@pytest.mark.django_db
def test_driver_of(driver):
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

    @pytest.mark.parametrize("status", [Driver.Status.APPLICANT, Driver.Status.SCREENING, Driver.Status.DEACTIVATED])
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
