"""The rows and column headers of the Clients and Leads tabs as HTML, from the values
CustomerList.rows and CustomerList.headers computed.

The rows are most of a list page's markup and lists most of the back office's traffic: drawn
by the template language they cost about 20 variable lookups, escapes and tag renders per row
(about 3 ms of CPU per page of 25, a fifth of the request). Here each row is one format_html
call: every value is escaped by Django as the template escaped it, what is the same on every
row (translated labels, the push badge) is written once per page, and the markup is the one
the template's partial wrote, character for character (tests/clients/test_list_rows.py). The
row values are escaped by backoffice/html.py's `escaped` (Django's escape, without the keep_lazy
wrapper that took a third of the rows' CPU) before format_html_join writes them.
"""

from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.translation import gettext

from backoffice.html import escaped

# Each row starts on a new line, as the template's loop wrote them.
ROW = (
    '\n<tr class="row-link" data-href="{url}">'
    '<td class="nowrap cell-id" data-label="{l_id}"><a href="{url}">#{id}</a></td>'
    '<td class="cell-name"><a href="{url}">{name}</a>{push}<span class="sub">{email}</span></td>'
    '<td class="cell-order" data-label="{l_order}">{order}</td>'
    '<td class="cell-source" data-label="{l_source}">{source}</td>'
    '<td class="num cell-spent" data-label="{l_spent}">{total_spent}</td>'
    '<td class="num cell-orders" data-label="{l_orders}">{orders}</td>'
    '<td class="cell-group" data-label="{l_group}">'
    '<span class="badge badge-group badge-group-{group}">{group_label}</span></td>'
    '<td class="cell-since" data-label="{l_since}">{created}</td>'
    "{select}</tr>"
)
PUSH_BADGE = ' <span class="badge badge-push" title="{}">{}</span>'
ORDER = '<a href="{}">{}</a><span class="sub">{}</span>'
# The push selection's last cell (users who may send push), with a box for push-accepting rows.
SELECT_CELL = '<td class="select-col">{}</td>'
SELECT_BOX = (
    '<label class="select-hit"><input type="checkbox" name="ids" value="{}" form="push-form" '
    'class="row-select"{}><span class="visually-hidden">{}</span></label>'
)
CHECKED = " checked"
HEADER = '<th class="{}" scope="col"{}>{}</th>'
ARIA_SORT = ' aria-sort="{}"'
HEADER_LINK = '<a href="{}">{}</a>'
# The column labels phones show in each cell (data-label).
LABELS = {
    "l_id": "Client ID",
    "l_order": "Last order",
    "l_source": "Last source",
    "l_spent": "Total spent",
    "l_orders": "Orders",
    "l_group": "Group",
    "l_since": "Customer since",
}


def customer_rows_html(rows: list[dict], *, show_select: bool) -> str:
    """The <tr> of each row of `rows` (CustomerList.rows), escaped: a safe string."""
    # The labels are the same on every row: translated, escaped and written into the row's
    # format once per page (braces doubled: the result is a format string again).
    row_format = ROW
    for key, text in LABELS.items():
        label = conditional_escape(gettext(text)).replace("{", "{{").replace("}", "}}")
        row_format = row_format.replace("{" + key + "}", label)
    return format_html_join("", row_format, _row_values(rows, show_select=show_select))


def _row_values(rows: list[dict], *, show_select: bool):
    push_badge = format_html(PUSH_BADGE, gettext("Accepted push"), gettext("Push"))
    empty = escaped("")  # already escaped: format_html takes it as it is
    empty_select = format_html(SELECT_CELL, "") if show_select else empty
    # Values many rows share (a date, a group, "3 orders") are escaped once per page.
    shared_values = {}

    def shared(value: str) -> str:
        if value not in shared_values:
            shared_values[value] = escaped(value)
        return shared_values[value]

    for row in rows:
        order = empty
        if row["order_url"]:
            order = format_html(
                ORDER,
                escaped(row["order_url"]),
                escaped(row["order_number"]),
                shared(row["order_date"]),
            )
        select = empty_select
        if show_select and row["push"]:
            checked = CHECKED if row["selected"] else ""
            box = format_html(SELECT_BOX, row["id"], checked, row["select_label"])
            select = format_html(SELECT_CELL, box)
        yield {
            "url": escaped(row["url"]),
            "id": escaped(row["id"]),
            "name": escaped(row["name"]),
            "push": push_badge if row["push"] else empty,
            "email": escaped(row["email"]),
            "order": order,
            "source": escaped(row["source"]),
            "total_spent": escaped(row["total_spent"]),
            "orders": shared(row["orders"]),
            "group": shared(row["group"]),
            "group_label": shared(row["group_label"]),
            "created": shared(row["created"]),
            "select": select,
        }


def header_cells_html(headers: list[dict]) -> str:
    """The <th> of each header of `headers` (CustomerList.headers), escaped: a safe string."""
    return format_html_join(
        "",
        HEADER,
        (
            (
                header["css"],
                format_html(ARIA_SORT, header["aria_sort"]) if header.get("aria_sort") else "",
                format_html(HEADER_LINK, header["url"], header["label"])
                if header["url"]
                else header["label"],
            )
            for header in headers
        ),
    )
