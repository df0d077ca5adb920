"""Reads of customers, shaped for the pages that show them."""

import functools

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Exists, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, Lower
from django.http import QueryDict

from backoffice.compiled import CompiledQuery, CompiledStatement
from clients.filters import CustomerFilter, filter_keys, search_condition
from clients.models import IS_CLIENT, IS_LEAD, Address, AuditEntry, Customer, Note, TabCount
from clients.search import MAX_PK, SearchQuery
from orders.models import Order
from privacy.models import ConsentRecord, ErasureRequest
from storefront.models import Launch
from tags.selectors import tags_of_customer

TABS = {"clients": IS_CLIENT, "leads": IS_LEAD}

# The columns the Clients and Leads tables show, and nothing else.
LIST_COLUMNS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "created_at",
    "orders_count",
    "total_spent",
    "last_order_at",
    "last_order",
    "last_source",
    "last_medium",
    "push_opt_in",
    "erased_at",
    "lifecycle_group",
)

MAX_SELECTED = 500


def customers_with_external_id(external_ids, customers: QuerySet | None = None) -> QuerySet:
    """The customers whose shop id is `external_ids` (a string) or among them (a list),
    through the unique index on external_id, which covers the non-empty ones only: the
    predicate is written inline (backoffice/lookups.py), so that a prepared statement's
    generic plan can use that index too (a parameter proved nothing: a scan of the whole
    table, 195 ms at a million customers, for each lookup)."""
    customers = Customer.objects.all() if customers is None else customers
    if isinstance(external_ids, str):
        found = customers.filter(external_id=external_ids)
    else:
        found = customers.filter(external_id__in=external_ids)
    return found.exclude(external_id__inline_exact="")


def customers_with_email(email: str, customers: QuerySet | None = None) -> QuerySet:
    """The customers whose email is `email` whatever its case, through the unique index on
    lower(email). `email__iexact` is UPPER(email) = UPPER(%s) on PostgreSQL, which no index
    serves: a scan of the whole table, 1.5 s at a million customers, for each sign-up."""
    customers = Customer.objects.all() if customers is None else customers
    return customers.alias(email_key=Lower("email")).filter(email_key=Lower(Value(email)))


class DeepPageQuerySet(QuerySet):
    """A list queryset whose slices far from the start read the page's ids first.

    `OFFSET 300000 LIMIT 25` on the full rows reads (and throws away) every skipped row. The
    ids alone come from the sort's index without touching the table (an index-only scan on
    the per-tab indexes of clients/migrations/0004), then only the page's rows are fetched.
    """

    DEEP_OFFSET = 1000
    # Every page ids first: set by ids_first() where the rows' columns would make the planner
    # pick a worse index than the ids alone (clients.listing.sorted_customers).
    _ids_first = False

    def ids_first(self):
        clone = self._chain()
        clone._ids_first = True
        return clone

    def _clone(self):
        clone = super()._clone()
        clone._ids_first = self._ids_first
        return clone

    def __getitem__(self, key):
        if (
            not isinstance(key, slice)
            # (ids first for a page of the sorted list, not for a count's slice)
            or ((key.start or 0) < self.DEEP_OFFSET and not (self._ids_first and self.ordered))
            or self._result_cache is not None
        ):
            return super().__getitem__(key)
        ids = list(QuerySet.__getitem__(self.values_list("pk", flat=True), key))
        rows = {row.pk: row for row in self.filter(pk__in=ids).order_by()}
        return [rows[pk] for pk in ids if pk in rows]


def customer_list(*, tab: str) -> QuerySet[Customer]:
    """The customers of one tab ("clients" or "leads"), with only the columns the table shows.

    A fresh copy of the tab's queryset, built once per process (building it, with its
    subquery, cost 0.4 ms of CPU on every list page; a copy costs a tenth).

    The last order's number is a scalar subquery in the select list: PostgreSQL evaluates it
    after the sort and the limit, for the page's rows only (a join could be planned before
    the sort, over every match of a search, and a prefetch costs a second query).
    """
    return _customer_list(tab).all()


@functools.cache
def _customer_list(tab: str) -> QuerySet[Customer]:
    last_order_number = Order.objects.filter(pk=OuterRef("last_order_id")).values("number")[:1]
    return (
        DeepPageQuerySet(Customer)
        .filter(TABS[tab])
        .only(*LIST_COLUMNS)
        .annotate(last_order_number=Subquery(last_order_number))
    )


