"""The customers' lifecycle group (lifecycle app), and on PostgreSQL one index per tab for
its filter. The groups are computed by the first daily recompute (enqueued by `migrate`, or
`manage.py lifecycle_recompute`); until then every customer is a prospect.

The Clients tab's index follows the group with the tab's default sort (last order, newest
first): the groups are ranges of recency, so a filtered page read from the sort's own index
would pass every more recent client first (measured: 9 s for Lost at a million customers).
It also serves the filter's capped count and the dashboard's counts (index-only). The group
changes with the statistics, so each payment or refund writes one more index entry (the row
is rewritten anyway, with an entry in every index). The Leads tab's index (every lead is a
prospect) finds at once that no lead is in another group; only sign-ups write it.
"""

from django.db import migrations, models

INDEXES = {
    "customer_clients_lifecycle": "(lifecycle_group, last_order_at, id) WHERE orders_count > 0",
    "customer_leads_lifecycle": "(lifecycle_group, created_at, id) WHERE orders_count = 0",
}
INDEX_SQL = [f"CREATE INDEX {name} ON clients_customer {sql}" for name, sql in INDEXES.items()]
DROP_SQL = [f"DROP INDEX {name}" for name in INDEXES]


def _postgres(apps, schema_editor, statements):
    if schema_editor.connection.vendor == "postgresql":
        for sql in statements:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("clients", "0016_order_audit_actions")]

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
            lambda apps, se: _postgres(apps, se, DROP_SQL),
        ),
    ]
