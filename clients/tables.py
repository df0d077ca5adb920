"""The Clients and Leads tables.

django-tables2 gives the columns, their headers and sort links; the rows are rendered by
`CustomerTable.body_rows` in one pass (see there why).
"""

import functools
from datetime import date
from html import escape
from urllib.parse import quote

import django_tables2 as tables
from django.urls import reverse
from django.utils import translation
from django.utils.formats import date_format
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
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

    def body_rows(self) -> list[str]:
        """The current page's rows as HTML, rendered in one pass.

        django-tables2's generic cell path inspects each render method's signature and
        rebuilds the column's attributes for every cell: at 100 rows that cost several times
        the SQL query. Here each column's attributes are built once, each cell is a plain
        method of the record, and what is the same on every row (translated words, URL
        patterns, the time zone) is looked up once per page: the rows of a list page are
        most of its rendering time, and lists are most of the back office's traffic.
        """
        columns = [
            (getattr(self, f"render_{column.name}"), column.attrs["td"].as_html())
            for column in self.columns
        ]
        self._client_url = url_pattern("clients:client-detail")
        self._order_url = url_pattern("orders:order-detail")
        self._zone = get_current_timezone()
        self._language = get_language()
        self._push_badge = format_html(
            ' <span class="badge badge-push" title="{}">{}</span>',
            gettext("Accepted push"),
            gettext("Push"),
        )
        self._select_label = gettext("Select client %(id)s")
        self._orders_text = {}
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

    def header_cells(self) -> list[str]:
        """The column headers as HTML, with their sort links (the rows' reasoning, once per
        column instead of a template loop of attribute lookups and query-string tags)."""
        params = self.request.GET.copy()
        params.pop("page", None)
        cells = []
        for column in self.columns:
            attrs = column.attrs["th"].as_html()
            header = escape(str(column.header))
            if column.name == "select":
                # Ticks every push-accepting row of the page (static/js/app.js; hidden
                # without JavaScript, where each row's box still works on its own).
                label = gettext("Select every customer of this page who accepts push")
                cells.append(
                    f'<th {attrs} scope="col"><input type="checkbox" class="select-page" '
                    f'aria-label="{escape(label)}" hidden>'
                    f'<span class="visually-hidden">{header}</span></th>'
                )
                continue
            if not column.orderable:
                cells.append(
                    f'<th {attrs} scope="col"><span class="visually-hidden">{header}</span></th>'
                )
                continue
            alias = column.order_by_alias
            sort = ""
            if column.is_ordered:
                direction = "descending" if alias.is_descending else "ascending"
                sort = f' aria-sort="{direction}"'
            params["sort"] = alias.next
            cells.append(
                f'<th {attrs} scope="col"{sort}>'
                f'<a href="?{escape(params.urlencode())}">{header}</a></th>'
            )
        return [mark_safe(cell) for cell in cells]

    def render_select(self, record):
        if not record.push_opt_in:
            return ""
        checked = " checked" if record.pk in self.selected else ""
        return mark_safe(
            f'<input type="checkbox" name="ids" value="{record.pk}" form="push-form" '
            f'aria-label="{escape(self._select_label % {"id": record.pk})}" '
            f'class="row-select"{checked}>'
        )

    def render_id(self, record):
        return mark_safe(f'<a href="{self._client_url.format(record.pk)}">#{record.pk}</a>')

    def render_name(self, record):
        badge = self._push_badge if record.push_opt_in else ""
        return mark_safe(
            f'<a href="{self._client_url.format(record.pk)}">{escape(record.full_name or "—")}</a>'
            f'{badge}<span class="sub">{escape(record.email)}</span>'
        )

    def render_last_order(self, record):
        number = record.last_order_number
        if number is None:
            return ""
        return mark_safe(
            f'<a href="{escape(self._order_url.format(quote(number, safe="")))}">'
            f'{escape(number)}</a><span class="sub">{self._date(record.last_order_at)}</span>'
        )

    def render_last_source(self, record):
        source, medium = record.last_source, record.last_medium
        return f"{source} / {medium}" if medium else source

    def render_total_spent(self, record):
        return money(record.total_spent)

    def render_orders_count(self, record):
        count = record.orders_count
        text = self._orders_text.get(count)
        if text is None:
            text = self._orders_text[count] = ngettext("%(n)d order", "%(n)d orders", count) % {
                "n": count
            }
        return text

    def render_created_at(self, record):
        return self._date(record.created_at)

    def _date(self, moment) -> str:
        return short_date(self._language, moment.astimezone(self._zone).date())


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
