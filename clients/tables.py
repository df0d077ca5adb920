"""The Clients and Leads tables.

Cells are rendered with format_html rather than per-cell templates: a 100-row page renders
hundreds of cells, and a template per cell would cost more than the query.
"""

import django_tables2 as tables
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html
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

    def render_select(self, value, record):
        if not value:
            return ""
        return format_html(
            '<input type="checkbox" name="ids" value="{}" form="push-form" '
            'aria-label="{}" class="row-select">',
            record.pk,
            gettext("Select client %(id)s") % {"id": record.pk},
        )

    def render_id(self, value, record):
        return format_html('<a href="{}">#{}</a>', record.get_absolute_url(), value)

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
            record.get_absolute_url(),
            record.full_name or "—",
            badge,
            record.email,
        )

    def render_last_order(self, value, record):
        order = record.last_order
        if order is None:
            return ""
        return format_html(
            '<a href="{}">{}</a><span class="sub">{}</span>',
            reverse("orders:order-detail", args=[order.number]),
            order.number,
            date_format(localtime(value), "SHORT_DATE_FORMAT"),
        )

    def render_last_source(self, value, record):
        return f"{value} / {record.last_medium}" if record.last_medium else value

    def render_total_spent(self, value):
        return money(value)

    def render_orders_count(self, value):
        return ngettext("%(n)d order", "%(n)d orders", value) % {"n": value}

    def render_created_at(self, value):
        return date_format(localtime(value), "SHORT_DATE_FORMAT")


# The sort keys the tables accept (each may be prefixed with "-").
SORT_KEYS = frozenset(
    name for name, column in CustomerTable.base_columns.items() if column.orderable is not False
)
