"""GET /api/v1/me/: who the caller is and what they may do.

A person (session or `Authorization: Token <t>`): email, ops flag, driver status, store
memberships. A store integration (`Authorization: Api-Key <key>`): the store and the key.
"""

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from drivers.models import Driver
from spark import roles
from spark.api.schema import error_responses
from stores.models import StoreApiKey, StoreMembership


class MeDriverSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Driver.Status.choices)
    status_display = serializers.CharField()
    reason_code = serializers.CharField(allow_blank=True, help_text="Why the account is not active, if it is not.")
    reason = serializers.CharField(allow_blank=True)
    can_work = serializers.BooleanField(help_text="Only active drivers get offers and claim batches.")


class MeStoreSerializer(serializers.Serializer):
    store_id = serializers.IntegerField()
    store_number = serializers.CharField()
    store_name = serializers.CharField()
    role = serializers.ChoiceField(choices=StoreMembership.Role.choices)


class MeUserSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["user"])
    email = serializers.EmailField()
    is_ops = serializers.BooleanField()
    driver = MeDriverSerializer(allow_null=True)
    stores = MeStoreSerializer(many=True)


class MeStoreIntegrationSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["store_integration"])
    store_id = serializers.IntegerField()
    store_number = serializers.CharField()
    store_name = serializers.CharField()
    key_name = serializers.CharField()
    key_prefix = serializers.CharField()


class IsUserOrStoreIntegration(IsAuthenticated):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, StoreApiKey) or super().has_permission(request, view)


def _user_payload(user) -> dict:
    driver = roles.driver_of(user)
    memberships = (
        StoreMembership.objects.filter(user=user, store__is_active=True)
        .select_related("store")
        .order_by("store__number")
    )
    return {
        "kind": "user",
        "email": user.email,
        "is_ops": roles.is_ops(user),
        "driver": None
        if driver is None
        else {
            "id": driver.pk,
            "status": driver.status,
            "status_display": driver.get_status_display(),
            "reason_code": driver.reason_code,
            "reason": driver.get_reason_code_display() if driver.reason_code else "",
            "can_work": driver.status == Driver.Status.ACTIVE,
        },
        "stores": [
            {"store_id": m.store_id, "store_number": m.store.number, "store_name": m.store.name, "role": m.role}
            for m in memberships
        ],
    }


def _integration_payload(key: StoreApiKey) -> dict:
    return {
        "kind": "store_integration",
        "store_id": key.store_id,
        "store_number": key.store.number,
        "store_name": key.store.name,
        "key_name": key.name,
        "key_prefix": key.prefix,
    }


class MeView(APIView):
    permission_classes = [IsUserOrStoreIntegration]

    @extend_schema(
        operation_id="me_retrieve",
        responses={
            200: PolymorphicProxySerializer(
                component_name="Me",
                serializers={"user": MeUserSerializer, "store_integration": MeStoreIntegrationSerializer},
                resource_type_field_name="kind",
            ),
            **error_responses(401, 403),
        },
        description="The caller: a person (roles) or a store integration (its store).",
    )
    def get(self, request):
        if isinstance(request.auth, StoreApiKey):
            return Response(_integration_payload(request.auth))
        return Response(_user_payload(request.user))
