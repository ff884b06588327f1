"""Offers, their events and board claims move from orders to dispatch.

The tables keep their names (orders_offer, orders_offerevent, orders_claimattempt; db_table on
the models), so this changes Django's state only: the rows, indexes and constraints stay as
they are. orders 0007 drops the models from orders' state; payments 0004 repoints
OfferPaySnapshot.offer. The content types move with them (their ids, so permissions and
admin log entries keep pointing at the same rows).
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


MOVED = ("offer", "offerevent", "claimattempt")


def move_content_types(apps, schema_editor, *, source="orders", target="dispatch"):
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MOVED:
        if ContentType.objects.using(db).filter(app_label=target, model=model).exists():
            continue  # already there (created by an earlier post_migrate): leave both alone
        ContentType.objects.using(db).filter(app_label=source, model=model).update(app_label=target)


def move_content_types_back(apps, schema_editor):
    move_content_types(apps, schema_editor, source="dispatch", target="orders")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("drivers", "0003_pushsubscription"),
        ("orders", "0007_batch_stops_tips_and_heavy"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Offer",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("round", models.PositiveSmallIntegerField(default=1)),
                        (
                            "kind",
                            models.CharField(
                                choices=[("slot", "Slot holder"), ("route", "Route match"), ("board", "Open board")],
                                default="slot",
                                max_length=8,
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("pending", "Pending"),
                                    ("accepted", "Accepted"),
                                    ("declined", "Declined"),
                                    ("expired", "Expired"),
                                    ("withdrawn", "Withdrawn"),
                                    ("released", "Released"),
                                ],
                                default="pending",
                                max_length=16,
                            ),
                        ),
                        ("status_changed_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("expires_at", models.DateTimeField(db_index=True)),
                        ("decline_reason", models.CharField(blank=True, max_length=64)),
                        (
                            "rank_reason",
                            models.CharField(blank=True, help_text="Why this driver got the offer.", max_length=255),
                        ),
                        (
                            "rank_detail",
                            models.JSONField(
                                blank=True, default=dict, help_text="Rank, detour, slot, fairness inputs."
                            ),
                        ),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        (
                            "batch",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="offers", to="orders.batch"
                            ),
                        ),
                        (
                            "driver",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT, related_name="offers", to="drivers.driver"
                            ),
                        ),
                    ],
                    options={
                        "db_table": "orders_offer",
                        "ordering": ["-created_at"],
                    },
                ),
                migrations.CreateModel(
                    name="OfferEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("from_status", models.CharField(max_length=32)),
                        ("to_status", models.CharField(max_length=32)),
                        ("reason", models.CharField(blank=True, max_length=255)),
                        ("lat", models.DecimalField(blank=True, decimal_places=6, max_digits=9, null=True)),
                        ("lng", models.DecimalField(blank=True, decimal_places=6, max_digits=9, null=True)),
                        ("created_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "offer",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="events", to="dispatch.offer"
                            ),
                        ),
                    ],
                    options={
                        "db_table": "orders_offerevent",
                        "ordering": ["created_at", "pk"],
                        "abstract": False,
                    },
                ),
                migrations.CreateModel(
                    name="ClaimAttempt",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "outcome",
                            models.CharField(
                                choices=[("pooled", "Pooled"), ("won", "Won"), ("lost", "Lost")],
                                default="pooled",
                                max_length=8,
                            ),
                        ),
                        ("score", models.FloatField(default=0, help_text="Draw weight (not money).")),
                        ("detail", models.JSONField(blank=True, default=dict)),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("decided_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "batch",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="claim_attempts",
                                to="orders.batch",
                            ),
                        ),
                        (
                            "driver",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="claim_attempts",
                                to="drivers.driver",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "orders_claimattempt",
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("batch", "driver"), name="one_claim_attempt_per_driver_batch"
                            ),
                            models.UniqueConstraint(
                                condition=models.Q(("outcome", "won")),
                                fields=("batch",),
                                name="one_claim_winner_per_batch",
                            ),
                        ],
                    },
                ),
                migrations.AddIndex(
                    model_name="offer",
                    index=models.Index(fields=["status", "expires_at"], name="orders_offe_status_5cef14_idx"),
                ),
                migrations.AddIndex(
                    model_name="offer",
                    index=models.Index(fields=["driver", "status"], name="orders_offe_driver__f3cd2d_idx"),
                ),
                migrations.AddConstraint(
                    model_name="offer",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("status", "accepted")),
                        fields=("batch",),
                        name="one_accepted_offer_per_batch",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="offer",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("status", "pending")),
                        fields=("batch", "driver"),
                        name="one_pending_offer_per_driver_batch",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="offer",
                    constraint=models.CheckConstraint(
                        condition=models.Q(("expires_at__gt", models.F("created_at"))),
                        name="offer_expires_after_created",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="offer",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("status__in", ["pending", "accepted", "declined", "expired", "withdrawn", "released"])
                        ),
                        name="offer_status_valid",
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
