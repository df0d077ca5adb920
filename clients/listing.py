"""The Clients and Leads lists: one object owns a list request's state.

Like the admin's ChangeList, `CustomerList` reads the query string once (search and filters,
sort, page, rows per page), validates it, keeps the notices about what it ignored, picks the
paginator, computes the page's rows and the column headers, and gives the search and filters
as the query string a push campaign's audience is built from. The view only creates it; the
template only reads it.

The columns and their sorts are declared once, in the django-tables2 `CustomerTable`
(clients/tables.py): COLUMNS and SORTS below are derived from it, the sort of the query string
is validated by it and the header links come from its bound columns; the orderings and the
benchmark read SORTS, and a test checks that each sort, both ways, is served by a per-tab
index of clients/migrations (tests/clients/test_list_sorts.py).
"""

import functools
from dataclasses import dataclass
from datetime import date
from functools import cached_property, partial
from urllib.parse import quote

from django.core.paginator import EmptyPage
from django.db.models.lookups import Exact
from django.http import QueryDict
from django.urls import reverse
from django.utils import translation
from django.utils.formats import date_format
from django.utils.functional import Promise
from django.utils.timezone import get_current_timezone
from django.utils.translation import get_language, gettext, gettext_lazy, ngettext

from backoffice.compiled import CompiledQuery
from backoffice.templatetags.formatting import money
from clients.filters import (
    KNOWN_MEDIUMS,
    KNOWN_SOURCES,
    CustomerFilter,
    filter_keys,
    search_condition,
)
from clients.paginators import (
    CappedCountPaginator,
    KnownCountPaginator,
    one_pass_matches,
    one_pass_rows,
)
from clients.rows import customer_rows_html, header_cells_html
from clients.search import SearchQuery, parse_query
from clients.selection import selected_ids
from clients.selectors import (
    MAX_SELECTED,
    customer_list,
    customer_match_count,
    search_markers,
    search_match_count,
    search_shape,
    search_values,
    tab_counts,
)
from clients.tables import ANNOTATIONS, CustomerTable
from lifecycle.rules import Group
from segments.panel import SegmentPanel
from segments.selectors import capped_count

# The query-string keys the lists read besides the search and filters (CustomerFilter's).
SORT_VAR, PAGE_VAR, PER_PAGE_VAR = "sort", "page", "per_page"
PAGE_SIZES = (25, 50, 100)
PUSH_PERMISSION = "notifications.send_campaign"
# How the integer query parameters are named in messages about them.
PARAM_NAMES = {PAGE_VAR: gettext_lazy("page"), PER_PAGE_VAR: gettext_lazy("per page")}


@dataclass(frozen=True)
class Column:
    """A column of the lists; sortable when it has `fields`.

    The ascending sort orders by `fields` (ending with the id, so that pages are stable); the
    descending one reverses each of them. `last`, an annotation of `ANNOTATIONS`, names rows
    that come after the others whichever the direction. Derived from CustomerTable's columns.
    """

    name: str
    label: Promise
    fields: tuple[str, ...] = ()
    last: str = ""
    css: str = ""


def _columns(table) -> tuple[Column, ...]:
    """The sortable columns of a django-tables2 table, in its order."""
    return tuple(
        Column(
            name,
            column.verbose_name,
            tuple(column.order_by),
            last=getattr(column, "last", ""),
            css=column.attrs.get("th", {}).get("class", ""),
        )
        for name, column in table.base_columns.items()
        if column.orderable is not False
    )


COLUMNS = _columns(CustomerTable)
SORTS = {column.name: column for column in COLUMNS}
DEFAULT_SORTS = {"clients": "-last_order", "leads": "-created_at"}
OTHER_TAB = {"clients": "leads", "leads": "clients"}
TAB_URLS = {"clients": "clients:client-list", "leads": "clients:lead-list"}
# A search's matches in the other tab are counted up to this many ("more than 1,000 matches
# in Leads"): the exact number is on that tab, and counting a common name's every match
# there would cost as much as the search itself.
OTHER_TAB_CAP = 1000


