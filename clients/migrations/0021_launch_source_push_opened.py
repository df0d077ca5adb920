"""The segment filters' stored values (segments/filters.py): the customer's last launch
source and whether they ever clicked a push, filled from the launches and deliveries.

Both columns have a database default, so adding them rewrites no row; the fill writes only
the customers with a launch source or a click. On PostgreSQL partial indexes (per tab) serve the
filters' counts and the pages when few customers match (a rare source, the clickers): each
holds only the rows with a value, so a payment of a customer without one writes no entry in
them.
"""

from django.db import migrations, models

TABS = {"clients": "orders_count > 0", "leads": "orders_count = 0"}
INDEXES = {}
for _tab, _condition in TABS.items():
    # Per tab, like the lists' other indexes (0004): a tab's count under the filter reads
    # the index alone, without visiting every matching row for the tab's condition.
    INDEXES[f"customer_{_tab}_launch_source"] = (
        f"(last_launch_source, id) WHERE last_launch_source <> '' AND {_condition}"
    )
    INDEXES[f"customer_{_tab}_push_opened"] = f"(id) WHERE push_opened AND {_condition}"
INDEX_SQL = [f"CREATE INDEX {name} ON clients_customer {sql}" for name, sql in INDEXES.items()]
DROP_SQL = [f"DROP INDEX {name}" for name in INDEXES]

# As written when this migration was made (storefront.services._launch_source_sql and
# notifications.services._push_opened_sql define them since).
FILL_SQL = [
    "UPDATE clients_customer AS c SET last_launch_source = COALESCE(("
    "SELECT l.source FROM storefront_launch l WHERE l.customer_id = c.id AND l.source <> '' "
    "ORDER BY l.occurred_at DESC, l.id DESC LIMIT 1), '') "
    "WHERE c.id IN (SELECT customer_id FROM storefront_launch WHERE source <> '')",
    "UPDATE clients_customer SET push_opened = TRUE WHERE id IN ("
    "SELECT s.customer_id FROM notifications_delivery d JOIN notifications_pushsubscription s "
    "ON s.id = d.subscription_id WHERE d.clicked_at IS NOT NULL)",
]


def _fill(apps, schema_editor):
    # The indexes first: PostgreSQL refuses CREATE INDEX on a table whose rows this
    # transaction updated (the tab counters' triggers leave events pending until commit).
    if schema_editor.connection.vendor == "postgresql":
        for sql in INDEX_SQL:
            schema_editor.execute(sql)
    for sql in FILL_SQL:
        schema_editor.execute(sql)


def _unfill(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in DROP_SQL:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("clients", "0020_import_audit_action"),
        ("storefront", "0002_roles"),
        ("notifications", "0005_segments_delivery_clicked"),
    ]

    operations = [
        migrations.AddField(
            model_name="customer",
            name="last_launch_source",
            field=models.CharField(
                db_default="",
                editable=False,
                max_length=100,
                verbose_name="Last launch source",
            ),
        ),
        migrations.AddField(
            model_name="customer",
            name="push_opened",
            field=models.BooleanField(
                db_default=False, editable=False, verbose_name="Opened a push"
            ),
        ),
        migrations.RunPython(_fill, _unfill),
    ]
