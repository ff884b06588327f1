"""Driver notices are sent through the one outbox (outbox.Message): each notice gets its
message, carrying over how far sending got, so across the deploy no notice is lost (an unsent
one is a due message; a claim held by a sender of the old code is kept until it runs out) and
none is sent twice (a sent one is a sent message). Then the sending columns leave DriverNotice;
`sent_at` stays as the record of when a notice went out."""

import django.db.models.deletion
from django.db import migrations, models


def notices_to_outbox(apps, schema_editor):
    DriverNotice = apps.get_model("payments", "DriverNotice")
    Message = apps.get_model("outbox", "Message")
    for notice in DriverNotice.objects.filter(message__isnull=True).order_by("pk").iterator():
        message, _ = Message.objects.get_or_create(
            key=f"driver-notice:{notice.key}",
            defaults={
                "kind": "payments.driver_notice",
                "payload": {"notice_id": notice.pk},
                "created_at": notice.created_at,
                "due_at": notice.created_at,
                "sent_at": notice.sent_at,
                "claimed_until": notice.claimed_until,
                "attempts": notice.attempts,
                "last_error": notice.last_error,
            },
        )
        DriverNotice.objects.filter(pk=notice.pk).update(message=message)


def outbox_to_notices(apps, schema_editor):
    DriverNotice = apps.get_model("payments", "DriverNotice")
    for notice in DriverNotice.objects.exclude(message=None).select_related("message").iterator():
        m = notice.message
        DriverNotice.objects.filter(pk=notice.pk).update(
            sent_at=notice.sent_at or m.sent_at,
            claimed_until=m.claimed_until,
            attempts=m.attempts,
            last_error=m.last_error,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("outbox", "0001_initial"),
        ("payments", "0003_screening"),
    ]

    operations = [
        migrations.AddField(
            model_name="drivernotice",
            name="message",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="driver_notice",
                to="outbox.message",
            ),
        ),
        migrations.RunPython(notices_to_outbox, outbox_to_notices),
        migrations.RemoveIndex(model_name="drivernotice", name="drivernotice_unsent"),
        migrations.RemoveField(model_name="drivernotice", name="attempts"),
        migrations.RemoveField(model_name="drivernotice", name="claimed_until"),
        migrations.RemoveField(model_name="drivernotice", name="last_error"),
    ]
