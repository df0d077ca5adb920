"""The search box's trigram index split by tab (PostgreSQL only, as in 0004).

Every search is on one tab (orders_count > 0 for Clients, = 0 for Leads): with one index
over every customer, a search for a common name visited the matching rows of both tabs and
threw half away. Each tab's partial index returns its own matches only, so a search on one
tab plus the count of its matches in the other tab ("12 matches in Leads", issue 17) read
each matching row once, no more than the one search read before.
"""

from django.db import migrations

TABS = {"clients": "orders_count > 0", "leads": "orders_count = 0"}


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for tab, condition in TABS.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS customer_{tab}_search_trgm ON clients_customer "
            f"USING gin (search_text gin_trgm_ops) WHERE {condition}"
        )
    schema_editor.execute("DROP INDEX IF EXISTS customer_search_trgm")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS customer_search_trgm ON clients_customer "
        "USING gin (search_text gin_trgm_ops)"
    )
    for tab in TABS:
        schema_editor.execute(f"DROP INDEX IF EXISTS customer_{tab}_search_trgm")


class Migration(migrations.Migration):
    dependencies = [("clients", "0010_nameless_last_name_indexes")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
