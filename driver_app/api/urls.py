from django.urls import path, register_converter

from . import contact, delivery, earnings, views


class IsoDate:
    """A path segment shaped like YYYY-MM-DD, kept as text: the view says what is wrong with a
    date that is not one (400); anything else is not a URL of ours (the API's JSON 404)."""

    regex = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value) -> str:
        return str(value)


register_converter(IsoDate, "isodate")

urlpatterns = [
    path("driver/offers/", views.OfferListView.as_view(), name="driver-offers"),
    path("driver/offers/<int:offer_id>/accept/", views.OfferAcceptView.as_view(), name="driver-offer-accept"),
    path("driver/offers/<int:offer_id>/decline/", views.OfferDeclineView.as_view(), name="driver-offer-decline"),
    path("driver/dispatch-log/", views.DispatchLogView.as_view(), name="driver-dispatch-log"),
    path("driver/board/", views.BoardView.as_view(), name="driver-board"),
    path("driver/batches/<int:batch_id>/claim/", views.BatchClaimView.as_view(), name="driver-batch-claim"),
    path("driver/route/", views.RouteView.as_view(), name="driver-route"),
    path("driver/online/", views.OnlineView.as_view(), name="driver-online"),
    path("driver/offline/", views.OfflineView.as_view(), name="driver-offline"),
    path("driver/location/", views.LocationView.as_view(), name="driver-location"),
    path("driver/slots/", views.SlotListView.as_view(), name="driver-slots"),
    path("driver/slots/<int:slot_id>/claim/", views.SlotClaimView.as_view(), name="driver-slot-claim"),
    path("driver/slots/<int:slot_id>/cancel/", views.SlotCancelView.as_view(), name="driver-slot-cancel"),
    path("driver/slots/<int:slot_id>/check-in/", views.SlotCheckInView.as_view(), name="driver-slot-check-in"),
]

# The trip itself (driver_app/api/delivery.py): my batch, check-in, stops, complete.

urlpatterns += [
    path("driver/batches/active/", delivery.ActiveBatchView.as_view(), name="driver-batch-active"),
    path("driver/batches/<int:batch_id>/", delivery.BatchDetailView.as_view(), name="driver-batch-detail"),
    path("driver/batches/<int:batch_id>/arrive/", delivery.BatchArriveView.as_view(), name="driver-batch-arrive"),
    path("driver/batches/<int:batch_id>/complete/", delivery.BatchCompleteView.as_view(), name="driver-batch-complete"),
    path("driver/stops/<int:stop_id>/arrive/", delivery.StopArriveView.as_view(), name="driver-stop-arrive"),
    path("driver/stops/<int:stop_id>/deliver/", delivery.StopDeliverView.as_view(), name="driver-stop-deliver"),
    path("driver/stops/<int:stop_id>/fail/", delivery.StopFailView.as_view(), name="driver-stop-fail"),
]

# Calls and texts without sharing numbers (driver_app/api/contact.py).

urlpatterns += [
    path("driver/stops/<int:stop_id>/contact/", contact.StopContactView.as_view(), name="driver-stop-contact"),
    path(
        "driver/batches/<int:batch_id>/contact-store/",
        contact.StoreContactView.as_view(),
        name="driver-batch-contact-store",
    ),
]

# Earnings (driver_app/api/earnings.py): balance and pending, batches, weekly statements, payouts.

urlpatterns += [
    path("driver/earnings/", earnings.EarningsView.as_view(), name="driver-earnings"),
    path("driver/earnings/batches/", earnings.EarningsBatchListView.as_view(), name="driver-earnings-batches"),
    path(
        "driver/earnings/batches/<int:batch_id>/",
        earnings.EarningsBatchDetailView.as_view(),
        name="driver-earnings-batch",
    ),
    path(
        "driver/earnings/statements/<isodate:week>/", earnings.StatementView.as_view(), name="driver-earnings-statement"
    ),
    path("driver/earnings/payouts/", earnings.PayoutListView.as_view(), name="driver-earnings-payouts"),
    path("driver/earnings/cashout/", earnings.CashoutView.as_view(), name="driver-earnings-cashout"),
]
