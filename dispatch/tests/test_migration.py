"""The move of offers from orders to dispatch (dispatch 0001, payments 0004, orders 0007) keeps
every row: run on a database holding the demo world with offers, offer events and a pooled
board claim made before the move, then read back through the new models.

The demo world is made with today's code at today's schema, then the database is migrated back
to before the move (the offer tables keep their names throughout): so a later migration that
adds a column does not break this test, as seeding the old schema with today's models would."""

from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dispatch import rounds
from dispatch.models import ClaimAttempt, Offer, OfferEvent
from drivers.models import Driver
from orders.models import Batch

BEFORE_THE_MOVE = [
    ("orders", "0007_batch_stops_tips_and_heavy"),
    ("payments", "0004_driver_notices_in_the_outbox"),
    ("dispatch", None),
]
TABLES = ("orders_offer", "orders_offerevent", "orders_claimattempt", "payments_offerpaysnapshot")


def _migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


def _rows(table: str, columns: list[str] | None = None) -> list[dict]:
    """Every row of `table` by id, as {column: value}; only `columns` when given (the columns it
    had before the move: a later migration may add one)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} ORDER BY id")
        names = [c.name for c in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return [{c: row[c] for c in columns} for row in rows] if columns else rows


def _content_type_ids(app_label: str) -> dict[str, int]:
    return dict(
        ContentType.objects.filter(app_label=app_label, model__in=("offer", "offerevent", "claimattempt")).values_list(
            "model", "pk"
        )
    )


@pytest.mark.django_db(transaction=True)
def test_offers_keep_their_rows_and_content_types_when_they_move_to_dispatch():
    try:
        # The demo world, and dispatch run on it: offers to the slot holders (with pay snapshots
        # and events), then one batch on the board with a pooled claim. Without its money
        # history: ledger accounts of kinds added after the move cannot go back to that schema.
        call_command("seed_demo", "--no-history", stdout=StringIO())
        rounds.dispatch_sweep()
        published = (
            Batch.objects.filter(status=Batch.Status.PUBLISHED)
            .exclude(pk__in=Offer.objects.values("batch_id"))
            .select_related("store")
            .first()
        )
        assert published is not None
        ClaimAttempt.objects.create(
            batch=published,
            driver=Driver.objects.filter(home_zone=published.store.zone_id).first(),
            score=2.5,
            detail={"slot": False},
        )
        _migrate(BEFORE_THE_MOVE)
        assert ("dispatch", "0001_initial") not in MigrationExecutor(connection).loader.applied_migrations
        before = {table: _rows(table) for table in TABLES}
        assert before["orders_offer"] and before["orders_offerevent"] and before["orders_claimattempt"]
        assert before["payments_offerpaysnapshot"]
        old_types = _content_type_ids("orders")
        assert set(old_types) == {"offer", "offerevent", "claimattempt"}
        old_perms = set(Permission.objects.filter(content_type_id__in=old_types.values()).values_list("pk", flat=True))

        _migrate(None)  # to this branch's state

        assert {table: _rows(table, list(before[table][0])) for table in TABLES} == before
        ContentType.objects.clear_cache()
        assert _content_type_ids("dispatch") == old_types
        assert _content_type_ids("orders") == {}
        assert ContentType.objects.get_for_model(Offer).pk == old_types["offer"]
        assert (
            set(Permission.objects.filter(content_type__app_label="dispatch").values_list("pk", flat=True)) >= old_perms
        )
        # Readable through the new models, relations included.
        assert Offer.objects.count() == len(before["orders_offer"])
        assert OfferEvent.objects.count() == len(before["orders_offerevent"])
        assert ClaimAttempt.objects.count() == len(before["orders_claimattempt"])
        for offer in Offer.objects.select_related("batch", "driver", "pay"):
            assert offer.pay.total_cents > 0 and offer.batch.pk and offer.driver.pk
            assert offer.events.exists()
        attempt = ClaimAttempt.objects.select_related("batch", "driver").get()
        assert (attempt.batch, attempt.score) == (published, 2.5)
    finally:
        _migrate(None)  # whatever happened, leave the test database at the current state
