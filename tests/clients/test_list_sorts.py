"""The lists' sorts (declared once by clients/tables.py's CustomerTable, which
clients/listing.py derives its SORTS from) against the PostgreSQL indexes that make every page
of every sort cheap at a million customers (clients/migrations).

Two checks: the indexes the migrations declare cover every sort both ways, per tab (pure
Python, on every database); and on PostgreSQL the planner really reads each sort's page from
its per-tab index, with no sort step, whatever the direction.
"""

import importlib
import re

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone
from psycopg.sql import Literal

from clients.filters import CustomerFilter
from clients.listing import DEFAULT_SORTS, SORTS, sorted_customers
from clients.models import Customer
from clients.selectors import TABS, customer_list
from clients.tables import NAMELESS, CustomerTable
from lifecycle.rules import Group

ALL_SORTS = sorted(key for name in SORTS for key in (name, f"-{name}"))
# The tabs' conditions as the migrations write them.
TAB_CONDITIONS = {"clients": "orders_count > 0", "leads": "orders_count = 0"}
CREATE = re.compile(
    r"CREATE INDEX (?:CONCURRENTLY )?(?:IF NOT EXISTS )?(?P<name>\w+) ON clients_customer "
    r"\((?P<columns>.*)\) WHERE (?P<condition>.+)$"
)

on_postgresql = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="the list indexes are PostgreSQL's",
)


def declared_indexes() -> dict[str, tuple[str, str]]:
    """name -> (key columns, condition) of the per-tab customer indexes, as the migrations
    leave them (a later migration replacing an index of the same name wins)."""
    indexes = {}
    list_indexes = importlib.import_module("clients.migrations.0004_postgres_list_indexes")
    name_indexes = importlib.import_module("clients.migrations.0010_nameless_last_name_indexes")
    statements = [create for create, _drop in list_indexes._index_statements()]
    statements += [create for create, _drop in name_indexes._statements()]
    for statement in statements:
        if match := CREATE.match(statement):
            indexes[match["name"]] = (match["columns"], match["condition"])
    return indexes


def index_key(sort: str) -> str:
    """The key of the index a sort is read from: ascending sorts forwards; a descending one
    backwards, so its fields ascending and the rows it keeps last (`last`) descending."""
    column = SORTS[sort.removeprefix("-")]
    fields = list(column.fields)
    if column.last:
        # The list's expression, as written in the migration (unqualified columns).
        expression = re.sub(r"\w+\.(\w+)", r"\1", NAMELESS.sql)
        fields.insert(0, f"({expression})" + (" DESC" if sort.startswith("-") else ""))
    return ", ".join(fields)


def test_the_sorts_are_the_tables_orderable_columns():
    table = CustomerTable([])
    orderable = [column.name for column in table.columns if column.orderable]
    assert list(SORTS) == orderable
    for name in orderable:
        declared = table.columns[name].column
        assert SORTS[name].fields == tuple(declared.order_by)
        assert SORTS[name].fields[-1] == "id"  # pages are stable
        assert SORTS[name].label == declared.verbose_name
    assert SORTS["name"].last == "nameless"


def test_the_default_sorts_are_sorts():
    assert all(sort.removeprefix("-") in SORTS for sort in DEFAULT_SORTS.values())
    assert set(DEFAULT_SORTS) == set(TABS) == set(TAB_CONDITIONS)


@pytest.mark.parametrize("tab", sorted(TABS))
@pytest.mark.parametrize("sort", ALL_SORTS)
def test_the_migrations_declare_an_index_for_every_sort(tab, sort):
    wanted = (index_key(sort), TAB_CONDITIONS[tab])
    names = [name for name, index in declared_indexes().items() if index == wanted]
    assert names, f"no index on ({wanted[0]}) WHERE {wanted[1]} for the {tab} sorted by {sort}"
    assert all(name.startswith(f"customer_{tab}_") for name in names)


def plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from plan_nodes(child)


def explain(cursor, sql: str, params, *, generic: bool) -> dict:
    """The plan of `sql`; with `generic`, the generic plan PostgreSQL may keep for it once the
    connection prepared it (planned without the parameters' values)."""
    if not generic:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        return cursor.fetchone()[0][0]
    cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    markers = iter(range(1, len(params) + 1))
    prepared = re.sub(r"%s", lambda _: f"${next(markers)}", sql).replace("%%", "%")
    cursor.execute(f"PREPARE list_page AS {prepared}")
    # EXECUTE takes no bound parameters: its arguments are written as literals.
    values = ", ".join(Literal(value).as_string(connection.connection) for value in params)
    cursor.execute(f"EXPLAIN (FORMAT JSON) EXECUTE list_page{f'({values})' if params else ''}")
    plan = cursor.fetchone()[0][0]
    cursor.execute("DEALLOCATE list_page")
    return plan


