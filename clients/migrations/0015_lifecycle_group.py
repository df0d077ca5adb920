"""The customers' lifecycle group (lifecycle app), and on PostgreSQL the Clients tab's index
for its filter and the dashboard's counts. The groups are computed by lifecycle migration
0001 (and then daily); until then every customer is a prospect.

One index only, on the Clients tab (a lead is always a prospect): the column changes with the
statistics, so every order payment writes one more index entry.
"""

from django.db import migrations, models

INDEX_SQL = (
    "CREATE INDEX customer_clients_lifecycle ON clients_customer (lifecycle_group, id) "
    "WHERE orders_count > 0"
)


def _postgres(apps, schema_editor, sql):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("clients", "0014_audit_actions_push_and_storefront")]

    operations = [
        migrations.AddField(
            model_name="customer",
            name="lifecycle_group",
            field=models.CharField(
                db_default="prospects",
                editable=False,
                max_length=16,
                verbose_name="lifecycle group",
            ),
        ),
        migrations.RunPython(
            lambda apps, se: _postgres(apps, se, INDEX_SQL),
            lambda apps, se: _postgres(apps, se, "DROP INDEX customer_clients_lifecycle"),
        ),
    ]
