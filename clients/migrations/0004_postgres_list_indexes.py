"""PostgreSQL indexes and tab counters for the Clients and Leads lists at a million customers.

Only PostgreSQL gets them (SQLite serves development-sized shops without them):

- per tab (orders_count > 0 for Clients, = 0 for Leads), a partial index for each sortable
  column, ending with the id as the table's orderings do, so any page in either direction is
  read from an index in order (clients/listing.py; the name sort's indexes are replaced in
  0007 so that customers without a name come last);
- partial indexes for the filters not covered by those (country, push opt-in);
- a trigram GIN index on search_text for the search box (`search_text LIKE '%x%'`);
- clients_tab_count: the number of customers in each tab, kept exact by statement-level
  triggers on clients_customer (whatever writes the rows: services, COPY, bulk updates, the
  statistics rebuild), in 16 slots (by customer id) so concurrent sign-ups and first purchases
  do not queue on one row. Reading the two counts sums 32 rows instead of counting a million.
"""

from django.db import migrations

TABS = {"clients": "orders_count > 0", "leads": "orders_count = 0"}

# index name suffix -> columns, matching the sorts of clients/listing.py (checked by
# tests/clients/test_list_sorts.py)
SORTS = {
    "id": "id",
    "name": "last_name, first_name, id",
    "last_order": "last_order_at, id",
    "source": "last_source, last_medium, id",
    "spent": "total_spent, id",
    "orders": "orders_count, id",
    "created": "created_at, id",
    "country": "country, id",
}

SLOTS = 16

COUNTER_SQL = f"""
CREATE TABLE clients_tab_count (
    slot smallint PRIMARY KEY,
    clients bigint NOT NULL DEFAULT 0,
    leads bigint NOT NULL DEFAULT 0
);
INSERT INTO clients_tab_count (slot, clients, leads)
SELECT s,
       count(c.id) FILTER (WHERE c.orders_count > 0),
       count(c.id) FILTER (WHERE c.orders_count = 0)
FROM generate_series(0, {SLOTS - 1}) AS s
LEFT JOIN clients_customer c ON mod(c.id, {SLOTS}) = s
GROUP BY s;

CREATE FUNCTION clients_tab_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE clients_tab_count t
    SET clients = t.clients + d.clients, leads = t.leads + d.leads
    FROM (
        SELECT mod(id, {SLOTS}) AS slot,
               count(*) FILTER (WHERE orders_count > 0) AS clients,
               count(*) FILTER (WHERE orders_count = 0) AS leads
        FROM new_rows GROUP BY 1
    ) d
    WHERE t.slot = d.slot;
    RETURN NULL;
END $$;

CREATE FUNCTION clients_tab_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE clients_tab_count t
    SET clients = t.clients - d.clients, leads = t.leads - d.leads
    FROM (
        SELECT mod(id, {SLOTS}) AS slot,
               count(*) FILTER (WHERE orders_count > 0) AS clients,
               count(*) FILTER (WHERE orders_count = 0) AS leads
        FROM old_rows GROUP BY 1
    ) d
    WHERE t.slot = d.slot;
    RETURN NULL;
END $$;

-- Only customers that changed tab touch the counters: a stats update that keeps a client a
-- client (the usual case) locks nothing.
CREATE FUNCTION clients_tab_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE FUNCTION clients_tab_count_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE clients_tab_count SET clients = 0, leads = 0;
    RETURN NULL;
END $$;

CREATE TRIGGER clients_tab_count_insert AFTER INSERT ON clients_customer
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION clients_tab_count_insert();
CREATE TRIGGER clients_tab_count_delete AFTER DELETE ON clients_customer
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION clients_tab_count_delete();
CREATE TRIGGER clients_tab_count_update AFTER UPDATE ON clients_customer
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION clients_tab_count_update();
CREATE TRIGGER clients_tab_count_truncate AFTER TRUNCATE ON clients_customer
    FOR EACH STATEMENT EXECUTE FUNCTION clients_tab_count_truncate();
"""

DROP_COUNTER_SQL = """
DROP TRIGGER IF EXISTS clients_tab_count_insert ON clients_customer;
DROP TRIGGER IF EXISTS clients_tab_count_delete ON clients_customer;
DROP TRIGGER IF EXISTS clients_tab_count_update ON clients_customer;
DROP TRIGGER IF EXISTS clients_tab_count_truncate ON clients_customer;
DROP FUNCTION IF EXISTS clients_tab_count_insert();
DROP FUNCTION IF EXISTS clients_tab_count_delete();
DROP FUNCTION IF EXISTS clients_tab_count_update();
DROP FUNCTION IF EXISTS clients_tab_count_truncate();
DROP TABLE IF EXISTS clients_tab_count;
"""


def _index_statements():
    for tab, condition in TABS.items():
        for name, columns in SORTS.items():
            yield (
                f"CREATE INDEX customer_{tab}_{name} ON clients_customer ({columns}) "
                f"WHERE {condition}",
                f"DROP INDEX IF EXISTS customer_{tab}_{name}",
            )
        yield (
            f"CREATE INDEX customer_{tab}_push ON clients_customer (id) "
            f"WHERE push_opt_in AND {condition}",
            f"DROP INDEX IF EXISTS customer_{tab}_push",
        )
    yield (
        "CREATE INDEX customer_search_trgm ON clients_customer "
        "USING gin (search_text gin_trgm_ops)",
        "DROP INDEX IF EXISTS customer_search_trgm",
    )


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for create, _drop in _index_statements():
        schema_editor.execute(create)
    schema_editor.execute(COUNTER_SQL, None)
    schema_editor.execute("ANALYZE clients_customer")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(DROP_COUNTER_SQL, None)
    for _create, drop in _index_statements():
        schema_editor.execute(drop)


class Migration(migrations.Migration):
    dependencies = [("clients", "0003_roles")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
