"""The driver API for calling or texting without sharing numbers (orders.contact): the customer
of an open stop, or the batch's store. The answer is a masked (proxy) number; the real
numbers never leave the server. Allowed while the batch is active and, for a customer, while
the stop is not finished (409 otherwise); another driver's batch or stop is a 404.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from orders.contact import ContactSession, contact_customer, contact_store
from spark.api.schema import error_responses

from .delivery import TripAPIView, my_batch, my_stop


class ContactSessionSerializer(serializers.Serializer):
    party = serializers.ChoiceField(choices=["customer", "store"], help_text="Who the number reaches.")
    session_id = serializers.CharField(help_text="The masked-number provider's session.")
    proxy_number = serializers.CharField(help_text="The number to dial or text (E.164); never the real one.")
    call_url = serializers.CharField(help_text="tel: link to the proxy number.")
    text_url = serializers.CharField(help_text="sms: link to the proxy number.")
    expires_at = serializers.DateTimeField(help_text="The proxy number works for this session until then.")


def _payload(session: ContactSession) -> dict:
    return ContactSessionSerializer(
        {
            "party": session.party,
            "session_id": session.session_id,
            "proxy_number": session.proxy_number,
            "call_url": f"tel:{session.proxy_number}",
            "text_url": f"sms:{session.proxy_number}",
            "expires_at": session.expires_at,
        }
    ).data


CONTACT_RESPONSES = {200: ContactSessionSerializer, **error_responses(401, 403, 404, 409)}


class StopContactView(TripAPIView):
    """A masked number to call or text the customer of this stop."""

    @extend_schema(request=None, responses=CONTACT_RESPONSES)
    def post(self, request, stop_id: int):
        stop = my_stop(request, stop_id)
        return Response(_payload(contact_customer(driver=request.driver, stop=stop)))


class StoreContactView(TripAPIView):
    """A masked number to call or text the store of this batch."""

    @extend_schema(request=None, responses=CONTACT_RESPONSES)
    def post(self, request, batch_id: int):
        batch = my_batch(request, batch_id)
        return Response(_payload(contact_store(driver=request.driver, batch=batch)))
