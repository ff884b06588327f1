from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from spark.statemachine import StatusEvent


class DriverStatus(models.TextChoices):
    # Translated: a driver reads their status (the home page, /api/v1/me/).
    APPLICANT = "applicant", _("Applicant")
    SCREENING = "screening", _("Screening")
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")
    DEACTIVATED = "deactivated", _("Deactivated")


class Driver(models.Model):
    Status = DriverStatus

    TRANSITIONS = {
        Status.APPLICANT: {Status.SCREENING, Status.DEACTIVATED},
        Status.SCREENING: {Status.ACTIVE, Status.APPLICANT, Status.DEACTIVATED},
        # active -> suspended (expired documents, policy), suspended -> active (renewed, appeal upheld)
        Status.ACTIVE: {Status.SUSPENDED, Status.DEACTIVATED},
        Status.SUSPENDED: {Status.ACTIVE, Status.DEACTIVATED},
        Status.DEACTIVATED: {Status.ACTIVE},  # only through an upheld appeal, by ops
    }

    class ReasonCode(models.TextChoices):
        NONE = "", "—"
        DOCUMENTS_EXPIRED = "documents_expired", "License or insurance expired"
        SCREENING_FAILED = "screening_failed", "Background check not passed"
        SAFETY = "safety", "Safety report under review"
        FRAUD = "fraud", "Suspected fraud"
        QUALITY = "quality", "Repeated delivery problems"
        INACTIVE = "inactive", "Inactive for a long time"
        OTHER = "other", "Other"

    class Vehicle(models.TextChoices):  # translated: the sign-up funnel shows them
        CAR = "car", _("Car")
        SUV = "suv", _("SUV")
        VAN = "van", _("Van")
        TRUCK = "truck", _("Pickup truck")

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="driver")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.APPLICANT)
    status_changed_at = models.DateTimeField(default=timezone.now)
    reason_code = models.CharField(max_length=32, choices=ReasonCode.choices, blank=True)
    reason_note = models.TextField(blank=True)
    appeal_text = models.TextField(blank=True)
    appeal_submitted_at = models.DateTimeField(null=True, blank=True)

    home_zone = models.ForeignKey("stores.Zone", on_delete=models.PROTECT, related_name="drivers")
    phone = models.CharField(max_length=32, blank=True)
    phone_verified_at = models.DateTimeField(null=True, blank=True)
    photo = models.ImageField(upload_to="driver-photos/", null=True, blank=True)
    vehicle_type = models.CharField(max_length=8, choices=Vehicle.choices, default=Vehicle.CAR)
    vehicle_make = models.CharField(max_length=40, blank=True)
    vehicle_model = models.CharField(max_length=40, blank=True)
    vehicle_color = models.CharField(max_length=30, blank=True)
    vehicle_plate = models.CharField(max_length=12, blank=True)
    vehicle_tote_capacity = models.PositiveSmallIntegerField(default=20)
    license_number = models.CharField(max_length=32, blank=True)
    license_state = models.CharField(max_length=2, blank=True)
    license_expires_on = models.DateField(null=True, blank=True)
    license_document = models.FileField(upload_to="driver-docs/license/", null=True, blank=True)
    insurance_expires_on = models.DateField(null=True, blank=True)
    insurance_document = models.FileField(upload_to="driver-docs/insurance/", null=True, blank=True)
    # Asked at sign-up before the background-check consent; the zone sets the minimum age.
    birth_date = models.DateField(null=True, blank=True)
    background_check_consent_at = models.DateTimeField(null=True, blank=True)
    contractor_id = models.CharField(max_length=64, blank=True, help_text="Id at the contractor firm / Stripe.")

    is_online = models.BooleanField(default=False)
    online_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["home_zone", "status", "is_online"])]
        constraints = [
            models.UniqueConstraint(
                fields=["contractor_id"], condition=~Q(contractor_id=""), name="driver_contractor_id_unique"
            ),
            models.CheckConstraint(condition=Q(status__in=DriverStatus.values), name="driver_status_valid"),
            models.CheckConstraint(
                condition=Q(is_online=False) | Q(status="active"), name="driver_online_only_when_active"
            ),
        ]

    def __str__(self) -> str:
        name = self.user.get_full_name() or self.user.email
        return f"{name} ({self.status})"

    @property
    def first_name(self) -> str:
        return self.user.first_name


