import hashlib

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords


class Zone(models.Model):
    """A metro service area (Nashville, New Orleans) with its own timezone and pay policy."""

    name = models.CharField(max_length=80, unique=True)
    slug = models.SlugField(max_length=40, unique=True)
    timezone = models.CharField(max_length=64, default="America/Chicago")
    center_lat = models.DecimalField(max_digits=9, decimal_places=6)
    center_lng = models.DecimalField(max_digits=9, decimal_places=6)
    radius_km = models.PositiveIntegerField(default=40, help_text="Orders must be within this distance.")
    # Dispatch knobs (issue 4 uses them); defaults are the product's defaults.
    offer_ttl_seconds = models.PositiveIntegerField(default=60)
    claim_pool_seconds = models.PositiveIntegerField(default=3, help_text="Board claims in this window are pooled.")
    route_round_size = models.PositiveSmallIntegerField(default=3, help_text="Route-matched drivers offered per round.")
    route_rounds = models.PositiveSmallIntegerField(default=2, help_text="Route rounds before the open board.")
    slot_cancel_cutoff_minutes = models.PositiveSmallIntegerField(default=45)
    no_show_grace_minutes = models.PositiveSmallIntegerField(default=15)
    checkin_radius_m = models.PositiveIntegerField(default=250)
    at_risk_minutes = models.PositiveSmallIntegerField(
        default=30, help_text="Flag unclaimed batches this close to their pickup deadline."
    )
    claim_rate_per_minute = models.PositiveSmallIntegerField(default=30)
    # Who may drive here (drivers.onboarding_checks.check_driver_age): orders with alcohol are
    # handed over only by drivers of 21 or older; where none are delivered, 18 is enough.
    delivers_alcohol = models.BooleanField(
        default=True, help_text="Orders here may contain alcohol: drivers must be 21 or older (18 otherwise)."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(offer_ttl_seconds__gte=5), name="zone_offer_ttl_min"),
        ]

    def __str__(self) -> str:
        return self.name


class Store(models.Model):
    zone = models.ForeignKey(Zone, on_delete=models.PROTECT, related_name="stores")
    number = models.CharField(max_length=16, unique=True, help_text="The chain's store number.")
    name = models.CharField(max_length=120)
    address_line1 = models.CharField(max_length=200)
    city = models.CharField(max_length=80)
    state = models.CharField(max_length=2)
    postal_code = models.CharField(max_length=10)
    lat = models.DecimalField(max_digits=9, decimal_places=6)
    lng = models.DecimalField(max_digits=9, decimal_places=6)
    phone = models.CharField(max_length=32, blank=True)
    pickup_instructions = models.TextField(blank=True, help_text="Shown on offers: where to park, where to go.")
    store_rules = models.TextField(blank=True, help_text="Shown on offers: e.g. ID at the pickup desk.")
    # What one standard car takes on one trip; batches are built within these.
    batch_max_totes = models.PositiveSmallIntegerField(default=20)
    batch_max_stops = models.PositiveSmallIntegerField(default=5)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"#{self.number} {self.name}"


class StoreMembership(models.Model):
    """Who may use a store's dashboard, and as what. All dashboard access is scoped by it."""

    class Role(models.TextChoices):
        ASSOCIATE = "associate", "Associate"
        MANAGER = "manager", "Manager"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="store_memberships")
    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ASSOCIATE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "store"], name="membership_user_store_unique")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.store} ({self.role})"


def hash_api_key(raw_key: str) -> str:
    # Keys are long random strings, so a fast hash is enough (this is not a password); it
    # lets us look a key up by its hash in one indexed query.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class StoreApiKey(models.Model):
    """An integration key of a store's e-commerce system. Only the hash is stored."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=80)
    prefix = models.CharField(max_length=12, help_text="First characters of the key, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.store} key {self.prefix}…"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class DeliverySlot(models.Model):
    """A time block at a store with N driver seats. `claimed` is a guarded counter:
    services increment it with `filter(claimed__lt=F("capacity")).update(...)` and the
    CHECK constraint below makes overbooking impossible even for a buggy writer."""

    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="slots")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    capacity = models.PositiveSmallIntegerField()
    claimed = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    history = HistoricalRecords()

    class Meta:
        ordering = ["starts_at"]
        indexes = [models.Index(fields=["store", "starts_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(claimed__gte=0) & Q(claimed__lte=F("capacity")), name="slot_claimed_within_capacity"
            ),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="slot_ends_after_start"),
            models.UniqueConstraint(fields=["store", "starts_at", "ends_at"], name="slot_store_block_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.store} {self.starts_at:%Y-%m-%d %H:%M}-{self.ends_at:%H:%M}"

    @property
    def seats_free(self) -> int:
        return self.capacity - self.claimed


class SlotTemplate(models.Model):
    """A manager's recurring block, e.g. "daily 10:00-12:00, 8 seats". A daily beat task turns
    active templates into DeliverySlots for the next 14 days (idempotent: one slot per block)."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="slot_templates")
    weekdays = models.CharField(
        max_length=7, default="0123456", help_text="Days it runs: 0=Monday … 6=Sunday, e.g. 01234 for weekdays."
    )
    start_time = models.TimeField()
    end_time = models.TimeField()
    capacity = models.PositiveSmallIntegerField()
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["store", "start_time"]
        constraints = [
            models.CheckConstraint(condition=Q(end_time__gt=F("start_time")), name="slot_template_ends_after_start"),
            models.CheckConstraint(condition=Q(capacity__gte=1), name="slot_template_capacity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.store} {self.start_time:%H:%M}-{self.end_time:%H:%M} x{self.capacity}"

    @property
    def weekday_names(self) -> str:
        names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        if self.weekdays == "0123456":
            return "Daily"
        return ", ".join(names[int(d)] for d in self.weekdays)
