from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("imports", "0003_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="importjob",
            name="rows_deleted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
