"""The Clients and Leads table: its columns and their sorts, declared once.

`CustomerTable` is where the lists' columns are declared (django-tables2, as the house style
asks of list pages): their headers, which ones sort and by what. `clients.listing` derives
its sorts from it, validates the page's sort with it and builds the header links from its
bound columns; tests/clients/test_list_sorts.py checks each of these sorts against the
indexes of clients/migrations.

The rows are not rendered cell by cell by django-tables2: its generic cell path (a render
method's signature inspected and the column's attributes rebuilt for every cell) cost about
5x the page's SQL. `CustomerList.rows` computes each row's values once per page and the
template's `rows` partial writes them.
"""

import django_tables2 as tables
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext_lazy as _

from clients.models import Customer

# True for a customer without a name: such rows sort after the named ones in both directions
# of the name sort. Written without parameters, so that PostgreSQL matches it to the
# expression of the name indexes even in a generic (prepared) plan.
_table = Customer._meta.db_table
NAMELESS = RawSQL(f"({_table}.first_name = '' AND {_table}.last_name = '')", ())
# The annotations a column's `last` may name.
ANNOTATIONS = {"nameless": NAMELESS}


class ListColumn(tables.Column):
    """A column of CustomerTable, shared by every table rather than copied.

    django-tables2 deep-copies a table class's columns for each table so that a table may
    change its own (`columns.hide()` sets an attribute of the column); this table never
    changes them (the push selection is left out with `exclude`), and the copy was most of the
    table's cost per request (0.4 of 0.9 ms).
    """

    def __deepcopy__(self, memo):
        return self


class SortColumn(ListColumn):
    """A column whose ascending sort is `order_by` (ending with the id, so that pages are
    stable; the descending sort reverses each field) and which may keep some rows last in
    both directions: `last` names an annotation of ANNOTATIONS that is true for them."""

    def __init__(self, *args, last: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        if last and last not in ANNOTATIONS:
            raise ValueError(f"unknown annotation {last!r}")
        self.last = last


class CustomerTable(tables.Table):
    id = SortColumn(verbose_name=_("Client ID"), order_by=("id",))
    name = SortColumn(
        verbose_name=_("Name and email"),
        accessor="last_name",
        order_by=("last_name", "first_name", "id"),
        last="nameless",
    )
    last_order = SortColumn(
        verbose_name=_("Last order"), accessor="last_order_at", order_by=("last_order_at", "id")
    )
    last_source = SortColumn(
        verbose_name=_("Last source"), order_by=("last_source", "last_medium", "id")
    )
    total_spent = SortColumn(
        verbose_name=_("Total spent"),
        order_by=("total_spent", "id"),
        attrs={"th": {"class": "num"}, "td": {"class": "num"}},
    )
    orders_count = SortColumn(
        verbose_name=_("Orders"),
        order_by=("orders_count", "id"),
        attrs={"th": {"class": "num"}, "td": {"class": "num"}},
    )
    # The lifecycle group (lifecycle app): shown, filtered on, not sorted by. This column and
    # the next are the ones narrow screens leave out (static/css/app.css): their headers carry
    # the class of their cells (clients/rows.py).
    lifecycle_group = ListColumn(
        verbose_name=_("Group"), orderable=False, attrs={"th": {"class": "cell-group"}}
    )
    created_at = SortColumn(
        verbose_name=_("Customer since"),
        order_by=("created_at", "id"),
        attrs={"th": {"class": "cell-since"}},
    )
    # The push selection, last; only for users who may send push campaigns.
    select = ListColumn(
        verbose_name=_("Select"),
        accessor="push_opt_in",
        orderable=False,
        attrs={"th": {"class": "select-col"}, "td": {"class": "select-col"}},
    )

    class Meta:
        orderable = True
        order_by_field = "sort"
        page_field = "page"
        per_page_field = "per_page"
        empty_text = _("No customer matches.")

    def __init__(self, *args, show_select: bool = False, **kwargs):
        if not show_select:
            kwargs["exclude"] = ("select",)
        super().__init__(*args, **kwargs)
