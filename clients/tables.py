"""The Clients and Leads tables.

django-tables2 gives the columns, their headers and sort links; the rows are rendered by
`CustomerTable.body_rows` in one pass (see there why).
"""

from urllib.parse import quote

import django_tables2 as tables
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from backoffice.templatetags.formatting import money


class CustomerTable(tables.Table):
    # Only shown to users who may send push campaigns (see CustomerListView).
    select = tables.Column(
        verbose_name=_("Select"),
        accessor="push_opt_in",
        orderable=False,
        attrs={"th": {"class": "select-col"}, "td": {"class": "select-col"}},
    )
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

    class Meta:
        orderable = True
        order_by_field = "sort"
        page_field = "page"
        per_page_field = "per_page"
        attrs = {"class": "data"}
        empty_text = _("No customer matches.")

    def __init__(self, *args, show_select: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if not show_select:
            self.columns.hide("select")

    def body_rows(self) -> list[str]:
        """The current page's rows as HTML, rendered in one pass.

        django-tables2's generic cell path inspects each render method's signature and
        rebuilds the column's attributes for every cell: at 100 rows that cost several times
        the SQL query. Here each column's attributes are built once and each cell is a plain
        method of the record.
        """
        columns = [
            (getattr(self, f"render_{column.name}"), column.attrs["td"].as_html())
            for column in self.columns
        ]
        self._client_url = _url_pattern("clients:client-detail")
        self._order_url = _url_pattern("orders:order-detail")
        return [
            mark_safe(
                "<tr>"
                + "".join(
                    f"<td {attrs}>{conditional_escape(render(record))}</td>"
                    for render, attrs in columns
                )
                + "</tr>"
            )
            for record in (row.record for row in self.page.object_list)
        ]

    def render_select(self, record):
        if not record.push_opt_in:
            return ""
        return format_html(
            '<input type="checkbox" name="ids" value="{}" form="push-form" '
            'aria-label="{}" class="row-select">',
            record.pk,
            gettext("Select client %(id)s") % {"id": record.pk},
        )

    def render_id(self, record):
        return format_html('<a href="{}">#{}</a>', self._client_url.format(record.pk), record.pk)

    def render_name(self, record):
        badge = (
            format_html(
                ' <span class="badge badge-push" title="{}">{}</span>',
                gettext("Accepted push"),
                gettext("Push"),
            )
            if record.push_opt_in
            else ""
        )
        return format_html(
            '<a href="{}">{}</a>{}<span class="sub">{}</span>',
            self._client_url.format(record.pk),
            record.full_name or "—",
            badge,
            record.email,
        )

    def render_last_order(self, record):
        order = record.last_order
        if order is None:
            return ""
        return format_html(
            '<a href="{}">{}</a><span class="sub">{}</span>',
            self._order_url.format(quote(order.number, safe="")),
            order.number,
            date_format(localtime(record.last_order_at), "SHORT_DATE_FORMAT"),
        )

    def render_last_source(self, record):
        source, medium = record.last_source, record.last_medium
        return f"{source} / {medium}" if medium else source

    def render_total_spent(self, record):
        return money(record.total_spent)

    def render_orders_count(self, record):
        count = record.orders_count
        return ngettext("%(n)d order", "%(n)d orders", count) % {"n": count}

    def render_created_at(self, record):
        return date_format(localtime(record.created_at), "SHORT_DATE_FORMAT")


_PLACEHOLDER = "0000000000"


def _url_pattern(name: str) -> str:
    """A URL with one argument as a str.format pattern: reverse() once per page, not per row."""
    return reverse(name, args=[_PLACEHOLDER]).replace(_PLACEHOLDER, "{}")


# The sort keys the tables accept (each may be prefixed with "-").
SORT_KEYS = frozenset(
    name for name, column in CustomerTable.base_columns.items() if column.orderable is not False
)
