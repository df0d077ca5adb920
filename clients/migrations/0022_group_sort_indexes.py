"""PostgreSQL: the Clients tab filtered on a lifecycle group, under a sort that puts the
group's members at the far end of the sort's index, is read from an index led by the group.

The groups are ranges of recency, frequency and spending (lifecycle/rules.py), so the orders
and total spent sorts are correlated with every group by construction: read from the tab's
sort index, a page passes every client of the other groups first (measured at a million
customers, load 8: Champions by total spent ascending 4.5 s, New by orders descending 2.5 s,
At risk by total spent ascending 1.5 s). Those two sorts get an index per tab led by the
group: each payment writes one entry in each (the row is rewritten anyway, with an entry in
every index of the table).

The groups of clients who have not ordered lately (Needs attention, At risk, About to lose,
Lost) hold older clients, so the id and customer since sorts descending pass every newer
client first (Lost by id descending 0.26 s; Needs attention by id descending 0.19 s once the
planner's estimate moved); Loyal clients are the opposite (by customer since ascending
0.21 s). Their indexes are partial, holding only those groups' rows: a customer of one of
these groups who pays leaves it (a payment makes the last order recent), so payments write
almost no entry in them (Loyal's payments do, in the customer since index).

Each index serves its sorts both ways (read backwards for descending). The sorts of the
other groups read from the tab's own sort index stay within the budget (bench_lists, group
cases; README "Performance"). tests/clients/test_list_sorts.py checks that the planner reads
these pages from these indexes.
"""

from django.db import migrations

# Written as PostgreSQL prints them back (pg_get_indexdef): seed_demo drops and re-creates the
# indexes from that text, and tests/demo/test_seed_demo.py compares them before and after.
INACTIVE = "ARRAY['needs_attention', 'at_risk', 'about_to_lose', 'lost']"
INDEXES = {
    "customer_group_orders": ("lifecycle_group, orders_count, id", "orders_count > 0"),
    "customer_group_spent": ("lifecycle_group, total_spent, id", "orders_count > 0"),
    "customer_group_id": ("lifecycle_group, id", f"lifecycle_group::text = ANY ({INACTIVE})"),
    "customer_group_created": (
        "lifecycle_group, created_at, id",
        "lifecycle_group::text = ANY "
        "(ARRAY['loyal', 'needs_attention', 'at_risk', 'about_to_lose', 'lost'])",
    ),
}
# group -> the list sorts (clients/listing.py SORTS, both ways) each index above serves.
SERVED = {
    "customer_group_orders": (None, "orders_count"),
    "customer_group_spent": (None, "total_spent"),
    "customer_group_id": (("needs_attention", "at_risk", "about_to_lose", "lost"), "id"),
    "customer_group_created": (
        ("loyal", "needs_attention", "at_risk", "about_to_lose", "lost"),
        "created_at",
    ),
}


def _statements():
    for name, (columns, condition) in INDEXES.items():
        yield (
            f"CREATE INDEX IF NOT EXISTS {name} ON clients_customer ({columns}) WHERE {condition}",
            f"DROP INDEX IF EXISTS {name}",
        )


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for create, _drop in _statements():
        schema_editor.execute(create)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for _create, drop in _statements():
        schema_editor.execute(drop)


class Migration(migrations.Migration):
    dependencies = [("clients", "0021_launch_source_push_opened")]

    operations = [migrations.RunPython(forwards, backwards)]
