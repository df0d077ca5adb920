"""Reads of saved segments: a tab's segments and how many customers each finds now."""

import functools
import json

from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection, connections
from django.db.models import OuterRef, QuerySet, Subquery, Value
from django.http import QueryDict

from backoffice.compiled import CompiledQuery
from backoffice.planning import planned_each_time
from clients.filters import CustomerFilter
from clients.models import Customer
from clients.paginators import COUNT_CAP
from clients.search import MAX_PK
from clients.selectors import TABS
from segments.models import Segment
from tags.models import CustomerTag, Tag

# A segment's count is recomputed at most this often (seconds): the side panel counts every
# segment of the tab on each list page, and a count costs up to one filtered list page.
COUNT_TTL = 60


def panel_rows(*, tab: str) -> tuple[list[Segment], list[tuple[int, str]]]:
    """The tab's saved segments and every tag (id, name), both by name, in one query (a
    UNION, compiled once per process): the side panel and the tag filters of every list
    page need both."""
    found, tag_rows = [], []
    for kind, pk, name, query, updated_at in _panel_query().rows(tab):
        if kind == "s":
            found.append(Segment(pk=pk, name=name, tab=tab, query=query, updated_at=updated_at))
        else:
            tag_rows.append((pk, name))
    found.sort(key=lambda segment: (segment.name.casefold(), segment.pk))
    tag_rows.sort(key=lambda row: (row[1].casefold(), row[0]))
    return found, tag_rows


_ANY_TAB = "\x00tab"


@functools.cache
def _panel_query() -> CompiledQuery:
    segments = Segment.objects.filter(tab=_ANY_TAB).values_list(
        Value("s"), "pk", "name", "query", "updated_at"
    )
    tags = Tag.objects.values_list(Value("t"), "pk", "name", Value(""), "updated_at")
    return CompiledQuery(segments.union(tags, all=True), _ANY_TAB)


def tab_segments(*, tab: str) -> list[Segment]:
    """The saved segments of a tab, by name."""
    return list(Segment.objects.filter(tab=tab).order_by("name", "pk"))


def segment_filterset(segment: Segment) -> CustomerFilter:
    return CustomerFilter(
        QueryDict(segment.query), queryset=Customer.objects.filter(TABS[segment.tab])
    )


def segment_customers(segment: Segment) -> QuerySet[Customer] | None:
    """The customers the segment finds now; None when its definition is no longer valid
    (a filter value that no longer exists, such as a deleted tag)."""
    filterset = segment_filterset(segment)
    return filterset.qs if filterset.is_valid() else None


# Counting a one-tag filter through the tag's carriers (capped_count_sql): the first
# (cap + 1) // SAMPLE_PART carriers are probed to see how many match the other filters; when
# at least one in MIN_SHARE does, up to MIN_SHARE * (cap + 1) carriers are probed for the count.
SAMPLE_PART = 2
MIN_SHARE = 8


def _sql(queryset) -> tuple[str, list]:
    sql, params = queryset.query.sql_with_params()
    return sql, list(params)


