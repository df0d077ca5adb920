"""What the client page shows, shaped from the selectors' values: the spend chart's geometry,
the change history's labels and the purchase frequency. No queries and no HTTP here; the
views (clients/views/client_page.py) call these and the template draws the result."""

import functools
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format, localize, number_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import get_language, gettext, gettext_lazy, ngettext

from backoffice.html import escaped
from backoffice.templatetags.formatting import money
from clients.models import AuditAction, AuditOrigin
from orders.models import OrderStatus

# The fields an audit entry or an edit conflict names, as the page labels them.
FIELD_LABELS = {
    "first_name": gettext_lazy("First name"),
    "last_name": gettext_lazy("Last name"),
    "phone": gettext_lazy("Phone"),
    "email": gettext_lazy("Email"),
    "default_billing_address": gettext_lazy("Default billing address"),
    "default_shipping_address": gettext_lazy("Default shipping address"),
    "note": gettext_lazy("Note"),
    "address": gettext_lazy("Address"),
    "name": gettext_lazy("Name"),
    "company": gettext_lazy("Company"),
    "line1": gettext_lazy("Address line 1"),
    "line2": gettext_lazy("Address line 2"),
    "postal_code": gettext_lazy("Postal code"),
    "city": gettext_lazy("City"),
    "region": gettext_lazy("Region"),
    "country": gettext_lazy("Country"),
    "push_opt_in": gettext_lazy("Push accepted"),
    "email_consent": gettext_lazy("Email consent"),
    "sms_consent": gettext_lazy("SMS consent"),
    "due_at": gettext_lazy("Erased on"),
    "language": gettext_lazy("Language"),
    "external_id": gettext_lazy("Shop's customer ID"),
    "title": gettext_lazy("Title"),
    "outcome": gettext_lazy("Outcome"),
    "order": gettext_lazy("Order"),
    "status": gettext_lazy("Status"),
    "total": gettext_lazy("Total"),
    "refunded_amount": gettext_lazy("Refunded"),
    "tags": gettext_lazy("Tags"),
    "file": gettext_lazy("File"),
    "created_at": gettext_lazy("Customer since"),
}


def _value(value: object, name: str = "") -> object:
    """A stored before/after value as the page writes it (yes/no, an order's status, in the
    page's language)."""
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if name == "status" and value in OrderStatus.values:
        return OrderStatus(value).label
    if name.endswith("_at") and isinstance(value, str):
        # A time stored as ISO 8601 ("2026-12-12T08:57:34.377887+00:00"): as the pages write
        # times, in the shop's time zone.
        try:
            moment = parse_datetime(value)
        except ValueError:
            moment = None
        if moment is not None and timezone.is_aware(moment):
            return date_format(timezone.localtime(moment), "SHORT_DATETIME_FORMAT")
    return value


def change_rows(changes: dict) -> list[tuple[str, object, object]]:
    """(label, before, after) for each field of an audit entry or a conflict."""
    rows = []
    for name, pair in changes.items():
        before, after = pair if isinstance(pair, list | tuple) and len(pair) == 2 else ("", pair)
        label = FIELD_LABELS.get(name, name.replace("_", " ").capitalize())
        rows.append((label, _value(before, name), _value(after, name)))
    return rows


def action_label(action: str) -> str:
    """An audit entry's action as the page names it (in the current language)."""
    try:
        return str(AuditAction(action).label)
    except ValueError:  # an action no longer written: shown as stored
        return action.replace("_", " ").capitalize()


def history_entries(entries) -> list[dict]:
    """The change history's rows, from a page of audit entries (actor already joined)."""
    return [_history_entry(entry) for entry in entries]


def _history_entry(entry) -> dict:
    changes = entry.changes if isinstance(entry.changes, dict) else {}
    # An order event names its order (orders.services writes {"order": number, ...}): what
    # it is about, not a change of it.
    order = changes.get("order")
    if isinstance(order, str):
        changes = {name: pair for name, pair in changes.items() if name != "order"}
    else:
        order = ""
    return {
        "at": entry.at,
        "actor": entry.actor,
        # Changes the customer made in the shop (through the API), told apart from staff's,
        # and those the shop's platform reported (orders fulfilled, refunded...).
        "by_customer": entry.origin == AuditOrigin.CUSTOMER,
        "by_shop": entry.origin == AuditOrigin.SHOP,
        "action": action_label(entry.action),
        "order": order,
        "changes": change_rows(changes),
    }


def frequency_text(days: float | None) -> str:
    """How often the customer buys, in words ("every 12 days")."""
    if days is None:
        return "—"
    if days < 0.5:
        return gettext("several times a day")
    rounded = round(days)
    return ngettext("every day", "every %(days)d days", rounded) % {"days": rounded}


