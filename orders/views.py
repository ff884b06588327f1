from django.shortcuts import get_object_or_404, render

from .models import Order


def tracking(request, token: str):
    """The customer's tracking page (no login; the unguessable token is the credential)."""
    order = get_object_or_404(Order.objects.select_related("store"), tracking_token=token)
    events = order.events.order_by("created_at")
    return render(request, "tracking/order.html", {"order": order, "events": events})
