from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("imports", "0004_importjob_rows_deleted_at"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="importrow", name="importrow_job_action_idx"),
        migrations.AddIndex(
            model_name="importrow",
            index=models.Index(
                condition=models.Q(("action__in", ["refused", "update"])),
                fields=["job", "action", "ordinal"],
                name="importrow_job_action_idx",
            ),
        ),
    ]