@dataclass(frozen=True)
class ChartBar:
    x: float
    cx: float
    y: float
    width: float
    height: float
    month: date
    value: Decimal
    text: str
    text_y: float
    money: str
    month_label: str
    month_name: str
    # Written under the first month and under each January.
    year_label: str


@functools.lru_cache(maxsize=512)
def _month_labels(language: str | None, month: date) -> tuple[str, str]:
    """A month's short label and full name in `language` (formatting dates per bar cost more
    than drawing the chart)."""
    with translation.override(language):
        return date_format(month, "N"), date_format(month, "F Y")


def spend_chart(months: list[tuple[date, Decimal]]) -> dict:
    """Geometry of the spend-per-month bar chart, drawn as SVG by the template.

    Every bar carries its amount as text, so the chart reads without hovering.
    """
    width, height, top, bottom = 1000, 230, 26, 40
    slot = width / len(months)
    peak = max((value for _, value in months), default=Decimal(0))
    plot = height - top - bottom
    bars = []
    for index, (month, value) in enumerate(months):
        bar_height = float(value / peak) * plot if peak > 0 and value > 0 else 0
        y = top + plot - bar_height
        bars.append(
            ChartBar(
                x=round(index * slot + slot * 0.15, 1),
                cx=round(index * slot + slot / 2, 1),
                y=round(y, 1),
                width=round(slot * 0.7, 1),
                height=round(bar_height, 1),
                month=month,
                value=value,
                # Rounded, not cut: number_format drops the decimals (€64.70 would read 64).
                text=number_format(
                    value.quantize(Decimal(1), rounding=ROUND_HALF_UP),
                    decimal_pos=0,
                    use_l10n=True,
                    force_grouping=True,
                ),
                text_y=round(y - 6, 1),
                money=money(value),
                month_label=_month_labels(get_language(), month)[0],
                month_name=_month_labels(get_language(), month)[1],
                year_label=str(month.year) if index == 0 or month.month == 1 else "",
            )
        )
    chart = {
        "bars": bars,
        "width": width,
        "height": height,
        "baseline": top + plot,
        "label_y": height - bottom + 18,
        "year_y": height - bottom + 34,
        "slot": slot,
        "has_spend": peak > 0,
        "total": sum((value for _, value in months), Decimal(0)),
    }
    if chart["has_spend"]:
        chart["bars_html"] = chart_bars_html(chart)
        chart["table_rows_html"] = format_html_join(
            "", TABLE_ROW, ((escaped(bar.month_name), escaped(bar.money)) for bar in bars)
        )
    return chart


# The chart's bars and its table's rows, written by format_html rather than by the template's
# loops (about 60 variable lookups and tag renders per chart: 0.7 ms of a client page's CPU);
# the markup is the one those loops wrote, character for character
# (tests/clients/test_client_page.py keeps them as the reference). Numbers as the template
# wrote them under {% localize off %}.
BAR = (
    "\n      {rect}\n"
    '      <text class="chart-value{zero}" x="{cx}" y="{text_y}" text-anchor="middle">'
    "{text}</text>\n"
    '      <text class="chart-month" x="{cx}" y="{label_y}" text-anchor="middle">{month}</text>\n'
    "      {year}\n      "
)
RECT = '<rect class="chart-bar" x="{}" y="{}" width="{}" height="{}"></rect>'
YEAR = '<text class="chart-year" x="{}" y="{}" text-anchor="middle">{}</text>'
TABLE_ROW = "<tr><td>{}</td><td>{}</td></tr>"


def chart_bars_html(chart: dict) -> str:
    """The SVG elements of spend_chart()'s bars, escaped: a safe string."""

    # Every value already escaped (backoffice/html.py): format_html then takes it as it is.
    def number(value) -> str:
        return escaped(localize(value, use_l10n=False))

    empty = escaped("")

    label_y, year_y = number(chart["label_y"]), number(chart["year_y"])
    return format_html_join(
        "",
        BAR,
        (
            {
                "rect": (
                    format_html(
                        RECT, number(bar.x), number(bar.y), number(bar.width), number(bar.height)
                    )
                    if bar.height
                    else empty
                ),
                "zero": empty if bar.height else escaped(" chart-zero"),
                "cx": number(bar.cx),
                "text_y": number(bar.text_y),
                "text": escaped(bar.text),
                "label_y": label_y,
                "month": escaped(bar.month_label),
                "year": format_html(YEAR, number(bar.cx), year_y, escaped(bar.year_label))
                if bar.year_label
                else empty,
            }
            for bar in chart["bars"]
        ),
    )
