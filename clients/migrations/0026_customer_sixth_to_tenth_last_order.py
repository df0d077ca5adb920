"""The dates of each customer's sixth to tenth latest finalized orders, stored like the five
before them (clients migration 0023), so that "6 to 10 or more orders in the last N days" and
"at most 5 to 9" (segments/filters.py) compare a stored date instead of reading each
candidate's orders: "6 or more in the last 30 days" read the orders of the 8,322 clients
whose fifth latest order was in the period (42,000 buffers, 0.1-0.6 s) to sort its page.

PostgreSQL: the fifth date's index (migration 0025) also carries the five later dates and the
id, so that the count of "N or more" up to 1,001 reads that index alone (1,001 matches of
"8+ in the last 365 days": 5 ms, no table page, where the table's rows took 4,215 buffers and
20 ms): 12 MB instead of 8 MB at a million customers, built in under a second; a payment of a
client with five orders or more wrote an entry in it already (its fifth date moves).

Adding the columns (nullable, no default) rewrites no row; the fill writes the customers with
six finalized orders or more (159,774 at a million customers: 13 s). Not atomic, as 0023:
each step is one statement, so the fill is all or nothing, and the index is built after it.
"""

from django.db import migrations, models

# As written when this migration was made (orders.selectors.customer_stats_sql and the order
# services define them since): the n-th latest finalized order, by date then id.
_NTH = (
    "(SELECT o.placed_at FROM orders_order o WHERE o.customer_id = clients_customer.id "
    "AND o.status IN ('paid', 'fulfilled', 'refunded') "
    "ORDER BY o.placed_at DESC, o.id DESC LIMIT 1 OFFSET {offset})"
)
COLUMNS = ("sixth", "seventh", "eighth", "ninth", "tenth")
FILL_SQL = (
    "UPDATE clients_customer SET "
    + ", ".join(
        f"{name}_last_order_at = {_NTH.format(offset=offset)}"
        for offset, name in enumerate(COLUMNS, 5)
    )
    + " WHERE orders_count >= 6"
)


# As PostgreSQL prints it back (pg_get_indexdef): seed_demo drops and re-creates the indexes
# from that text.
INDEX = "customer_clients_fifth_last_order"
INDEX_SQL = (
    f"CREATE INDEX {INDEX} ON clients_customer (fifth_last_order_at) INCLUDE (id, "
    + ", ".join(f"{name}_last_order_at" for name in COLUMNS)
    + ") WHERE ((orders_count > 0) AND (fifth_last_order_at IS NOT NULL))"
)
# Migration 0025's.
OLD_INDEX_SQL = (
    f"CREATE INDEX {INDEX} ON clients_customer (fifth_last_order_at) "
    "WHERE ((orders_count > 0) AND (fifth_last_order_at IS NOT NULL))"
)


def _fill(apps, schema_editor):
    schema_editor.execute(FILL_SQL)


def _index(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("clients", "0025_customer_fifth_last_order_index")]

    operations = [
        *(
            migrations.AddField(
                model_name="customer",
                name=f"{name}_last_order_at",
                field=models.DateTimeField(blank=True, editable=False, null=True),
            )
            for name in COLUMNS
        ),
        migrations.RunPython(_fill, migrations.RunPython.noop),
        migrations.RunPython(_index(INDEX_SQL), _index(OLD_INDEX_SQL)),
    ]
