"""Reads of the exports app: the rows an export holds, and a user's exports."""

from django.db.models import QuerySet
from django.http import QueryDict
from django.utils.translation import gettext as _

from clients.filters import CustomerFilter
from clients.listing import DEFAULT_SORTS, SORTS, sorted_customers
from clients.models import Customer
from clients.search import MAX_PK
from clients.selectors import MAX_SELECTED, TABS
from exports.columns import FIELDS
from exports.models import Export, ExportScope

# Longest search-and-filters query string taken in (the list's own form is far shorter).
MAX_QUERY_LENGTH = 2000


def export_sort(*, tab: str, sort: str) -> str:
    """The sort of the export: the list's (a valid sort key), or the tab's default."""
    if not sort:
        return DEFAULT_SORTS[tab]
    if sort.removeprefix("-") not in SORTS:
        raise ValueError(_("Unknown sort “%(sort)s”.") % {"sort": sort[:50]})
    return sort


def export_ids(values) -> list[int]:
    """The ids of a "selected" export; ValueError with a message for the user if invalid."""
    try:
        ids = [int(value) for value in values]
    except (TypeError, ValueError):
        raise ValueError(_("The selection is not valid.")) from None
    if any(not 0 < pk <= MAX_PK for pk in ids):
        raise ValueError(_("The selection is not valid."))
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise ValueError(_("No customer is selected."))
    if len(ids) > MAX_SELECTED:
        raise ValueError(_("At most %(max)s customers can be selected.") % {"max": MAX_SELECTED})
    return ids


def export_rows(**arguments) -> QuerySet[Customer]:
    """The customers of export_customers(**arguments) as `values_list(*FIELDS)` tuples."""
    return export_customers(**arguments).values_list(*FIELDS)


def export_customers(
    *, tab: str, scope: str, query: str = "", ids=(), sort: str = ""
) -> QuerySet[Customer]:
    """The customers an export holds, in the list's order.

    The same rows as the tab shows: the tab's customers (clients.selectors.TABS), narrowed by
    the list's search and filters (CustomerFilter over the query string the list gave,
    clients.listing.filter_query) or to the ticked ids (re-checked against the tab), sorted
    by the list's sort (clients.listing.sorted_customers). Unlike the list, which leaves an
    invalid filter out with a notice, an export refuses it: a file that silently holds more
    customers than asked for would be worse than no file.
    Raises ValueError with a message for the user when the input is not valid.
    """
    if tab not in TABS:
        raise ValueError(_("Unknown tab: choose Clients or Leads."))
    sort = export_sort(tab=tab, sort=sort)
    customers = Customer.objects.filter(TABS[tab])
    if scope == ExportScope.FILTERED:
        if len(query) > MAX_QUERY_LENGTH:
            raise ValueError(_("The search and filters are too long."))
        filterset = CustomerFilter(QueryDict(query), queryset=customers)
        if not filterset.is_valid():
            raise ValueError(
                _("The search and filters are not valid: %(errors)s")
                % {"errors": filterset.errors_text()}
            )
        customers = filterset.qs
    elif scope == ExportScope.SELECTED:
        customers = customers.filter(pk__in=export_ids(ids))
    elif scope != ExportScope.ALL:
        raise ValueError(_("Unknown choice of rows: the search and filters, the selected, or all."))
    return sorted_customers(customers, sort)


def export_customers_of(export: Export) -> QuerySet[Customer]:
    """The customers of a recorded export (export_customers() with its recorded arguments)."""
    return export_customers(
        tab=export.tab, scope=export.scope, query=export.query, ids=export.ids, sort=export.sort
    )


def user_exports(*, user) -> QuerySet[Export]:
    """A user's exports, newest first."""
    return Export.objects.filter(requested_by=user).order_by("-requested_at", "-id")