@on_postgresql
@pytest.mark.django_db
@pytest.mark.parametrize("tab", sorted(TABS))
@pytest.mark.parametrize("sort", ALL_SORTS)
@pytest.mark.parametrize("offset", [0, 50])
@pytest.mark.parametrize("generic", [False, True], ids=["own plan", "generic plan"])
def test_postgresql_reads_every_sort_from_its_per_tab_index(tab, sort, offset, generic):
    """The list's own query (a page of the sorted tab), planned with sequential scans and
    sorts made as expensive as possible: if no index gave the order, a Sort would remain.

    Also as the generic plan PostgreSQL may keep for a statement the connection prepared
    (planned without the parameters' values): the tab's condition is in the SQL itself, so
    that plan can use the per-tab indexes too."""
    page = sorted_customers(customer_list(tab=tab), sort)[offset : offset + 25]
    sql, params = page.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        # Also incremental sorts: on a near-empty table whose row estimate another test's
        # ANALYZE left (pg_class.reltuples is not rolled back), a partial order from another
        # index finished by an incremental sort could otherwise look as cheap.
        cursor.execute("SET LOCAL enable_incremental_sort = off")
        plan = explain(cursor, sql, params, generic=generic)
    nodes = list(plan_nodes(plan["Plan"]))
    kinds = [node["Node Type"] for node in nodes]
    assert "Sort" not in kinds and "Incremental Sort" not in kinds, kinds
    scans = [
        node
        for node in nodes
        if node.get("Relation Name") == "clients_customer"
        and node["Node Type"] in ("Index Scan", "Index Only Scan")
    ]
    assert len(scans) == 1, kinds
    name = scans[0]["Index Name"]
    # On the Leads tab (orders_count = 0, written in the SQL) a sort by orders_count is a
    # sort by id, and so is the id sort: the primary key gives that order without a Sort as
    # well, and which of the two the planner takes depends on the statistics that other
    # tests' ANALYZE left on the near-empty table (CI chose either, by test order).
    by_id = tab == "leads" and sort.lstrip("-") in ("id", "orders_count")
    assert name.startswith(f"customer_{tab}_") or (by_id and name == "clients_customer_pkey"), name
    expected_direction = "Backward" if sort.startswith("-") else "Forward"
    assert scans[0]["Scan Direction"] == expected_direction


@on_postgresql
@pytest.mark.django_db
@pytest.mark.parametrize("tab", sorted(TABS))
@pytest.mark.parametrize("sort", ["id", "-id"])
@pytest.mark.parametrize("generic", [False, True], ids=["own plan", "generic plan"])
def test_postgresql_reads_the_push_filter_from_its_per_tab_index(tab, sort, generic):
    """ "Push accepted" (by the list's filter), sorted by id: read from the tab's push index,
    by the statement's own plan and by a generic one (Django writes the yes into the SQL)."""
    filtered = CustomerFilter(QueryDict("push=true"), queryset=customer_list(tab=tab))
    assert filtered.is_valid()
    sql, params = sorted_customers(filtered.qs, sort)[:25].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_incremental_sort = off")
        plan = explain(cursor, sql, params, generic=generic)
    scans = [
        node["Index Name"]
        for node in plan_nodes(plan["Plan"])
        if node.get("Relation Name") == "clients_customer" and "Index Name" in node
    ]
    assert scans == [f"customer_{tab}_push"]


GROUP_INDEXES = importlib.import_module("clients.migrations.0022_group_sort_indexes")
CLIENT_GROUPS = [value for value in Group.values if value != Group.PROSPECTS]


def group_sort_cases():
    """(index, group, sort) for every group and sort (both ways) an index of clients
    migration 0021 serves."""
    for name, (groups, sort) in GROUP_INDEXES.SERVED.items():
        for group in groups or CLIENT_GROUPS:
            for direction in ("", "-"):
                yield name, group, direction + sort


def test_each_group_index_is_led_by_the_group_then_its_sort():
    assert set(GROUP_INDEXES.SERVED) == set(GROUP_INDEXES.INDEXES)
    for name, (groups, sort) in GROUP_INDEXES.SERVED.items():
        columns, condition = GROUP_INDEXES.INDEXES[name]
        assert columns == f"lifecycle_group, {index_key(sort)}"
        assert set(groups or CLIENT_GROUPS) <= set(CLIENT_GROUPS)
        if groups:
            assert all(f"'{group}'" in condition for group in groups), name
        else:
            assert condition == TAB_CONDITIONS["clients"]