class DriverEvent(StatusEvent):
    driver = models.ForeignKey(Driver, on_delete=models.CASCADE, related_name="events")
    reason_code = models.CharField(max_length=32, blank=True)

    class Meta(StatusEvent.Meta):
        pass


class Route(models.Model):
    """ "I am going from A to B between t1 and t2, up to K metres out of my way", or online in a zone."""

    class Mode(models.TextChoices):
        TRIP = "trip", "Trip from A to B"
        ONLINE = "online", "Online at my location"

    driver = models.ForeignKey(Driver, on_delete=models.CASCADE, related_name="routes")
    zone = models.ForeignKey("stores.Zone", on_delete=models.PROTECT, related_name="+")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.TRIP)
    origin_lat = models.DecimalField(max_digits=9, decimal_places=6)
    origin_lng = models.DecimalField(max_digits=9, decimal_places=6)
    dest_lat = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    dest_lng = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    leave_after = models.DateTimeField(null=True, blank=True)
    arrive_by = models.DateTimeField(null=True, blank=True)
    max_detour_meters = models.PositiveIntegerField(default=8000)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["driver"], condition=Q(is_active=True), name="one_active_route_per_driver"),
            models.CheckConstraint(
                condition=Q(mode="online") | (Q(dest_lat__isnull=False) & Q(dest_lng__isnull=False)),
                name="route_trip_has_destination",
            ),
            models.CheckConstraint(
                condition=Q(arrive_by__isnull=True) | Q(leave_after__isnull=True) | Q(arrive_by__gt=F("leave_after")),
                name="route_arrive_after_leave",
            ),
        ]

    def __str__(self) -> str:
        return f"Route of {self.driver_id} ({self.mode})"


class SlotClaim(models.Model):
    """A driver's seat in a delivery slot. The seat count lives on DeliverySlot.claimed."""

    class Status(models.TextChoices):
        CLAIMED = "claimed", "Signed up"
        CHECKED_IN = "checked_in", "Checked in"
        CANCELLED = "cancelled", "Cancelled"
        LATE_CANCELLED = "late_cancelled", "Cancelled late"
        RELEASED = "released", "Released (no show)"

    ACTIVE_STATUSES = (Status.CLAIMED, Status.CHECKED_IN)

    driver = models.ForeignKey(Driver, on_delete=models.PROTECT, related_name="slot_claims")
    slot = models.ForeignKey("stores.DeliverySlot", on_delete=models.PROTECT, related_name="claims")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CLAIMED)
    claimed_at = models.DateTimeField(default=timezone.now)
    checked_in_at = models.DateTimeField(null=True, blank=True)
    # The associate who confirmed the driver at the store; empty when the phone was within the
    # check-in radius (stores.presence).
    checked_in_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    # The no-show deadline (slot start + grace); a countdown task and a sweeper both act on it.
    release_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["claimed", "checked_in", "cancelled", "late_cancelled", "released"]),
                name="slotclaim_status_valid",
            ),
            models.UniqueConstraint(
                fields=["driver", "slot"],
                condition=Q(status__in=["claimed", "checked_in"]),
                name="one_live_claim_per_driver_slot",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.driver_id} in slot {self.slot_id} ({self.status})"


class PushSubscription(models.Model):
    """A browser's Web Push subscription for a driver (offers are pushed to it)."""

    driver = models.ForeignKey(Driver, on_delete=models.CASCADE, related_name="push_subscriptions")
    endpoint = models.CharField(max_length=1000, unique=True, help_text="The push service URL.")
    p256dh = models.CharField(max_length=200)
    auth = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)
    last_success_at = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveSmallIntegerField(default=0)

    def __str__(self) -> str:
        return f"Push subscription of {self.driver_id}"


class Location(models.Model):
    """Last known position of a driver on duty (one row per driver, overwritten)."""

    driver = models.OneToOneField(Driver, on_delete=models.CASCADE, related_name="location")
    lat = models.DecimalField(max_digits=9, decimal_places=6)
    lng = models.DecimalField(max_digits=9, decimal_places=6)
    accuracy_m = models.PositiveIntegerField(null=True, blank=True)
    recorded_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.driver_id} @ {self.lat},{self.lng}"
