"""Reads of saved segments: a tab's segments and how many customers each finds now."""

import functools

from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import QuerySet, Value
from django.http import QueryDict

from backoffice.compiled import CompiledQuery
from clients.filters import CustomerFilter
from clients.models import Customer
from clients.paginators import COUNT_CAP
from clients.selectors import TABS
from segments.models import Segment
from tags.models import Tag

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
            sql, sql_params = (
                filterset.qs.order_by().values("pk")[: cap + 1].query.sql_with_params()
            )
        except EmptyResultSet:  # a filter that can match nothing ("#" + a huge number)
            result[segment.pk] = (0, cap)
            continue
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) AS s{len(parts)})")
        params.extend(sql_params)
        order.append((segment.pk, cap))
    if parts:
        with connection.cursor() as cursor:
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