def ordering(sort: str) -> list[str]:
    """The order_by() terms of a valid sort key ("name", "-total_spent")."""
    column = SORTS[sort.removeprefix("-")]
    prefix = "-" if sort.startswith("-") else ""
    return [column.last] * bool(column.last) + [prefix + field for field in column.fields]


# The sorts whose pages of one lifecycle group are read from an index led by the group
# (clients migration 0021), and the groups it holds (None: every group of the Clients tab):
# the groups are ranges of these columns, so the tab's own sort index would pass every client
# of the other groups first.
_INACTIVE = (Group.NEEDS_ATTENTION, Group.AT_RISK, Group.ABOUT_TO_LOSE, Group.LOST)
GROUP_SORT_INDEXES = {
    "orders_count": None,
    "total_spent": None,
    "id": _INACTIVE,
    "created_at": (Group.LOYAL, *_INACTIVE),
}


def _one_group(queryset) -> str | None:
    """The lifecycle group `queryset` is restricted to by the group filter, if any."""
    for child in queryset.query.where.children:
        if (
            isinstance(child, Exact)
            and getattr(child.lhs, "target", None) is not None
            and child.lhs.target.name == "lifecycle_group"
            and isinstance(child.rhs, str)
        ):
            return child.rhs
    return None


def sorted_customers(queryset, sort: str):
    """`queryset` in the order of a valid sort key, with the annotations it needs.

    Restricted to one lifecycle group and sorted by a column of GROUP_SORT_INDEXES, a page
    reads its ids first (DeepPageQuerySet.ids_first): for the ids alone PostgreSQL reads the
    index led by the group (index-only), where for whole rows it would trust its estimate
    that the group is spread evenly along the sort's own index and walk past the other
    groups' clients (0.5 s for About to lose by orders descending at a million customers).
    """
    column = SORTS[sort.removeprefix("-")]
    if column.last:
        queryset = queryset.annotate(**{column.last: ANNOTATIONS[column.last]})
    terms = ordering(sort)
    group = _one_group(queryset)
    if column.name in GROUP_SORT_INDEXES and group in Group.values and group != Group.PROSPECTS:
        groups = GROUP_SORT_INDEXES[column.name]
        if (groups is None or group in groups) and hasattr(queryset, "ids_first"):
            queryset = queryset.ids_first()
    return queryset.order_by(*terms)


def filter_query(params: QueryDict) -> str:
    """The search and filters of `params` as a query string: what a push campaign started
    from the list is sent to (CustomerFilter reads it back, see customer_audience)."""
    keys = filter_keys()
    kept = QueryDict(mutable=True)
    for key, values in params.lists():
        if key in keys:
            kept.setlist(key, values)
    return kept.urlencode()


