"""Our customer export's columns: what the CSV and XLSX files hold, in which order.

This module is the format's single definition: the export writes it and the importer
recognizes it (by the headers, in any of the languages, or by the stable keys). Columns may be
appended; a key is never renamed or reused, and the order of existing columns does not change.

Each column reads one field of the customer (`field`, an ORM lookup, so the export can read
plain tuples with `values_list(*FIELDS)`; addresses are the default billing and shipping
ones) and writes it according to its `kind`:

- dates: local time of the shop, "2025-12-31 14:05" in English, "31/12/2025 14:05" in French;
- money: the language's decimal separator, no thousands separator, no currency sign;
- yes/no: the words of the language ("Yes"/"No", "Oui"/"Non");
- countries: ISO 3166-1 alpha-2 codes;
- text: as stored, except that a cell a spreadsheet would run as a formula (starting with
  = + - @, a tab or a carriage return) is written after a single quote (`make_inert`; the
  importer takes it off again with `from_inert`).

English CSV files are UTF-8 with "," between cells; French ones UTF-8 with a byte order mark
and ";", as a French spreadsheet opens them (CSV_STYLES).
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class Kind(StrEnum):
    """How a column's value is written."""

    INTEGER = "integer"
    TEXT = "text"
    DATETIME = "datetime"
    MONEY = "money"
    BOOLEAN = "boolean"
    COUNTRY = "country"


@dataclass(frozen=True)
class ExportColumn:
    """One column: its stable key, its header, the customer field it reads, its kind."""

    key: str
    header: Promise
    field: str
    kind: Kind = Kind.TEXT


_BILLING, _SHIPPING = "default_billing_address", "default_shipping_address"

COLUMNS: tuple[ExportColumn, ...] = (
    ExportColumn("id", _("Client ID"), "id", Kind.INTEGER),
    ExportColumn("first_name", _("First name"), "first_name"),
    ExportColumn("last_name", _("Last name"), "last_name"),
    ExportColumn("email", _("Email"), "email"),
    ExportColumn("phone", _("Phone"), "phone"),
    ExportColumn("last_order_at", _("Last order"), "last_order_at", Kind.DATETIME),
    ExportColumn("last_source", _("Last source"), "last_source"),
    ExportColumn("total_spent", _("Total spent"), "total_spent", Kind.MONEY),
    ExportColumn("orders_count", _("Orders"), "orders_count", Kind.INTEGER),
    ExportColumn("first_order_at", _("First order"), "first_order_at", Kind.DATETIME),
    ExportColumn("created_at", _("Customer since"), "created_at", Kind.DATETIME),
    ExportColumn("push_opt_in", _("Push notifications"), "push_opt_in", Kind.BOOLEAN),
    ExportColumn("billing_line1", _("Billing address line 1"), f"{_BILLING}__line1"),
    ExportColumn("billing_line2", _("Billing address line 2"), f"{_BILLING}__line2"),
    ExportColumn("billing_postal_code", _("Billing postal code"), f"{_BILLING}__postal_code"),
    ExportColumn("billing_city", _("Billing city"), f"{_BILLING}__city"),
    ExportColumn("billing_country", _("Billing country"), f"{_BILLING}__country", Kind.COUNTRY),
    ExportColumn("shipping_line1", _("Shipping address line 1"), f"{_SHIPPING}__line1"),
    ExportColumn("shipping_line2", _("Shipping address line 2"), f"{_SHIPPING}__line2"),
    ExportColumn("shipping_postal_code", _("Shipping postal code"), f"{_SHIPPING}__postal_code"),
    ExportColumn("shipping_city", _("Shipping city"), f"{_SHIPPING}__city"),
    ExportColumn("shipping_country", _("Shipping country"), f"{_SHIPPING}__country", Kind.COUNTRY),
    ExportColumn("external_id", _("External ID"), "external_id"),
)

KEYS: tuple[str, ...] = tuple(column.key for column in COLUMNS)
# What the export reads: `values_list(*FIELDS)` gives one tuple per customer, in column order.
FIELDS: tuple[str, ...] = tuple(column.field for column in COLUMNS)


@dataclass(frozen=True)
class CsvStyle:
    """How a language's CSV file is written."""

    delimiter: str
    bom: bool
    datetime_format: str  # strftime format, in the shop's time zone
    decimal_separator: str


CSV_STYLES: dict[str, CsvStyle] = {
    "en": CsvStyle(
        delimiter=",", bom=False, datetime_format="%Y-%m-%d %H:%M", decimal_separator="."
    ),
    "fr": CsvStyle(
        delimiter=";", bom=True, datetime_format="%d/%m/%Y %H:%M", decimal_separator=","
    ),
}


def csv_style(language: str) -> CsvStyle:
    """The CSV style of `language` ("fr", "fr-be", "en-gb"...); English for any other."""
    return CSV_STYLES.get((language or "").split("-")[0].lower(), CSV_STYLES["en"])


def headers(language: str) -> list[str]:
    """The header row in `language`."""
    with translation.override(language):
        return [str(column.header) for column in COLUMNS]


def header_keys(languages: Iterable[str] = ("en", "fr")) -> dict[str, str]:
    """Each column's header in each of `languages`, case-folded and stripped, to its key: how
    the importer recognizes our files."""
    keys = {}
    for language in languages:
        for header, key in zip(headers(language), KEYS, strict=True):
            keys[header.strip().casefold()] = key
    return keys


def yes_no(language: str) -> tuple[str, str]:
    """How `language` writes true and false."""
    with translation.override(language):
        return gettext("Yes"), gettext("No")


# A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
INERT_PREFIX = "'"


def make_inert(text: str) -> str:
    """`text`, with a quote before it when a spreadsheet would run it as a formula."""
    if text.startswith(FORMULA_TRIGGERS):
        return INERT_PREFIX + text
    return text


def from_inert(text: str) -> str:
    """The value make_inert() was given."""
    if text.startswith(INERT_PREFIX) and text[1:].startswith(FORMULA_TRIGGERS):
        return text[1:]
    return text


def csv_cells(language: str, zone) -> Callable[[tuple], list[str]]:
    """A function turning one `values_list(*FIELDS)` row into the CSV cells of `language`,
    dates in `zone`. Everything that is the same on every row is looked up once here: this
    runs a million times for a big export."""
    style = csv_style(language)
    yes, no = yes_no(language)
    date_format = style.datetime_format
    separator = style.decimal_separator

    def text(value):
        return "" if value is None else make_inert(value)

    def integer(value):
        return "" if value is None else str(value)

    def moment(value):
        return "" if value is None else value.astimezone(zone).strftime(date_format)

    def money(value: Decimal | None):
        if value is None:
            return ""
        written = format(value, "f")
        return written.replace(".", separator) if separator != "." else written

    def boolean(value):
        return "" if value is None else (yes if value else no)

    def country(value):
        return "" if value is None else make_inert(value.upper())

    writers = {
        Kind.TEXT: text,
        Kind.INTEGER: integer,
        Kind.DATETIME: moment,
        Kind.MONEY: money,
        Kind.BOOLEAN: boolean,
        Kind.COUNTRY: country,
    }
    cells = [writers[column.kind] for column in COLUMNS]

    def row_cells(row: tuple) -> list[str]:
        return [write(value) for write, value in zip(cells, row, strict=True)]

    return row_cells
