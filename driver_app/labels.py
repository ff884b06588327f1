"""What the driver app says about statuses, reasons and offers, translated, and the strings driver.js shows."""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

DECLINE_LABELS = {
    "too_far": gettext_lazy("Too far / off my route"),
    "pay_too_low": gettext_lazy("Pay too low"),
    "too_many_stops": gettext_lazy("Too many stops"),
    "heavy": gettext_lazy("Too heavy"),
    "alcohol": gettext_lazy("Alcohol (ID checks)"),
    "no_time": gettext_lazy("Not enough time"),
    "vehicle": gettext_lazy("Does not fit my vehicle"),
    "other": gettext_lazy("Other"),
}


FAIL_LABELS = {
    "refused_alcohol": gettext_lazy("Alcohol refused (no valid ID / under 21)"),
    "no_one_home": gettext_lazy("No one home"),
    "damaged": gettext_lazy("Damaged"),
    "refused": gettext_lazy("Refused by customer"),
    "wrong_address": gettext_lazy("Address not found"),
    "other": gettext_lazy("Other"),
}


REASON_LABELS = {
    "documents_expired": gettext_lazy("License or insurance expired"),
    "screening_failed": gettext_lazy("Background check not passed"),
    "safety": gettext_lazy("Safety report under review"),
    "fraud": gettext_lazy("Suspected fraud"),
    "quality": gettext_lazy("Repeated delivery problems"),
    "inactive": gettext_lazy("Inactive for a long time"),
    "other": gettext_lazy("Other"),
}


STATUS_LABELS = {
    "applicant": gettext_lazy("Applicant"),
    "screening": gettext_lazy("Screening"),
    "active": gettext_lazy("Active"),
    "suspended": gettext_lazy("Suspended"),
    "deactivated": gettext_lazy("Deactivated"),
}


OFFER_KIND_LABELS = {
    "slot": gettext_lazy("Your slot"),
    "route": gettext_lazy("On your route"),
    "board": gettext_lazy("Open board"),
}


OFFER_STATUS_LABELS = {
    "pending": gettext_lazy("Open"),
    "accepted": gettext_lazy("Accepted"),
    "declined": gettext_lazy("Declined"),
    "expired": gettext_lazy("Timed out"),
    "withdrawn": gettext_lazy("Withdrawn"),
    "released": gettext_lazy("Taken back (trip paid)"),
}


STOP_STATUS_LABELS = {
    "pending": gettext_lazy("To deliver"),
    "arrived": gettext_lazy("At the door"),
    "delivered": gettext_lazy("Delivered"),
    "failed": gettext_lazy("Not delivered"),
    "returned": gettext_lazy("Returned to store"),
}


HELP_TOPIC_LABELS = {
    "order": gettext_lazy("An order"),
    "store": gettext_lazy("A store"),
    "app": gettext_lazy("The app"),
    "pay": gettext_lazy("My pay"),
}


HELP_STATUS_LABELS = {
    "open": gettext_lazy("Waiting for ops"),
    "resolved": gettext_lazy("Resolved"),
}


SLOT_CLAIM_LABELS = {
    "claimed": gettext_lazy("Signed up"),
    "checked_in": gettext_lazy("Checked in"),
}


# API paths the browser calls (driver_app/api/urls.py; the delivery flow is driver_app/api/delivery.py).
API = "/api/v1/driver"


def js_strings() -> dict:
    """Everything driver.js shows, translated (one JSON script per page, no JS catalog request)."""
    return {
        "offline": _("No connection. We will try again."),
        "error": _("Something went wrong. Try again."),
        "need_location": _("Allow location access to do this."),
        "locating": _("Finding your location…"),
        "online": _("You are online."),
        "offline_done": _("You are offline."),
        "route_saved": _("Route saved. Batches that fit it are below."),
        "route_need_points": _("Tap the map to set where you start and where you are going."),
        "route_origin": _("Start"),
        "route_dest": _("Destination"),
        "declined": _("Declined. Declines never count against you."),
        "pick_reason": _("Pick a reason first."),
        "draw": _("You're in the draw, result at {time}."),
        "draw_lost": _("Another driver got that batch in the draw."),
        "expired": _("Expired"),
        "uploading": _("Sending the photo… it will be retried until it arrives."),
        "upload_retry": _("Upload failed (attempt {n}); trying again in {s} s."),
        "delivered": _("Delivered. Thank you!"),
        "need_photo": _("Take a photo of the delivery first."),
        "need_id": _("Alcohol: enter the date of birth and take a photo of the ID."),
        "under_21": _("The customer is under 21: alcohol cannot be delivered. Use “Can't deliver” → alcohol refused."),
        "uploads_pending": _("Photos are still uploading; keep the app open."),
        "push_on": _("Offer notifications are on."),
        "push_denied": _("Notifications are blocked in the browser settings."),
        "new_offer": _("New offer! Open Offers to see it."),
        "new_offer_here": _("New offer below."),
        "offline_saved_at": _("You are offline. Your batch as of {time}:"),
        "errors": {
            "offer_expired": _("This offer has expired."),
            "offer_closed": _("This offer is no longer open."),
            "batch_taken": _("Another driver already has this batch."),
            "driver_busy": _("You already have an active batch; finish it first."),
            "throttled": _("Too many tries; wait a moment."),
            "slot_full": _("This slot is full."),
            "not_on_duty": _("Go online to share your location."),
            "stop_finished": _("This stop is finished: calls and texts to this customer are closed."),
            "batch_not_active": _("This batch is no longer active: calls and texts are closed."),
        },
    }