def capped_count_sql(filterset, cap: int) -> tuple[str, list]:
    """SQL of one value: how many customers the valid `filterset` finds, counted up to cap + 1
    (exact up to cap, else cap + 1). Raises EmptyResultSet when they can be none.

    Filtered by one tag and other conditions on the customer row (filterset.
    count_through_tag), the count reads the tag's carriers in customer order and looks each
    up among the customers the other filters find, one primary-key probe per carrier, up to
    cap + 1 matches. PostgreSQL does not choose that plan itself for a tag on tens of
    thousands of customers: it prices each probe as a disk read (random_page_cost 4), and
    hashes the carriers and scans the customers instead (48 ms of SQL for the saved segment
    "tag, ordered in 180 days, never opened a push" at a million customers, against 4,000
    probes). The probe is a scalar subquery, which PostgreSQL never turns into a join. Only
    when PostgreSQL plans that hash (hashes_carriers): its other plans (merging the tag's
    index with an index of the other filters, both read without the table) cost less than
    the probes. When the other filters are selective (a rare launch source), probing
    carriers would visit them all for few matches: a sample of the first carriers decides,
    and past a bound the plain count takes over. Every branch is an exact count, so the
    choice only changes the time.
    """
    plain_sql, params = _sql(filterset.counted_qs().order_by().values("pk")[: cap + 1])
    plain = f"(SELECT COUNT(*) FROM ({plain_sql}) AS plain)"
    tag = filterset.count_through_tag()
    if tag is None or not hashes_carriers(filterset.qs.db, plain, params):
        return plain, params
    others = filterset.queryset_without("tags_any").order_by().values("pk")
    probe = Subquery(others.filter(pk=OuterRef("customer_id"))[:1])
    connection = connections[filterset.qs.db]
    q = connection.ops.quote_name
    table, column = q(CustomerTag._meta.db_table), q("customer_id")
    # The n-th carrier's customer id (NULL when the tag has fewer), the tag and n - 1 its
    # parameters.
    nth = (
        f"SELECT {table}.{column} FROM {table} WHERE {table}.{q('tag_id')} = %s "
        f"ORDER BY {table}.{column} LIMIT 1 OFFSET %s"
    )
    # The carriers the other filters find: compiled once, then bounded by the n-th carrier
    # (the query ends with its WHERE clause, so a condition can be added to it).
    carriers_sql, carriers_params = _sql(
        CustomerTag.objects.filter(tag_id=tag.pk)
        .alias(found=probe)
        .filter(found__isnull=False)
        .order_by()
        .values("customer_id")
    )
    sample_size, bound_size = max(1, (cap + 1) // SAMPLE_PART), MIN_SHARE * (cap + 1)

    def matches(n, limit):  # ... up to the n-th carrier, at most `limit` of them
        return (
            f"SELECT COUNT(*) FROM ({carriers_sql} AND {table}.{column} <= "
            f"COALESCE(({nth}), %s) LIMIT {limit}) AS m",
            [*carriers_params, tag.pk, n - 1, MAX_PK],
        )

    # (The limits change no result; they keep PostgreSQL's estimate of the work low enough
    # that it does not compile the query first: JIT, 10-50 ms.)
    sample_sql, sample_params = matches(sample_size, sample_size)
    found_sql, found_params = matches(bound_size, cap + 1)
    first_sql, first_params = nth, [tag.pk, sample_size - 1]
    last_sql, last_params = nth, [tag.pk, bound_size - 1]
    # One value (segment_counts puts several in one statement). Each derived table computed
    # once (PostgreSQL would otherwise copy its columns'
    # subqueries into every branch of the CASE that reads them).
    fence = " OFFSET 0" if connection.vendor == "postgresql" else ""
    # n: the count when the carriers answered it, NULL when the plain count must.
    sql = (
        f"(SELECT CASE WHEN d.n IS NOT NULL THEN d.n ELSE {plain} END FROM (SELECT CASE "
        f"WHEN x.first IS NULL THEN x.sample WHEN x.sample * {MIN_SHARE} >= {sample_size} "
        f"THEN (SELECT CASE WHEN y.found > {cap} OR y.last IS NULL THEN y.found END FROM "
        f"(SELECT ({found_sql}) AS found, ({last_sql}) AS last{fence}) AS y) END AS n "
        f"FROM (SELECT ({sample_sql}) AS sample, ({first_sql}) AS first{fence}) AS x{fence}) AS d)"
    )
    return sql, [*params, *found_params, *last_params, *sample_params, *first_params]


def hashes_carriers(alias: str, count_sql: str, params: list) -> bool:
    """Whether PostgreSQL plans the count (a scalar subquery) by hashing tag carriers (an
    EXPLAIN: planning only). Always on SQLite, which has no such plan: the tests run the
    carrier count there."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) SELECT {count_sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    table = CustomerTag._meta.db_table

    def reads_carriers(node) -> bool:
        return node.get("Relation Name") == table or any(
            reads_carriers(child) for child in node.get("Plans", [])
        )

    def hashed(node) -> bool:
        if node.get("Node Type") == "Hash" and reads_carriers(node):
            return True
        return any(hashed(child) for child in node.get("Plans", []))

    return hashed(plan[0]["Plan"])


def capped_count(filterset, cap: int) -> int:
    """How many customers the valid `filterset` finds, up to cap + 1 (capped_count_sql),
    planned with this request's values (backoffice.planning)."""
    try:
        sql, params = capped_count_sql(filterset, cap)
    except EmptyResultSet:  # a filter that can match nothing
        return 0
    connection = connections[filterset.qs.db]
    with planned_each_time(connection), connection.cursor() as cursor:
        cursor.execute("SELECT " + sql, params)
        return cursor.fetchone()[0]


def segment_counts(segments: list[Segment]) -> dict[int, tuple[int | None, int]]:
    """How many customers each segment finds, and up to how many it counts them (its cap, as
    its list counts them: segment_count_cap); None for the count when the definition is no
    longer valid. At most COUNT_TTL seconds old; the missing counts in one query (checking a
    definition that names tags reads them: one more query per such segment, once a minute)."""
    keys = {
        segment.pk: f"segment-count:{segment.pk}:{segment.updated_at.timestamp()}"
        for segment in segments
    }
    cached = cache.get_many(list(keys.values()))
    result = {pk: cached[key] for pk, key in keys.items() if key in cached}
    parts, params, order = [], [], []
    for segment in segments:
        if segment.pk in result:
            continue
        filterset = segment_filterset(segment)
        if not filterset.is_valid():
            result[segment.pk] = (None, COUNT_CAP)
            continue
        cap = filterset.count_cap or COUNT_CAP
        try:
            sql, sql_params = capped_count_sql(filterset, cap)
        except EmptyResultSet:  # a filter that can match nothing ("#" + a huge number)
            result[segment.pk] = (0, cap)
            continue
        parts.append(sql)
        params.extend(sql_params)
        order.append((segment.pk, cap))
    if parts:
        with planned_each_time(connection), connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join(parts), params)
            row = cursor.fetchone()
        for (pk, cap), count in zip(order, row, strict=True):
            result[pk] = (count, cap)
    # Only the counts made now: setting the cached ones again would restart their
    # COUNT_TTL, and a list viewed every minute would never count again.
    fresh = {keys[pk]: value for pk, value in result.items() if keys[pk] not in cached}
    if fresh:
        cache.set_many(fresh, COUNT_TTL)
    return result
