"""Offers, their events and board claims now live in dispatch (dispatch 0001 took them over with
their tables): drop them from orders' state only; the tables stay."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0007_batch_stops_tips_and_heavy"),
        ("dispatch", "0001_initial"),
        ("payments", "0005_offerpaysnapshot_offer_in_dispatch"),  # its FK points at dispatch.Offer first
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="OfferEvent"),
                migrations.DeleteModel(name="ClaimAttempt"),
                migrations.DeleteModel(name="Offer"),
            ],
            database_operations=[],
        ),
    ]
