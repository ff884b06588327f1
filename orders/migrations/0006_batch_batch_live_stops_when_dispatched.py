from django.db import migrations, models


class Migration(migrations.Migration):
    """Its own migration: 0005 rewrote batch rows, and PostgreSQL refuses to ALTER a table with
    pending trigger events in the same transaction."""

    dependencies = [
        ("orders", "0005_batch_finish_first_offer_released"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="batch",
            constraint=models.CheckConstraint(
                condition=models.Q(("status__in", ["draft", "cancelled"]), ("stops_count__gte", 1), _connector="OR"),
                name="batch_live_stops_when_dispatched",
            ),
        ),
    ]