class CustomerList:
    """One request's page of the Clients or Leads tab."""

    known_sources = KNOWN_SOURCES
    known_mediums = KNOWN_MEDIUMS
    page_sizes = PAGE_SIZES
    max_selected = MAX_SELECTED

    def __init__(self, request, *, tab: str):
        self.request = request
        self.params = request.GET
        self.tab = tab
        self.notices: list[str] = []
        self.show_select = request.user.has_perm(PUSH_PERMISSION)
        # The customers ticked for a push, on any page (clients/selection.py).
        self.selection_ids = selected_ids(request.session, tab) if self.show_select else []
        self.counts = tab_counts()
        self.filterset = CustomerFilter(self.params or None, queryset=customer_list(tab=tab))
        if self.filterset.is_bound and not self.filterset.is_valid():
            # Invalid filters are reported and left out; the valid ones still apply.
            self.notices.append(
                gettext("Some filters were ignored: %(errors)s")
                % {"errors": self.filterset.errors_text()}
            )
        self.filters_active = self.filterset.is_valid() and self.filterset.active
        # The table gives the columns: it validates the sort and makes the header links. It
        # holds no rows (they are `rows`, computed once per page).
        self.table = CustomerTable([], show_select=self.show_select)
        self.sort = self._sort()
        self.per_page = self._per_page()
        self.paginator, self.page = self._paginate(self._int_param(PAGE_VAR, default=1))

    # --- reading the query string ---------------------------------------------------------

    def _sort(self) -> str:
        sort = self.params.get(SORT_VAR, "")
        if sort:
            # One key: the table keeps it if it names one of its orderable columns. (A list, so
            # that the table does not split "name,id" into two sorts; an accessor-like "a.b"
            # is no column name and is not shown to the table.)
            self.table.order_by = [] if "." in sort else [sort]
            if self.table.order_by:
                return sort
            self.notices.append(
                gettext("Unknown sort “%(sort)s”; showing the default order.") % {"sort": sort[:50]}
            )
        self.table.order_by = [DEFAULT_SORTS[self.tab]]
        return DEFAULT_SORTS[self.tab]

    def _per_page(self) -> int:
        per_page = self._int_param(PER_PAGE_VAR, default=PAGE_SIZES[0])
        if per_page in PAGE_SIZES:
            return per_page
        self.notices.append(
            gettext("Rows per page can be %(sizes)s.") % {"sizes": ", ".join(map(str, PAGE_SIZES))}
        )
        return PAGE_SIZES[0]

    def _int_param(self, name: str, *, default: int) -> int:
        raw = self.params.get(name, "")
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            self.notices.append(
                gettext("“%(value)s” is not a valid %(name)s.")
                % {"value": raw[:20], "name": PARAM_NAMES[name]}
            )
            return default
        return value

    # --- the page ----------------------------------------------------------------------------

    @property
    def filtered(self) -> bool:
        """Whether a search or filter narrows the tab (an invalid one counts: the rows left
        cannot be assumed to be the whole tab)."""
        return self.filterset.is_bound and (not self.filterset.is_valid() or self.filters_active)

    @cached_property
    def search(self) -> SearchQuery:
        """The valid search of the page (SearchQuery() when there is none)."""
        if not self.filterset.is_valid():
            return SearchQuery()
        return parse_query(self.filterset.form.cleaned_data.get("q") or "")

    def _paginate(self, number: int):
        rows = sorted_customers(self.filterset.qs, self.sort)
        if self.filtered:
            search = self.search
            paginator = CappedCountPaginator(
                rows,
                self.per_page,
                one_pass=bool(search.words or search.client_id is not None),
                # "295": client 295 first among the matches.
                first_pk=search.exact_id,
                compiled=self.compiled_search,
            )
            # Filters reading other tables (segments/filters.py) count fewer matches, and
            # choose how (one tag: through its carriers, see capped_count_sql).
            if self.filterset.count_cap:
                paginator.cap = self.filterset.count_cap
                paginator.counter = partial(capped_count, self.filterset)
        else:
            # The whole tab: its size is already known from the tab counts.
            paginator = KnownCountPaginator(rows, self.per_page, count=self.counts[self.tab])
        try:
            return paginator, paginator.page(number)
        except EmptyPage:
            # A capped count does not know the last page: go to the first.
            last = 1 if getattr(paginator, "capped", False) else max(paginator.num_pages, 1)
            self.notices.append(
                gettext("Page %(page)s does not exist; showing page %(last)s.")
                % {"page": number, "last": last}
            )
            return paginator, paginator.page(last)

    @cached_property
    def compiled_search(self) -> "CompiledSearch | None":
        """The page's queries compiled once per shape of search, for a search alone (words
        in the search box, no filter): the searches' most frequent form."""
        if self.search.words and self.filterset.search_alone:
            return CompiledSearch(tab=self.tab, sort=self.sort, search=self.search)
        return None

    @cached_property
    def other_tab(self) -> dict | None:
        """How many customers of the other tab the same search and filters find, for the
        "N matches in Leads" link (searches only; counted up to OTHER_TAB_CAP + 1)."""
        search = self.search
        if not (search.words or search.client_id is not None):
            return None
        other = OTHER_TAB[self.tab]
        if self.compiled_search is not None:
            count = search_match_count(tab=other, search=search, cap=OTHER_TAB_CAP)
        else:
            count = customer_match_count(tab=other, filterset=self.filterset, cap=OTHER_TAB_CAP)
        if not count:
            return None
        params = self.params.copy()
        for key in (PAGE_VAR, SORT_VAR):
            params.pop(key, None)
        return {
            "tab": other,
            "count": count,
            "capped": count > OTHER_TAB_CAP,
            "cap": OTHER_TAB_CAP,
            "url": reverse(TAB_URLS[other]) + "?" + params.urlencode(),
        }

    @cached_property
    def filter_query(self) -> str:
        return filter_query(self.params)

    @cached_property
    def filters_key(self) -> str:
        """Everything the filter form's filters (all of the form but its search box) depend on,
        for the template's cache key: the query string's filters (the search, sort and page
        left out), whether a search or filter applies and whether one is invalid (which open
        them). Every search then reuses the filters already rendered: keyed by the whole query
        string, a search's words made a new entry each time, rendered for 3 ms of CPU."""
        keys = filter_keys()
        params = QueryDict(mutable=True)
        for key, values in self.params.lists():
            if key in keys and key != "q":
                params.setlist(key, values)
        errors = bool(self.filterset.is_bound and self.filterset.errors)
        return f"{params.urlencode()}|{self.filters_active:d}{errors:d}"

    @cached_property
    def panel(self) -> SegmentPanel:
        """The tab's saved segments and the bulk tag actions (segments/panel.py)."""
        return SegmentPanel(self)

    @property
    def per_page_params(self) -> list[tuple[str, str]]:
        """What the rows-per-page form sends again: the query string but the page and size."""
        return [
            (key, value)
            for key, values in self.params.lists()
            if key not in (PAGE_VAR, PER_PAGE_VAR)
            for value in values
        ]

    @cached_property
    def headers(self) -> list[dict]:
        """The sortable columns' headers, from the table's bound columns: label, CSS classes,
        the link that sorts by the column (the other way round when it already sorts the
        page) and aria-sort."""
        params = self.params.copy()
        params.pop(PAGE_VAR, None)
        headers = []
        for column in self.table.columns:
            css = column.column.attrs.get("th", {}).get("class", "")
            if not column.orderable:
                if column.name != "select":  # the push checkboxes have their own header
                    headers.append({"label": column.header, "css": css, "url": ""})
                continue
            classes = [css, "orderable"] if css else ["orderable"]
            aria_sort = ""
            alias = column.order_by_alias
            if column.is_ordered:
                classes.append("desc" if alias.is_descending else "asc")
                aria_sort = "descending" if alias.is_descending else "ascending"
            params[SORT_VAR] = alias.next
            headers.append(
                {
                    "label": column.header,
                    "css": " ".join(classes),
                    "url": "?" + params.urlencode(),
                    "aria_sort": aria_sort,
                }
            )
        return headers

    @cached_property
    def headers_html(self) -> str:
        """The headers' markup (clients/rows.py)."""
        return header_cells_html(self.headers)

    @cached_property
    def rows(self) -> list[dict]:
        """The page's rows as plain values, for the template's `rows` partial.

        Computed in one pass, with what is the same on every row (translated words, URL
        patterns, the time zone, dates and order counts already written) looked up once per
        page: the rows are most of a list page's rendering time, and lists most of the back
        office's traffic. The markup, and its escaping, are the template's.
        """
        client_url = url_pattern("clients:client-detail")
        order_url = url_pattern("orders:order-detail")
        zone = get_current_timezone()
        language = get_language()
        select_label = gettext("Select client %(id)s")
        erased = gettext("Erased customer #%(id)s")
        groups = {value: str(label) for value, label in Group.choices}
        selected = set(self.selection_ids)
        orders_text = {}
        rows = []
        for customer in self.page.object_list:
            pk = customer.pk
            count = customer.orders_count
            text = orders_text.get(count)
            if text is None:
                text = orders_text[count] = ngettext("%(n)d order", "%(n)d orders", count) % {
                    "n": count
                }
            number = customer.last_order_number
            source, medium = customer.last_source, customer.last_medium
            rows.append(
                {
                    # Text, not a number: the template would localize a number.
                    "id": str(pk),
                    "url": client_url.format(pk),
                    "name": (
                        erased % {"id": pk}
                        if customer.erased_at is not None
                        else customer.full_name or "—"
                    ),
                    "email": "" if customer.erased_at is not None else customer.email,
                    "push": customer.push_opt_in,
                    "select_label": select_label % {"id": pk},
                    "selected": pk in selected,
                    "order_number": number,
                    "order_url": "" if number is None else order_url.format(quote(number, safe="")),
                    "order_date": (
                        "" if number is None else short_date(language, zone, customer.last_order_at)
                    ),
                    "source": f"{source} / {medium}" if medium else source,
                    "total_spent": money(customer.total_spent),
                    "orders": text,
                    "group": customer.lifecycle_group,
                    "group_label": groups.get(customer.lifecycle_group, ""),
                    "created": short_date(language, zone, customer.created_at),
                }
            )
        return rows

    @cached_property
    def rows_html(self) -> str:
        """The rows' markup (clients/rows.py)."""
        return customer_rows_html(self.rows, show_select=self.show_select)


