"""Offer moved from orders to dispatch (dispatch 0001): the snapshot's foreign key points at the
same table (orders_offer), so only Django's state changes."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dispatch", "0001_initial"),
        ("payments", "0004_driver_notices_in_the_outbox"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="offerpaysnapshot",
                    name="offer",
                    field=models.OneToOneField(
                        on_delete=django.db.models.deletion.PROTECT, related_name="pay", to="dispatch.offer"
                    ),
                ),
            ],
            database_operations=[],
        ),
    ]
