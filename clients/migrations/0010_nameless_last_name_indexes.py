"""PostgreSQL: the name sort puts customers without a name last, in both directions.

The Clients and Leads tabs sort by name with `nameless, last_name, first_name, id` (ascending)
or `nameless, -last_name, -first_name, -id` (descending), where `nameless` is
`first_name = '' AND last_name = ''` (clients/listing.py). Each direction gets its per-tab
partial index, read forwards (ascending) or backwards (descending), so any page of either
direction is still read from an index in order; they replace the plain name indexes of 0004.
tests/clients/test_list_sorts.py checks every sort of the lists against these indexes.
"""

from django.db import migrations

TABS = {"clients": "orders_count > 0", "leads": "orders_count = 0"}
NAMELESS = "(first_name = '' AND last_name = '')"


def _statements():
    for tab, condition in TABS.items():
        for suffix, flag in (("name", ""), ("name_desc", " DESC")):
            yield (
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS customer_{tab}_{suffix} "
                f"ON clients_customer (({NAMELESS}){flag}, last_name, first_name, id) "
                f"WHERE {condition}",
                f"DROP INDEX CONCURRENTLY IF EXISTS customer_{tab}_{suffix}",
            )


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for tab in TABS:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS customer_{tab}_name")
    for create, _drop in _statements():
        schema_editor.execute(create)
    schema_editor.execute("ANALYZE clients_customer")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for _create, drop in _statements():
        schema_editor.execute(drop)
    for tab, condition in TABS.items():
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY customer_{tab}_name "
            f"ON clients_customer (last_name, first_name, id) WHERE {condition}"
        )


class Migration(migrations.Migration):
    # CONCURRENTLY: building the indexes does not block writes to a live customers table.
    atomic = False

    dependencies = [("clients", "0009_tab_count_unmanaged")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