class CompiledSearch:
    """The one-pass read of a search alone and its page's rows (CappedCountPaginator), with
    SQL compiled once per process for each shape of search: the tab, the sort, the number of
    words, whether a phone-like query's digits are matched too (selectors.search_shape) and,
    for the rows, how many. Compiling them on every search cost more CPU than the rest of its
    queries; the SQL is the one the list builds itself (tests/clients/test_compiled_search.py).
    """

    def __init__(self, *, tab: str, sort: str, search: SearchQuery):
        self.shape = (tab, sort, *search_shape(search))
        self.values = search_values(search)

    def matches(self, cap: int) -> tuple[str, list]:
        """one_pass_matches()'s SQL and parameters."""
        compiled = _matches_query(*self.shape, cap)
        return compiled.sql, compiled.params_with(*self.values)

    def rows(self, ids: list) -> list:
        """one_pass_rows()'s customers."""
        if not ids:
            return []
        return _rows_query(*self.shape, len(ids)).objects(*self.values, *ids)


def _search_template(tab: str, sort: str, words: int, digits: bool):
    """The list of a search of this shape made of markers, sorted, and the markers."""
    query, markers = search_markers(words, digits)
    customers = customer_list(tab=tab).filter(search_condition(query))
    return sorted_customers(customers, sort), markers


