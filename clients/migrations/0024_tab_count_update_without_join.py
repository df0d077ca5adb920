"""PostgreSQL: the tab counters' UPDATE trigger counts without joining its transition tables.

0004's trigger joined the statement's old and new rows on the customer id to find who changed
tab. PL/pgSQL keeps the plan of that join for the connection, planned for the first sizes it
met: after a few one-row updates (a payment), a statement rewriting 25,000 customers (a
lifecycle recompute chunk, an import batch, a retention sweep, the statistics rebuild) rescanned
one transition table, spilled to disk, once per row of the other. Measured at a million
customers on 2026-12-01: 50,000 customers' launch source set in slices took about 100 s per
slice instead of about 4 s, and one UPDATE of 500,000 customers ran over 20 minutes.

Who changed tab needs no pairing: a slot's change in clients is the number of clients among
the new rows minus the number among the old rows (a customer's id, hence its slot, never
changes). Two scans and an aggregate, whatever the plan.
"""

from django.db import migrations

SLOTS = 16

UPDATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION clients_tab_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE clients_tab_count t
    SET clients = t.clients + d.clients, leads = t.leads - d.clients
    FROM (
        SELECT slot, sum(moved) AS clients
        FROM (
            SELECT mod(id, {SLOTS}) AS slot, (orders_count > 0)::int AS moved FROM new_rows
            UNION ALL
            SELECT mod(id, {SLOTS}), -(orders_count > 0)::int FROM old_rows
        ) AS rows
        GROUP BY slot
        HAVING sum(moved) <> 0
    ) d
    WHERE t.slot = d.slot;
    RETURN NULL;
END $$;
"""

# 0004's version, for migrating backwards.
JOIN_FUNCTION = f"""
CREATE OR REPLACE FUNCTION clients_tab_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE clients_tab_count t
    SET clients = t.clients + d.clients, leads = t.leads - d.clients
    FROM (
        SELECT mod(n.id, {SLOTS}) AS slot,
               sum((n.orders_count > 0)::int - (o.orders_count > 0)::int) AS clients
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (n.orders_count > 0) <> (o.orders_count > 0)
        GROUP BY 1
    ) d
    WHERE t.slot = d.slot;
    RETURN NULL;
END $$;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UPDATE_FUNCTION, None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(JOIN_FUNCTION, None)


class Migration(migrations.Migration):
    dependencies = [("clients", "0023_customer_latest_order_dates")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