def tab_counts() -> dict[str, int]:
    """How many customers each tab holds.

    On PostgreSQL the numbers come from clients_tab_count, kept exact by triggers on the
    customer table (clients/migrations/0004_postgres_list_indexes.py): counting a million
    customers on every page view would cost more than the rest of the page.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            table = connection.ops.quote_name(TabCount._meta.db_table)
            cursor.execute(
                f"SELECT coalesce(sum(clients), 0), coalesce(sum(leads), 0) FROM {table}"
            )
            clients, leads = cursor.fetchone()
        return {"clients": int(clients), "leads": int(leads)}
    return {tab: Customer.objects.filter(condition).count() for tab, condition in TABS.items()}


def customer_match_count(*, tab: str, filterset, cap: int) -> int:
    """How many customers of `tab` the valid search and filters of `filterset` (a bound
    CustomerFilter of the other tab) find, counted up to cap + 1."""
    matches = filterset.filter_queryset(Customer.objects.filter(TABS[tab]))
    return matches.order_by()[: cap + 1].count()


# --- Searches alone, compiled once per shape ------------------------------------------------

# Markers for a search's words and digits in compiled queries (no search text holds a NUL).
_WORD_MARKER = "\x00word{}\x00"
_DIGITS_MARKER = "\x00digits\x00"


def search_shape(search: SearchQuery) -> tuple[int, bool]:
    """What the SQL of a search with words depends on: how many words, and whether a
    phone-like query's digits are matched as one string too (search_condition)."""
    return len(search.words), bool(search.digits and (search.digits,) != search.words)


def search_values(search: SearchQuery) -> tuple[str, ...]:
    """The search's values in the order of search_markers()'s markers."""
    _, digits = search_shape(search)
    return (*search.words, *([search.digits] if digits else []))


def search_markers(words: int, digits: bool) -> tuple[SearchQuery, tuple[str, ...]]:
    """A search of this shape made of markers, and the markers in search_values()'s order."""
    query = SearchQuery(
        words=tuple(_WORD_MARKER.format(i) for i in range(words)),
        digits=_DIGITS_MARKER if digits else "",
    )
    return query, (*query.words, *([query.digits] if digits else []))


def search_match_count(*, tab: str, search: SearchQuery, cap: int) -> int:
    """customer_match_count() for a search alone (words, no filter), with the statement it
    sends compiled once per shape of search."""
    return _search_count(tab, *search_shape(search), cap).value(*search_values(search))


@functools.lru_cache(maxsize=64)
def _search_count(tab: str, words: int, digits: bool, cap: int) -> CompiledStatement:
    query, markers = search_markers(words, digits)
    matches = Customer.objects.filter(TABS[tab]).filter(search_condition(query))
    return CompiledStatement.capture(
        matches.db, lambda: matches.order_by()[: cap + 1].count(), *markers
    )


def customer_audience(*, tab: str, audience: str, ids: list, query: str) -> QuerySet[Customer]:
    """The push-accepting customers a campaign started from a tab goes to.

    `audience` is "all" (the whole tab), "filtered" (the tab under the search and filters in
    `query`, the query string the list gave: clients.listing.filter_query) or "selected" (the
    ids ticked on the page). Everything is re-checked here: ids are only kept if they belong
    to the tab and accepted push.
    Raises ValueError with a message for the user when the input is not valid.
    """
    if tab not in TABS:
        raise ValueError("Unknown tab: choose Clients or Leads.")
    customers = Customer.objects.filter(TABS[tab], push_opt_in=True)
    if audience == "all":
        return customers
    if audience == "filtered":
        params = QueryDict(query or "")
        # Only what the list writes (clients.listing.filter_query): a key no filter reads is a
        # damaged or hand-made link, and ignoring it would send to more customers than meant
        # (a query of nothing but junk was the whole tab).
        unknown = sorted(set(params) - filter_keys())
        if unknown:
            raise ValueError("The search and filters are not valid: unknown " + ", ".join(unknown))
        filterset = CustomerFilter(params, queryset=customers)
        if not filterset.is_valid():
            raise ValueError("The search and filters are not valid: " + filterset.errors_text())
        return filterset.qs
    if audience == "selected":
        try:
            pks = {int(pk) for pk in ids}
        except (TypeError, ValueError):
            raise ValueError("The selection is not valid.") from None
        # An id outside the primary key's range is no customer (and SQLite cannot even
        # compare with it): refused like any other invalid selection.
        if any(not 0 < pk <= MAX_PK for pk in pks):
            raise ValueError("The selection is not valid.")
        if not pks:
            raise ValueError("No customer is selected.")
        if len(pks) > MAX_SELECTED:
            raise ValueError(f"At most {MAX_SELECTED} customers can be selected.")
        return customers.filter(pk__in=pks)
    raise ValueError("Unknown audience: choose all, filtered or selected customers.")


# --- The client page ---------------------------------------------------------------------