@functools.lru_cache(maxsize=128)
def _matches_query(tab: str, sort: str, words: int, digits: bool, cap: int) -> CompiledQuery:
    template, markers = _search_template(tab, sort, words, digits)
    return CompiledQuery(one_pass_matches(template, cap), *markers)


# Markers for the ids of a page's rows (no customer has a negative id).
_ID_MARKER = -7_777_777_777_000


@functools.lru_cache(maxsize=256)
def _rows_query(tab: str, sort: str, words: int, digits: bool, rows: int) -> CompiledQuery:
    template, markers = _search_template(tab, sort, words, digits)
    ids = [_ID_MARKER - i for i in range(rows)]
    return CompiledQuery(one_pass_rows(template, ids), *markers, *ids)


_PLACEHOLDER = "0000000000"


def url_pattern(name: str) -> str:
    """A URL with one argument as a str.format pattern: reverse() once per page, not per row."""
    return reverse(name, args=[_PLACEHOLDER]).replace(_PLACEHOLDER, "{}")


def short_date(language: str, zone, moment) -> str:
    """`moment`'s day in `zone`, in the language's short date format."""
    return _short_date(language, moment.astimezone(zone).date())


@functools.lru_cache(maxsize=8192)
def _short_date(language: str, day: date) -> str:
    # A list page shows two dates per row, and date_format() costs more than the rest of a
    # cell: each day is written once per language and process.
    with translation.override(language):
        return date_format(day, "SHORT_DATE_FORMAT")
