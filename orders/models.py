import secrets

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from spark.statemachine import StatusEvent


def new_tracking_token() -> str:
    # 32 bytes of randomness: the customer's tracking link is the only credential it has.
    return secrets.token_urlsafe(32)


def new_pickup_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"


class OrderStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    BATCHED = "batched", "Batched"
    READY = "ready", "Ready"
    PICKED_UP = "picked_up", "Picked up"
    DELIVERED = "delivered", "Delivered"
    UNDELIVERABLE = "undeliverable", "Undeliverable"
    RETURNED = "returned", "Returned"
    CANCELLED = "cancelled", "Cancelled"


class Order(models.Model):
    Status = OrderStatus

    # received -> batched -> ready -> picked_up -> delivered | undeliverable -> returned,
    # cancelled until pickup. An order leaves its batch (back to received) when the batch is
    # cancelled or the associate takes it out before pickup.
    TRANSITIONS = {
        Status.RECEIVED: {Status.BATCHED, Status.CANCELLED},
        Status.BATCHED: {Status.READY, Status.RECEIVED, Status.CANCELLED},
        Status.READY: {Status.PICKED_UP, Status.BATCHED, Status.RECEIVED, Status.CANCELLED},
        Status.PICKED_UP: {Status.DELIVERED, Status.UNDELIVERABLE},
        Status.UNDELIVERABLE: {Status.RETURNED},
        Status.DELIVERED: set(),
        Status.RETURNED: set(),
        Status.CANCELLED: set(),
    }

    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="orders")
    external_id = models.CharField(max_length=64, help_text="The store system's order id; unique per store.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    status_changed_at = models.DateTimeField(default=timezone.now)

    customer_name = models.CharField(max_length=120)
    customer_phone = models.CharField(max_length=32, blank=True)
    customer_email = models.EmailField(blank=True)
    address_line1 = models.CharField(max_length=200)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=80)
    state = models.CharField(max_length=2)
    postal_code = models.CharField(max_length=10)
    lat = models.DecimalField(max_digits=9, decimal_places=6)
    lng = models.DecimalField(max_digits=9, decimal_places=6)

    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    totes = models.PositiveSmallIntegerField(default=1)
    weight_lb = models.DecimalField(max_digits=6, decimal_places=1, default=0)
    items_count = models.PositiveIntegerField(default=0)
    is_heavy = models.BooleanField(default=False, help_text="Any single item or tote over the heavy limit.")
    contains_alcohol = models.BooleanField(default=False)
    # The tip as SHOWN to drivers (offers and the feed rank on it through Batch.stops_tip_cents).
    # The tip itself is payments.Tip; only payments.tips writes this field, from that row.
    tip_cents = models.BigIntegerField(
        default=0, help_text="The tip shown to drivers; written only by payments.tips (the Tip row is the truth)."
    )
    notes = models.TextField(blank=True)

    tracking_token = models.CharField(max_length=64, unique=True, default=new_tracking_token, editable=False)
    # Intake idempotency: the fingerprint of the body first accepted for this external id, and
    # the Idempotency-Key header if the client sent one.
    intake_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    idempotency_key = models.CharField(max_length=128, null=True, blank=True, editable=False)
    cancel_reason = models.CharField(max_length=255, blank=True)
    return_reason = models.CharField(max_length=255, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["window_start", "pk"]
        indexes = [models.Index(fields=["store", "status", "window_start"])]
        constraints = [
            models.UniqueConstraint(fields=["store", "external_id"], name="order_external_id_per_store"),
            models.UniqueConstraint(
                fields=["store", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="order_idempotency_key_per_store",
            ),
            models.CheckConstraint(condition=Q(tip_cents__gte=0), name="order_tip_non_negative"),
            models.CheckConstraint(condition=Q(weight_lb__gte=0), name="order_weight_non_negative"),
            models.CheckConstraint(condition=Q(window_end__gt=F("window_start")), name="order_window_ordered"),
            models.CheckConstraint(condition=Q(status__in=OrderStatus.values), name="order_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Order {self.external_id} ({self.store.number})"


class DeliveryRating(models.Model):
    """The customer's rating of a delivered order (from the tracking page, once). It feeds the
    driver's standing."""

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="rating")
    driver = models.ForeignKey("drivers.Driver", on_delete=models.PROTECT, related_name="ratings")
    stars = models.PositiveSmallIntegerField()
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(stars__gte=1, stars__lte=5), name="rating_stars_1_to_5")]

    def __str__(self) -> str:
        return f"{self.stars}/5 for order {self.order_id}"


class OrderEvent(StatusEvent):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")

    class Meta(StatusEvent.Meta):
        pass


class BatchStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    ASSIGNED = "assigned", "Assigned"
    AT_STORE = "at_store", "Driver at store"
    PICKED_UP = "picked_up", "Picked up"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    RETURNING = "returning", "Returning to store"
    RETURNED = "returned", "Returned"


class BatchingRun(models.Model):
    """One auto-batching job (PyVRP in a Celery task) for a store and a delivery window."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Solving"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    store = models.ForeignKey("stores.Store", on_delete=models.CASCADE, related_name="batching_runs")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    window_from = models.DateTimeField()
    window_to = models.DateTimeField()
    time_limit_seconds = models.PositiveSmallIntegerField(default=5)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    orders_considered = models.PositiveIntegerField(default=0)
    batches_proposed = models.PositiveIntegerField(default=0)
    unassigned_order_ids = models.JSONField(default=list, blank=True)
    total_meters = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Auto-batch {self.pk} for {self.store_id} ({self.status})"


class Batch(models.Model):
    """A trip from one store with its stops in sequence."""

    Status = BatchStatus

    TRANSITIONS = {
        Status.DRAFT: {Status.PUBLISHED, Status.CANCELLED},
        # published -> draft: the associate pulls it back before anyone took it.
        Status.PUBLISHED: {Status.ASSIGNED, Status.DRAFT, Status.CANCELLED},
        # assigned/at_store -> published: back to dispatch before pickup, e.g. the driver can no
        # longer act on it (dispatch.services.batch_release_to_dispatch). -> cancelled: withdrawn,
        # e.g. its last order was cancelled (orders.batch_editing.batch_withdraw_if_empty).
        Status.ASSIGNED: {Status.AT_STORE, Status.PUBLISHED, Status.CANCELLED},
        Status.AT_STORE: {Status.PICKED_UP, Status.PUBLISHED, Status.CANCELLED},
        Status.PICKED_UP: {Status.COMPLETED, Status.RETURNING},
        Status.RETURNING: {Status.RETURNED},
        Status.COMPLETED: set(),
        Status.CANCELLED: set(),
        Status.RETURNED: set(),
    }
    # Statuses in which the batch belongs to a driver; a driver has at most one such batch.
    ACTIVE_STATUSES = (Status.ASSIGNED, Status.AT_STORE, Status.PICKED_UP, Status.RETURNING)
    CLOSED_STATUSES = (Status.COMPLETED, Status.CANCELLED, Status.RETURNED)

    store = models.ForeignKey("stores.Store", on_delete=models.PROTECT, related_name="batches")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    status_changed_at = models.DateTimeField(default=timezone.now)
    # String FK: drivers depends on orders, never the other way round.
    driver = models.ForeignKey(
        "drivers.Driver", null=True, blank=True, on_delete=models.PROTECT, related_name="batches"
    )
    slot = models.ForeignKey(
        "stores.DeliverySlot", null=True, blank=True, on_delete=models.SET_NULL, related_name="batches"
    )
    pickup_code = models.CharField(max_length=6, default=new_pickup_code)
    ready_at = models.DateTimeField(null=True, blank=True, help_text="Publish automatically at this time.")
    pickup_by = models.DateTimeField(null=True, blank=True, help_text="Latest pickup that keeps every window.")
    published_at = models.DateTimeField(null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    arrived_at_store_at = models.DateTimeField(null=True, blank=True)
    picked_up_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    route_meters = models.PositiveIntegerField(default=0, help_text="Routed distance incl. the drive back.")
    route_seconds = models.PositiveIntegerField(default=0)
    batching_run = models.ForeignKey(
        BatchingRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="batches",
        help_text="Set when the batch was proposed by auto-batching.",
    )
    # Set when ops let a driver who was suspended or deactivated while holding this batch finish
    # it (drivers.services.driver_set_status): they may still act on this batch, and only on it.
    finish_first_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The driver's account was suspended or deactivated; they may still finish this batch.",
    )

    class Stage(models.TextChoices):
        NONE = "", "Not dispatched"
        SLOT = "slot", "Slot holders"
        ROUTE = "route", "Route matches"
        BOARD = "board", "Open board"

    dispatch_stage = models.CharField(max_length=8, choices=Stage.choices, blank=True, default="")
    board_at = models.DateTimeField(null=True, blank=True, help_text="When it appeared on the open board.")
    at_risk_flagged_at = models.DateTimeField(null=True, blank=True)
    # Denormalised for the route feed (kept by batch_refresh_route): where the trip ends
    # before heading back, and how many live stops it has. Every service that takes a stop
    # out refreshes it in the same transaction, and a CHECK holds that a batch past draft
    # (unless cancelled) has at least one: an emptied batch is withdrawn, never dispatched.
    last_stop_lat = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    last_stop_lng = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    stops_count = models.PositiveSmallIntegerField(default=0)
    # The live stops' tips and heavy orders, kept with stops_count so the feed ranks on the full
    # pay (payments.pay_total_sql) from the batch row alone. Anything that changes a batched
    # order's tip or weight must call batch_refresh_route too.
    stops_tip_cents = models.BigIntegerField(default=0)
    stops_heavy = models.PositiveSmallIntegerField(default=0)
    offer_round = models.PositiveSmallIntegerField(default=0)
    incentive_cents = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"
        indexes = [
            models.Index(fields=["store", "status"]),
            models.Index(fields=["status", "published_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["driver"],
                condition=Q(status__in=["assigned", "at_store", "picked_up", "returning"]),
                name="one_active_batch_per_driver",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "published", "cancelled"]) | Q(driver__isnull=False),
                name="batch_driver_when_assigned",
            ),
            models.CheckConstraint(condition=Q(incentive_cents__gte=0), name="batch_incentive_non_negative"),
            models.CheckConstraint(condition=Q(status__in=BatchStatus.values), name="batch_status_valid"),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "cancelled"]) | Q(stops_count__gte=1),
                name="batch_live_stops_when_dispatched",
            ),
            models.CheckConstraint(condition=Q(stops_tip_cents__gte=0), name="batch_stops_tip_cents_non_negative"),
        ]

    def __str__(self) -> str:
        return f"Batch {self.pk} ({self.store.number}, {self.status})"

    def is_late(self, now=None) -> bool:
        """Whether the batch is late for pickup (batch_is_late)."""
        return batch_is_late(pickup_by=self.pickup_by, status=self.status, now=now or timezone.now())


# A batch is late while its pickup time has passed and nobody has picked it up yet: on offer,
# or with a driver on the way to (or waiting at) the store.
LATE_STATUSES = (BatchStatus.PUBLISHED, BatchStatus.ASSIGNED, BatchStatus.AT_STORE)


def batch_is_late(*, pickup_by, status: str, now) -> bool:
    """The one rule behind every "Late" a driver sees (feed and board cards, offers, the active
    batch screen, the driver API) and behind the late incentive (dispatch.rounds)."""
    return pickup_by is not None and pickup_by <= now and status in LATE_STATUSES


class BatchEvent(StatusEvent):
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="events")

    class Meta(StatusEvent.Meta):
        pass


class StopStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ARRIVED = "arrived", "Arrived"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Undeliverable"
    RETURNED = "returned", "Returned to store"
    REMOVED = "removed", "Removed from batch"


class Stop(models.Model):
    Status = StopStatus

    TRANSITIONS = {
        Status.PENDING: {Status.ARRIVED, Status.FAILED, Status.REMOVED},
        Status.ARRIVED: {Status.DELIVERED, Status.FAILED},
        Status.FAILED: {Status.RETURNED},
        Status.DELIVERED: set(),
        Status.RETURNED: set(),
        Status.REMOVED: set(),
    }

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="stops")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="stops")
    sequence = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_changed_at = models.DateTimeField(default=timezone.now)
    arrived_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    proof_photo = models.ImageField(upload_to="proof/%Y/%m/%d/", null=True, blank=True)
    id_checked = models.BooleanField(default=False)
    id_birth_date = models.DateField(null=True, blank=True)
    id_photo = models.ImageField(upload_to="id-checks/%Y/%m/%d/", null=True, blank=True)
    failure_reason = models.CharField(max_length=64, blank=True)
    delivered_lat = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    delivered_lng = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    distance_from_address_m = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "sequence"]
        constraints = [
            # Sequence is unique among live stops; removed stops keep their old number.
            models.UniqueConstraint(
                fields=["batch", "sequence"], condition=~Q(status="removed"), name="stop_sequence_per_batch"
            ),
            # An order is in at most one batch at a time.
            models.UniqueConstraint(fields=["order"], condition=~Q(status="removed"), name="stop_order_in_one_batch"),
            models.CheckConstraint(condition=Q(sequence__gte=1), name="stop_sequence_positive"),
            models.CheckConstraint(condition=Q(status__in=StopStatus.values), name="stop_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Stop {self.sequence} of batch {self.batch_id}"


class StopEvent(StatusEvent):
    stop = models.ForeignKey(Stop, on_delete=models.CASCADE, related_name="events")

    class Meta(StatusEvent.Meta):
        pass


class SupportRequest(models.Model):
    """A driver's report of a problem (an order, a store, the app, their pay), optionally about
    one of their batches, waiting in the ops queue until someone resolves it (orders.support)."""

    class Topic(models.TextChoices):
        ORDER = "order", "An order"
        STORE = "store", "A store"
        APP = "app", "The app"
        PAY = "pay", "Pay"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    driver = models.ForeignKey("drivers.Driver", on_delete=models.PROTECT, related_name="support_requests")
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.PROTECT, related_name="support_requests")
    topic = models.CharField(max_length=8, choices=Topic.choices)
    text = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "help request"
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "created_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=["open", "resolved"]), name="supportrequest_status_valid"),
            models.CheckConstraint(
                condition=Q(topic__in=["order", "store", "app", "pay"]), name="supportrequest_topic_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="open", resolved_at__isnull=True) | Q(status="resolved", resolved_at__isnull=False),
                name="supportrequest_resolved_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"Help request {self.pk} ({self.topic}, {self.status})"