def _count_per_customer(model) -> Coalesce:
    """How many rows of `model` belong to the outer customer, as a scalar subquery."""
    rows = (
        model.objects.filter(customer=OuterRef("pk"))
        .order_by()
        .values("customer")
        .annotate(c=Count("pk"))
        .values("c")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


def customer_detail() -> QuerySet[Customer]:
    """See _customer_detail(); a fresh copy of it (building it costs more than a copy)."""
    return _customer_detail().all()


@functools.cache
def _customer_detail() -> QuerySet[Customer]:
    """Customers with what the client page shows beside its lists, in one query.

    Besides the header and the default addresses: `address_rows` (addresses in the book),
    `order_rows` (orders of every status), `consent_rows` and `erasure_pending` (what the
    privacy card has to read),
    `note_rows` (note versions), `audit_rows` (change history entries) and `launch_rows` (app
    launches reported by the storefront API), the counts the page's
    paginators are given, and the current note's columns `current_note_*`, read back by
    current_note().
    """
    current = Note.objects.filter(customer=OuterRef("pk")).order_by("-created_at", "-id")
    username = f"author__{get_user_model().USERNAME_FIELD}"
    return Customer.objects.select_related(
        "default_billing_address", "default_shipping_address"
    ).annotate(
        address_rows=_count_per_customer(Address),
        order_rows=_count_per_customer(Order),
        note_rows=_count_per_customer(Note),
        audit_rows=_count_per_customer(AuditEntry),
        launch_rows=_count_per_customer(Launch),
        current_note_id=Subquery(current.values("pk")[:1]),
        current_note_text=Subquery(current.values("text")[:1]),
        current_note_created_at=Subquery(current.values("created_at")[:1]),
        current_note_author_id=Subquery(current.values("author_id")[:1]),
        current_note_author_username=Subquery(current.values(username)[:1]),
        # The customer's tags, read by tags.selectors.customer_tags().
        tag_text=tags_of_customer(),
        # Whether the privacy card has consent records or a planned erasure to read (most
        # customers have neither: privacy.selectors.client_privacy() then reads nothing).
        consent_rows=_count_per_customer(ConsentRecord),
        erasure_pending=Exists(
            ErasureRequest.objects.filter(customer=OuterRef("pk"), cancelled_at=None, done_at=None)
        ),
    )


def client_page_customer(pk: int) -> Customer | None:
    """customer_detail()'s customer `pk` for the client page (None if there is none), read
    with SQL compiled once per process: compiling its thirteen subqueries cost about 1.5 ms of
    CPU on every client page, more than the rest of the read. Its default addresses are not
    joined (raw() fills no related object): the page reads them from the customer's address
    book (with_default_addresses()).
    """
    if not 0 < pk <= MAX_PK:
        return None
    query, converters = _client_page_query()
    found = list(Customer.objects.raw(query.sql, query.params_with(pk)))
    if not found:
        return None
    customer = found[0]
    # raw() converts the model's fields only: the annotations as the ORM would (SQLite's
    # dates are text until then).
    for name, expression, functions in converters:
        value = getattr(customer, name)
        for function in functions:
            value = function(value, expression, connection)
        setattr(customer, name, value)
    return customer


# A value no customer id takes, marking where the id goes among the compiled query's parameters.
_ANY_PK = -7_777_777_777_777


@functools.cache
def _client_page_query() -> tuple[CompiledQuery, list]:
    queryset = _customer_detail().select_related(None).filter(pk=_ANY_PK)
    converters = []
    for name, expression in queryset.query.annotations.items():
        functions = connection.ops.get_db_converters(expression)
        functions += expression.get_db_converters(connection)
        if functions:
            converters.append((name, expression, functions))
    return CompiledQuery(queryset, _ANY_PK), converters


def with_default_addresses(customer: Customer, addresses: list[Address]) -> None:
    """Give `customer` its default billing and shipping addresses from `addresses` (its
    address book) rather than from a query each (those it does not hold stay lazy)."""
    by_pk = {address.pk: address for address in addresses}
    for field in ("default_billing_address", "default_shipping_address"):
        address = by_pk.get(getattr(customer, f"{field}_id"))
        if address is not None:
            setattr(customer, field, address)


def current_note(customer: Customer) -> Note | None:
    """The customer's current note version (with its author's username), from the
    annotations of customer_detail(): no query."""
    if customer.current_note_id is None:
        return None
    note = Note(
        pk=customer.current_note_id,
        customer=customer,
        text=customer.current_note_text,
        created_at=customer.current_note_created_at,
    )
    if customer.current_note_author_id is not None:
        user_model = get_user_model()
        note.author = user_model(
            pk=customer.current_note_author_id,
            **{user_model.USERNAME_FIELD: customer.current_note_author_username},
        )
    else:
        note.author = None
    note._state.adding = False
    note._state.db = customer._state.db
    return note


def customer_addresses(*, customer_id: int) -> list[Address]:
    """All of a customer's addresses, oldest first (SQL compiled once per process: the client
    page reads them on every view)."""
    return _addresses_query().objects(customer_id)


@functools.cache
def _addresses_query() -> CompiledQuery:
    return CompiledQuery(Address.objects.filter(customer_id=_ANY_PK).order_by("pk"), _ANY_PK)


def note_versions(*, customer_id: int) -> QuerySet[Note]:
    """A customer's note versions with their authors, the current one first."""
    return (
        Note.objects.filter(customer_id=customer_id)
        .select_related("author")
        .order_by("-created_at", "-id")
    )


def audit_entries(*, customer_id: int) -> QuerySet[AuditEntry]:
    """Who changed what on a customer, newest first."""
    return (
        AuditEntry.objects.filter(customer_id=customer_id)
        .select_related("actor")
        .order_by("-at", "-id")
    )
