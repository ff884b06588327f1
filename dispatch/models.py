"""Offers of a batch to drivers, their events, and board claims pooled in the fair window.

The tables kept the names they had when these models lived in orders (orders_offer, ...):
the move (migration dispatch 0001) changed Django's state only, not the database.
"""

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from spark.statemachine import StatusEvent


class OfferStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired"
    WITHDRAWN = "withdrawn", "Withdrawn"
    # The driver had the batch and it was taken back through no fault of theirs (every order
    # cancelled, or sent back to dispatch because they can no longer act on it); the trip
    # is paid (payments.services.trip_pay_for_released_batch). Not "accepted" any more, so
    # one_accepted_offer_per_batch lets the next driver's accept in.
    RELEASED = "released", "Released"


class Offer(models.Model):
    """A batch offered to one driver for a while. Its pay snapshot (payments.OfferPaySnapshot)
    is immutable and is a floor on what the driver is paid for the batch."""

    Status = OfferStatus

    class Kind(models.TextChoices):
        SLOT = "slot", "Slot holder"
        ROUTE = "route", "Route match"
        BOARD = "board", "Open board"

    TRANSITIONS = {
        Status.PENDING: {Status.ACCEPTED, Status.DECLINED, Status.EXPIRED, Status.WITHDRAWN},
        Status.ACCEPTED: {Status.RELEASED},
        Status.DECLINED: set(),
        Status.EXPIRED: set(),
        Status.WITHDRAWN: set(),
        Status.RELEASED: set(),
    }

    batch = models.ForeignKey("orders.Batch", on_delete=models.CASCADE, related_name="offers")
    driver = models.ForeignKey("drivers.Driver", on_delete=models.PROTECT, related_name="offers")
    round = models.PositiveSmallIntegerField(default=1)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.SLOT)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    status_changed_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    decline_reason = models.CharField(max_length=64, blank=True)
    rank_reason = models.CharField(max_length=255, blank=True, help_text="Why this driver got the offer.")
    rank_detail = models.JSONField(default=dict, blank=True, help_text="Rank, detour, slot, fairness inputs.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "orders_offer"  # the table kept its name when offers moved from orders
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "expires_at"]), models.Index(fields=["driver", "status"])]
        constraints = [
            models.UniqueConstraint(
                fields=["batch"], condition=Q(status="accepted"), name="one_accepted_offer_per_batch"
            ),
            models.UniqueConstraint(
                fields=["batch", "driver"], condition=Q(status="pending"), name="one_pending_offer_per_driver_batch"
            ),
            models.CheckConstraint(condition=Q(expires_at__gt=F("created_at")), name="offer_expires_after_created"),
            models.CheckConstraint(condition=Q(status__in=OfferStatus.values), name="offer_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Offer {self.pk} batch {self.batch_id} -> driver {self.driver_id} ({self.status})"


class ClaimAttempt(models.Model):
    """A board claim made inside the fair window after a batch appears. All attempts of the
    window are pooled and one winner is drawn (dispatch.rounds.claim_pool_resolve)."""

    class Outcome(models.TextChoices):
        POOLED = "pooled", "Pooled"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    batch = models.ForeignKey("orders.Batch", on_delete=models.CASCADE, related_name="claim_attempts")
    driver = models.ForeignKey("drivers.Driver", on_delete=models.CASCADE, related_name="claim_attempts")
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.POOLED)
    score = models.FloatField(default=0, help_text="Draw weight (not money).")
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "orders_claimattempt"
        constraints = [
            models.UniqueConstraint(fields=["batch", "driver"], name="one_claim_attempt_per_driver_batch"),
            models.UniqueConstraint(fields=["batch"], condition=Q(outcome="won"), name="one_claim_winner_per_batch"),
        ]

    def __str__(self) -> str:
        return f"Claim by {self.driver_id} on batch {self.batch_id} ({self.outcome})"


class OfferEvent(StatusEvent):
    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="events")

    class Meta(StatusEvent.Meta):
        db_table = "orders_offerevent"
