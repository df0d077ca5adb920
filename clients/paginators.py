"""Paginators that keep the Clients and Leads tabs cheap at a million customers."""

from django.core.exceptions import EmptyResultSet
from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

# A search or filter counts its matches up to this many; past it the page says "more than".
COUNT_CAP = 10_000
# The largest OFFSET the databases take (a signed 64-bit integer, PostgreSQL and SQLite).
MAX_OFFSET = 2**63 - 1


class CappedCountPaginator(Paginator):
    """Pages of a searched or filtered list, counting at most COUNT_CAP + 1 matches.

    Counting every match of a broad filter ("source is google": a quarter of a million
    customers) costs more than the rest of the page. Up to COUNT_CAP matches the numbers are
    exact, as with Django's Paginator; past it the paginator reports `capped`, the page says
    "more than 10,000" and offers Next (known by reading one row more than the page) instead
    of a last page, and a page past the end raises EmptyPage. Every number shown stays true.
    """

    cap = COUNT_CAP

    def __init__(
        self,
        *args,
        one_pass: bool = False,
        first_pk: int | None = None,
        counter=None,
        compiled=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        # The list's queries compiled once (clients.listing.CompiledSearch): the one-pass
        # read's matches and the page's rows by id, with the SQL the list itself would send.
        self.compiled = compiled
        # counter(cap): the capped count, when the caller knows a cheaper way to count
        # (segments.selectors.capped_count); the list's own rows are counted otherwise.
        self.counter = counter
        # Searches: see _page_in_one_pass().
        self.one_pass = one_pass
        # A search for "295" lists client 295 first, then the other matches in the list's
        # order: the pages are those of that list (see _rows()).
        self.first_pk = first_pk

    @cached_property
    def count(self) -> int:
        if self.counter is not None:
            return self.counter(self.cap)
        return self.object_list.order_by()[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.cap

    def validate_number(self, number):
        if not self.capped:
            return super().validate_number(number)
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger("That page number is not an integer") from None
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        # Past a 64-bit offset no row can exist, and no database would take the query.
        if number * self.per_page + 1 > MAX_OFFSET:
            raise EmptyPage("That page contains no results")
        return number

    def page(self, number):
        page = self._page_in_one_pass(number)
        if page is not None:
            return page
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        if not self.capped:
            top = bottom + self.per_page
            if top + self.orphans >= self.count:
                top = self.count
            return self._get_page(self._rows(bottom, top), number, self)
        rows = list(self._rows(bottom, bottom + self.per_page + 1))
        if not rows and number > 1:
            raise EmptyPage("That page contains no results")
        return OpenEndedPage(
            rows[: self.per_page], number, self, has_next=len(rows) > self.per_page
        )

    def _rows(self, bottom: int, top: int):
        """Rows bottom..top of the list, with `first_pk` moved to its head when it matches."""
        queryset = self.object_list
        if self.first_pk is None or not isinstance(queryset, QuerySet):
            return queryset[bottom:top]
        first = list(queryset.filter(pk=self.first_pk).order_by())
        if not first:
            return queryset[bottom:top]
        others = queryset.exclude(pk=self.first_pk)
        if bottom == 0:
            return first + list(others[: max(top - 1, 0)])
        return list(others[bottom - 1 : top - 1])

    def _page_in_one_pass(self, number) -> Page | None:
        """The page and the capped count from one scan of the matches, when there are at
        most `cap` of them; else None (the count is then known to be capped).

        Counting the matches and then sorting them for the page reads every match twice: for
        a search for a common name (thousands of customers, each row visited to check the
        search text) that is most of the page's cost. Here the first cap + 1 matches are read
        once, with the columns the list is sorted by, and both the count and the page's ids
        come from them: exact, since all the matches are there. Past the cap, the page is read
        from the sort's index as before, which is fast precisely because matches are many.
        Only for searches: a filter's matches are often counted from an index alone, and
        reading their sort columns would cost more than it saves.
        """
        if not self.one_pass or "count" in self.__dict__:
            return None
        try:
            number = int(number)
        except (TypeError, ValueError):
            return None
        queryset = self.object_list
        offset = (number - 1) * self.per_page
        if number < 1 or offset + self.per_page > self.cap or not isinstance(queryset, QuerySet):
            return None
        ordering = plain_ordering(queryset)
        if ordering is None:
            return None
        try:
            if self.compiled is not None:
                inner, params = self.compiled.matches(self.cap)
            else:
                inner, params = one_pass_matches(queryset, self.cap).query.sql_with_params()
        except EmptyResultSet:  # a search that cannot match (.none())
            self.count = 0
            return self._get_page([], self.validate_number(number), self)
        columns = ", ".join(f"c{i}" for i in range(len(ordering) + 1))
        order = ", ".join(
            f"c{i} {'DESC' if o.startswith('-') else 'ASC'}" for i, o in enumerate(ordering, 1)
        )
        first = []
        if self.first_pk is not None:
            # The exact client ID first (c0 is the primary key).
            order = f"CASE WHEN c0 = %s THEN 0 ELSE 1 END, {order}"
            first = [self.first_pk]
        # Referenced twice, the matches are computed once (PostgreSQL materializes such a
        # common table expression; SQLite too).
        sql = (
            f"WITH m ({columns}) AS ({inner}) "
            f"SELECT c0, (SELECT COUNT(*) FROM m) FROM m ORDER BY {order} LIMIT %s OFFSET %s"
        )
        with connections[queryset.db].cursor() as cursor:
            cursor.execute(sql, [*params, *first, self.per_page, offset])
            rows = cursor.fetchall()
        if rows:
            count = rows[0][1]
        elif number == 1:
            count = 0
        else:
            # Past the last page: count without a page to know whether the cap was reached.
            return None
        self.count = count  # the cached_property's slot
        if count > self.cap:
            return None
        number = self.validate_number(number)
        ids = [row[0] for row in rows]
        if self.compiled is not None:
            found = self.compiled.rows(ids)
        else:
            found = one_pass_rows(queryset, ids)
        records = {record.pk: record for record in found}
        page_rows = [records[pk] for pk in ids if pk in records]
        return self._get_page(page_rows, number, self)


def plain_ordering(queryset) -> list[str] | None:
    """The queryset's ordering when it is made of field or annotation names (what the
    one-pass read sorts its matches by), else None."""
    ordering = queryset.query.order_by
    if not ordering or not all(
        isinstance(o, str) and o.lstrip("-").isidentifier() for o in ordering
    ):
        return None
    return list(ordering)


def one_pass_matches(queryset, cap: int) -> QuerySet:
    """The first cap + 1 matches of a list in plain_ordering(), as (pk, sort columns...)
    rows, in no order: what CappedCountPaginator's one-pass read counts and sorts."""
    fields = [o.lstrip("-") for o in plain_ordering(queryset)]
    return queryset.prefetch_related(None).order_by().values_list("pk", *fields)[: cap + 1]


def one_pass_rows(queryset, ids: list) -> QuerySet:
    """The rows of `ids` among the list's matches, in no order (no query for no ids)."""
    return queryset.filter(pk__in=ids).order_by()


class KnownCountPaginator(Paginator):
    """A paginator told the number of rows instead of counting them again (a whole tab, from
    the tab counts; a client page's lists, from the counts read with the customer)."""

    def __init__(self, *args, count: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.count = count  # shadows the cached_property


class OpenEndedPage(Page):
    """A page of a list whose exact length was not counted."""

    def __init__(self, object_list, number, paginator, *, has_next: bool):
        super().__init__(object_list, number, paginator)
        self._has_next = has_next

    def has_next(self) -> bool:
        return self._has_next

    def start_index(self) -> int:
        return (self.number - 1) * self.paginator.per_page + 1 if self.object_list else 0

    def end_index(self) -> int:
        return (self.number - 1) * self.paginator.per_page + len(self.object_list)
