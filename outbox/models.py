from django.db import models
from django.db.models import Q
from django.utils import timezone


class Message(models.Model):
    """One message Spark owes someone (an email today): written in the same transaction as the
    change it reports, so it exists exactly when the change does, and sent after the commit
    and again by the sweeper until it went out (outbox.services).

    `kind` names the sender a higher layer registered for it (outbox.senders); `payload`
    holds the ids that sender needs, never the rendered text (what to say is decided when it
    is sent: an order that moved on gets no stale email). `key` makes each message exist
    once: enqueueing it twice (a task run twice, a replayed webhook) creates nothing."""

    key = models.CharField(max_length=160, unique=True)
    kind = models.CharField(max_length=64)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Not sent before this (retries back off by moving it on).
    due_at = models.DateTimeField(default=timezone.now)
    # A sender claims the row with a guarded UPDATE before sending, so the after-commit task
    # and any number of sweepers never send it twice at once; a sender that died leaves a
    # claim that simply runs out.
    claimed_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Set instead of sent_at when there was nothing left to send (the order moved on, no
    # email address): why, in a few words.
    skipped = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(
                fields=["due_at"], condition=Q(sent_at__isnull=True, skipped=""), name="outbox_message_unsent"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"
