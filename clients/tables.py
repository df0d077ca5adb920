"""The Clients and Leads tables.

django-tables2 gives the columns, their headers and sort links; the rows' values are computed
by `CustomerTable.row_values` in one pass (see there why) and rendered by templates/clients/
client_list.html.
"""

import functools
from datetime import date
from urllib.parse import quote

import django_tables2 as tables
from django.urls import reverse
from django.utils import translation
from django.utils.formats import date_format
from django.utils.timezone import get_current_timezone
from django.utils.translation import get_language, gettext, ngettext
from django.utils.translation import gettext_lazy as _

from backoffice.templatetags.formatting import money


class CustomerTable(tables.Table):
    id = tables.Column(verbose_name=_("Client ID"), attrs={"td": {"class": "nowrap"}})
    name = tables.Column(
        verbose_name=_("Name and email"),
        accessor="last_name",
        order_by=("last_name", "first_name", "id"),
        empty_values=(),
    )
    last_order = tables.Column(
        verbose_name=_("Last order"), accessor="last_order_at", order_by=("last_order_at", "id")
    )
    last_source = tables.Column(
        verbose_name=_("Last source"), order_by=("last_source", "last_medium", "id")
    )
    total_spent = tables.Column(
        verbose_name=_("Total spent"),
        order_by=("total_spent", "id"),
        attrs={"th": {"class": "num"}, "td": {"class": "num"}},
    )
    orders_count = tables.Column(
        verbose_name=_("Orders"),
        order_by=("orders_count", "id"),
        attrs={"th": {"class": "num"}, "td": {"class": "num"}},
    )
    created_at = tables.Column(verbose_name=_("Customer since"), order_by=("created_at", "id"))
    # The push checkboxes, in the last column as the help page says; only shown to users
    # who may send push campaigns (see CustomerListView).
    select = tables.Column(
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
        attrs = {"class": "data"}
        empty_text = _("No customer matches.")

    def __init__(self, *args, show_select: bool = False, selected=frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        # The ids ticked for a push (clients/selection.py), shown ticked on every page.
        self.selected = selected
        if not show_select:
            self.columns.hide("select")

    def row_values(self) -> list[dict]:
        """The current page's rows as plain values, for the template's `rows` partial.

        django-tables2's generic cell path inspects each render method's signature and
        rebuilds the column's attributes for every cell: at 100 rows that cost several times
        the SQL query. Here each row's values are computed once, in one pass, and what is the
        same on every row (translated words, URL patterns, the time zone, dates and order
        counts already written) is looked up once per page: the rows of a list page are most
        of its rendering time, and lists are most of the back office's traffic. The markup
        and its escaping stay the template's.
        """
        client_url = url_pattern("clients:client-detail")
        order_url = url_pattern("orders:order-detail")
        zone = get_current_timezone()
        language = get_language()
        select_label = gettext("Select client %(id)s")
        orders_text = {}
        rows = []
        for record in (row.record for row in self.page.object_list):
            pk = record.pk
            count = record.orders_count
            text = orders_text.get(count)
            if text is None:
                text = orders_text[count] = ngettext("%(n)d order", "%(n)d orders", count) % {
                    "n": count
                }
            number = record.last_order_number
            source, medium = record.last_source, record.last_medium
            rows.append(
                {
                    # Text, not a number: the template would localize a number.
                    "id": str(pk),
                    "url": client_url.format(pk),
                    "name": record.full_name or "—",
                    "email": record.email,
                    "push": record.push_opt_in,
                    "select_label": select_label % {"id": pk},
                    "selected": pk in self.selected,
                    "order_number": number,
                    "order_url": "" if number is None else order_url.format(quote(number, safe="")),
                    "order_date": ""
                    if number is None
                    else _date(language, zone, record.last_order_at),
                    "source": f"{source} / {medium}" if medium else source,
                    "total_spent": money(record.total_spent),
                    "orders": text,
                    "created": _date(language, zone, record.created_at),
                }
            )
        return rows

    def headers(self) -> list[dict]:
        """The column headers: label, CSS class, and for sortable ones the link that sorts by
        them (the other way round if they already sort the page) and their aria-sort."""
        params = self.request.GET.copy()
        params.pop("page", None)
        headers = []
        for column in self.columns:
            header = {"name": column.name, "label": column.header, "url": "", "aria_sort": ""}
            header["css"] = column.attrs["th"].get("class", "")
            if column.orderable:
                alias = column.order_by_alias
                if column.is_ordered:
                    header["aria_sort"] = "descending" if alias.is_descending else "ascending"
                params["sort"] = alias.next
                header["url"] = "?" + params.urlencode()
            headers.append(header)
        return headers


def _date(language: str, zone, moment) -> str:
    return short_date(language, moment.astimezone(zone).date())


@functools.lru_cache(maxsize=8192)
def short_date(language: str, day: date) -> str:
    """`day` in the language's short date format (a list page shows two dates per row, and
    date_format() costs more than the rest of a cell)."""
    with translation.override(language):
        return date_format(day, "SHORT_DATE_FORMAT")


_PLACEHOLDER = "0000000000"


def url_pattern(name: str) -> str:
    """A URL with one argument as a str.format pattern: reverse() once per page, not per row."""
    return reverse(name, args=[_PLACEHOLDER]).replace(_PLACEHOLDER, "{}")


# The sort keys the tables accept (each may be prefixed with "-").
SORT_KEYS = frozenset(
    name for name, column in CustomerTable.base_columns.items() if column.orderable is not False
)