@on_postgresql
@pytest.mark.django_db
@pytest.mark.parametrize(("index", "group", "sort"), list(group_sort_cases()))
@pytest.mark.parametrize("generic", [False, True], ids=["own plan", "generic plan"])
def test_postgresql_reads_a_group_under_a_correlated_sort_from_a_group_index(
    index, group, sort, generic
):
    """The Clients tab filtered on a group (by the list's filter), under a sort its members
    sit at the far end of: the page's ids are read from the index led by the group, in order
    (no Sort), rather than from the tab's sort index past every client of the other groups;
    also by a generic plan (the group is written into the SQL, so it proves the partial
    indexes that hold some groups only)."""
    # A shop where the group is a small part of the clients (as at a million customers),
    # known to the planner.
    now = timezone.now()
    others = [other for other in CLIENT_GROUPS if other != group]
    Customer.objects.bulk_create(
        Customer(
            email=f"c{n}@example.com",
            orders_count=1 + n % 9,
            total_spent=n,
            created_at=now,
            last_order_at=now,
            lifecycle_group=group if n % 40 == 0 else others[n % len(others)],
        )
        for n in range(1000)
    )
    filtered = CustomerFilter(QueryDict(f"group={group}"), queryset=customer_list(tab="clients"))
    assert filtered.is_valid()
    queryset = sorted_customers(filtered.qs, sort)
    # The page reads its ids first (whole rows would let the planner prefer the sort's own
    # index, trusting that the group is spread evenly along it).
    assert queryset._ids_first
    ids = queryset.values_list("pk", flat=True)
    ids.query.set_limits(0, 25)
    sql, params = ids.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE clients_customer")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        # Also incremental sorts: on a near-empty table whose row estimate another test's
        # ANALYZE left (pg_class.reltuples is not rolled back), a partial order from another
        # index finished by an incremental sort could otherwise look as cheap.
        cursor.execute("SET LOCAL enable_incremental_sort = off")
        plan = explain(cursor, sql, params, generic=generic)
    nodes = list(plan_nodes(plan["Plan"]))
    kinds = [node["Node Type"] for node in nodes]
    assert "Sort" not in kinds and "Incremental Sort" not in kinds, kinds
    scans = [
        node
        for node in nodes
        if node.get("Relation Name") == "clients_customer" and "Index Name" in node
    ]
    assert [scan["Index Name"] for scan in scans] == [index]
    assert scans[0]["Scan Direction"] == ("Backward" if sort.startswith("-") else "Forward")


@pytest.mark.django_db
def test_a_group_under_a_correlated_sort_reads_its_page_ids_first_and_keeps_the_order():
    """The ids-first read gives the same rows in the same order as the plain one."""
    now = timezone.now()
    Customer.objects.bulk_create(
        Customer(
            email=f"g{n}@example.com",
            orders_count=1 + n % 4,
            total_spent=n % 7,
            created_at=now,
            last_order_at=now,
            lifecycle_group=Group.LOST if n % 3 else Group.LOYAL,
        )
        for n in range(60)
    )
    for group, sort in [(Group.LOST, "-orders_count"), (Group.LOST, "id"), (Group.LOYAL, "-id")]:
        queryset = customer_list(tab="clients").filter(lifecycle_group=group)
        sorted_queryset = sorted_customers(queryset, sort)
        assert sorted_queryset._ids_first == (group == Group.LOST or sort != "-id")
        plain = [c.pk for c in QuerySet.__getitem__(sorted_customers(queryset, sort), slice(3, 13))]
        assert [c.pk for c in sorted_queryset[3:13]] == plain
        assert len(plain) == 10


@pytest.mark.django_db
def test_the_list_page_of_a_group_under_a_correlated_sort(viewer_client):
    now = timezone.now()
    Customer.objects.bulk_create(
        Customer(
            email=f"p{n}@example.com",
            first_name=f"Sortname{n:02}",
            orders_count=1 + n,
            created_at=now,
            last_order_at=now,
            lifecycle_group=Group.LOST if n % 2 else Group.NEW,
        )
        for n in range(30)
    )
    response = viewer_client.get("/clients/?group=lost&sort=-orders_count&per_page=25")
    assert response.status_code == 200
    shown = re.findall(r"Sortname(\d\d)", response.text)
    expected = [f"{n:02}" for n in range(29, 0, -2)]
    assert [n for n in dict.fromkeys(shown)] == expected
