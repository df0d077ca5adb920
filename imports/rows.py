"""One row of an imported file: its cells read into normalized values, or the reasons it is
refused. No query: what the row does to the database is decided in batches (services).

The values are checked by the storefront API's own validators (email, phone, text), so a
customer imported from a file and one sent by the shop's API are held to the same rules.
"""

import dataclasses
import re
import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache, partial

import phonenumbers
from babel import Locale
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from backoffice.phones import phone_parse
from clients.search import number_variants
from exports.columns import from_inert
from orders.models import OrderStatus
from storefront.schemas import _PHONE, _email, _text

# Why a row is refused: a code stored with the row, worded in the reader's language.
REASONS = {
    "broken": _("The line cannot be read: %(value)s"),  # rows checked before the codes below
    "cell_too_long": _(
        "The line cannot be read: a cell is longer than %(value)s characters (a quote opened "
        "here may never be closed); the rest of the file was not read"
    ),
    "not_csv": _("The line cannot be read as CSV: %(value)s"),
    "unknown_encoding": _("The line cannot be read: its text is not in a known encoding"),
    "nul": _("The line cannot be read: it contains NUL characters"),
    "unclosed_quote": _(
        "A quote opened on this line is never closed: this line and the ones after it were "
        "read as one cell"
    ),
    "cells": _("The line has %(value)s cells where the header has fewer"),
    "no_email": _(
        "No email: customers are matched and kept by their email, one without cannot be imported"
    ),
    "invalid_email": _("Invalid email: %(value)s"),
    "duplicate": _("Duplicate in the file: the same customer is on line %(value)s"),
    "duplicate_order": _("Duplicate in the file: the same order is on line %(value)s"),
    "order_line": _(
        "A further item of order %(value)s, on a line of its own: the order and its total are "
        "on its first line, nothing more to import"
    ),
    "unknown_country": _("Unknown country: %(value)s"),
    "invalid_phone": _("Malformed phone number: %(value)s"),
    "invalid_text": _("Invalid characters in %(value)s"),
    "too_long": _("Too long: %(value)s"),
    "formula": _("A spreadsheet formula, not a value: %(value)s"),
    "rounded_number": _(
        "A spreadsheet rounded this number to %(value)s: its digits are lost. Export the file "
        "from the shop again and import it without opening and saving it in a spreadsheet"
    ),
    "invalid_date": _("Unreadable date: %(value)s"),
    "future_date": _("Date in the future: %(value)s"),
    "invalid_yes_no": _("Neither yes nor no: %(value)s"),
    # Notes on a row that is imported: the address is left out, the customer is not.
    "incomplete_address": _(
        "Address not imported, incomplete (a street, a city and a country are needed): %(value)s"
    ),
    "incomplete_shipping_address": _(
        "Shipping address not imported, incomplete (a street, a city and a country are "
        "needed): %(value)s"
    ),
    "invalid_language": _("Invalid language: %(value)s"),
    "email_taken": _("Another customer already has this email: %(value)s"),
    "external_id_taken": _("This email belongs to a customer with another shop ID: %(value)s"),
    "no_number": _("No order number"),
    "invalid_amount": _("Invalid amount: %(value)s"),
    "invalid_status": _("Unknown order status: %(value)s"),
    "unknown_customer": _(
        "No customer with this email or ID: import the customers first (%(value)s)"
    ),
    "customer_mismatch": _(
        "The customer ID and the email are two different customers' (%(value)s): the order "
        "is not imported rather than credited to the wrong one"
    ),
    "no_customer": _("No customer email or ID"),
    "order_refused": _("Refused: %(value)s"),
}

LIMITS = {
    "first_name": 150,
    "last_name": 150,
    "external_id": 100,
    "company": 200,
    "line1": 200,
    "line2": 200,
    "postal_code": 20,
    "city": 100,
    "region": 100,
    "language": 35,
    "customer_external_id": 100,
    "number": 32,
    "source": 100,
    "medium": 100,
    "campaign": 200,
}
ADDRESS_PARTS = ("company", "line1", "line2", "postal_code", "city", "region", "country")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_YES = {"yes", "y", "true", "1", "oui", "o", "vrai", "subscribed", "opted in", "x"}
_NO = {"no", "n", "false", "0", "non", "faux", "not subscribed", "unsubscribed", "not_subscribed"}
_NO |= {"pending", "invalid", "redacted", "opted out", ""}
# Wix's "Never subscribed", Klaviyo's NEVER_SUBSCRIBED: no consent given.
_NO |= {"never subscribed", "never_subscribed"}
# A year of two digits is what a spreadsheet shows (and saves to CSV) in its short date format
# ("09/01/24 12:49"): read as Excel reads one typed, 00-29 in the 2000s, 30-99 in the 1900s.
# US files (HubSpot, Stripe, Excel in English (US)) write a 12-hour time: "3/15/2024 2:30 PM".
_DAY_FIRST = re.compile(
    r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4}|\d{2})"
    r"(?:[ T,]+(\d{1,2})[:h](\d{2})(?::(\d{2}))?(?:\s*([AaPp])\.?[Mm]\.?)?)?$"
)
_SHOPIFY_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}(?::\d{2})?) ?([+-]\d{2}:?\d{2})$")
_STATUSES = {
    **{s: s for s in OrderStatus.values},
    # Shopify (financial status)
    "authorized": "pending",
    "partially_paid": "pending",
    "partially paid": "pending",
    "partially_refunded": "paid",
    "partially refunded": "paid",
    "voided": "cancelled",
    "expired": "cancelled",  # an authorization that lapsed, never paid
    # WooCommerce
    "completed": "fulfilled",
    "processing": "paid",
    "on-hold": "pending",
    "on hold": "pending",
    "failed": "cancelled",
    "canceled": "cancelled",
    # French
    "en attente": "pending",
    "payee": "paid",
    "expediee": "fulfilled",
    "livree": "fulfilled",
    "terminee": "fulfilled",
    "annulee": "cancelled",
    "remboursee": "refunded",
}


class Refused(Exception):
    def __init__(self, code: str, value=""):
        super().__init__(code)
        self.code, self.value = code, str(value)[:200]


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).casefold().strip()


@cache
def _countries() -> dict[str, str]:
    """Country codes, and names in English and French, folded, to the ISO code."""
    found = {}
    for language in ("en", "fr"):
        for code, name in Locale.parse(language).territories.items():
            if len(code) == 2 and code.isalpha() and code not in ("ZZ", "EU", "UN", "EZ", "QO"):
                found[_fold(name)] = code
                found[code.casefold()] = code
    found.update({"uk": "GB", "usa": "US", "great britain": "GB", "england": "GB"})
    return found


def country(value: str) -> str:
    code = _countries().get(_fold(value))
    if code is None:
        raise Refused("unknown_country", value)
    return code


def text(field: str, value: str) -> str:
    value = value.strip().replace("\r\n", "\n")
    if value[:1] in ("=", "@"):
        raise Refused("formula", value)
    try:
        _text(value)
    except ValueError:
        raise Refused("invalid_text", field) from None
    if len(value) > LIMITS.get(field, 200):
        raise Refused("too_long", value[:40] + "…")
    return value


def email(value: str) -> str:
    value = value.strip()
    if not value:
        raise Refused("no_email")
    try:
        _email(value)
    except ValueError:
        raise Refused("invalid_email", value) from None
    if len(value) > 254:
        raise Refused("invalid_email", value[:40] + "…")
    return value


def phone_number(value: str, region: str = "") -> phonenumbers.PhoneNumber:
    """A valid phone number, as the API reads one. Without a country code it is read as the
    row's address country's (a US file's "555-625-1199"), else as the shop's."""
    value = value.strip()
    code = str(phonenumbers.country_code_for_region(region)) if region else "0"
    if code != "0" and value.isdigit() and value.startswith(code):
        # The international number without its "+", as a spreadsheet that read it as a
        # number saves it (4915112345678), rather than a national number without its 0.
        try:
            number = phonenumbers.parse("+" + value)
        except phonenumbers.NumberParseException:
            number = None
        if number is not None and phonenumbers.is_valid_number_for_region(number, region):
            return number
    if region and not value.startswith(("+", "00")):
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            number = None
        if number is not None and phonenumbers.is_valid_number(number):
            return number
    number = phone_parse(value) if _PHONE.match(value) else None  # storefront.schemas._phone
    if number is None:
        raise Refused("invalid_phone", value)
    return number


def phone(value: str, region: str = "") -> str:
    """A phone number in the back office's international format (see phone_number)."""
    return phonenumbers.format_number(
        phone_number(value, region), phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )


def yes_no(value: str) -> bool | None:
    folded = _fold(value)
    if not folded:
        return None
    if folded in _YES:
        return True
    if folded in _NO:
        return False
    raise Refused("invalid_yes_no", value)


def moment(value, *, date_order: str = "dmy", utc: bool = False) -> datetime:
    """A date or date and time as spreadsheets and platforms write it; naive ones are in the
    shop's time zone, or in UTC for a column that says so (`utc`)."""
    if isinstance(value, datetime):
        found = value
    elif isinstance(value, date):
        found = datetime(value.year, value.month, value.day)
    else:
        raw = value.strip()
        found = None
        shopify = _SHOPIFY_DATE.match(raw)
        if shopify:
            raw = f"{shopify[1]}T{shopify[2]}{shopify[3]}"
        day_first = _DAY_FIRST.match(raw)
        try:
            if day_first:
                a, b, year, hour, minute, second, meridiem = day_first.groups()
                day, month = (a, b) if date_order == "dmy" else (b, a)
                if len(year) == 2:
                    year = int(year) + (2000 if int(year) < 30 else 1900)
                hour = int(hour or 0)
                if meridiem:
                    if not 1 <= hour <= 12:
                        raise ValueError(value)  # "14:30 PM", "0:15 AM"
                    hour = hour % 12 + (12 if meridiem in "Pp" else 0)
                found = datetime(
                    int(year), int(month), int(day), hour, int(minute or 0), int(second or 0)
                )
            else:
                found = parse_datetime(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
                if found is None and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
                    found = datetime.fromisoformat(raw)
        except ValueError:
            found = None
        if found is None:
            raise Refused("invalid_date", value)
    if timezone.is_naive(found):
        try:
            found = timezone.make_aware(found, UTC if utc else None)
        except Exception:  # a time skipped by a clock change
            raise Refused("invalid_date", value) from None
    if found > timezone.now() + timezone.timedelta(days=1):
        raise Refused("future_date", value)
    return found


# The fields that hold a date, whose cells tell how the file writes its dates.
DATE_FIELDS = frozenset(
    {
        "created_at",
        "created_at_utc",
        "email_consent_at",
        "sms_consent_at",
        "email_subscribed_at",
        "email_unsubscribed_at",
        "placed_at",
    }
)


def date_orders(cells) -> tuple[bool, set[str]]:
    """Whether these cells hold dates written with slashes, dots or dashes (31/12/2025 or
    12/31/2025), and the orders ("dmy", "mdy") all of them can be read in."""
    seen, orders = False, {"dmy", "mdy"}
    for cell in cells:
        found = _DAY_FIRST.match(cell.strip()) if isinstance(cell, str) else None
        if found:
            seen = True
            if int(found[1]) > 12:
                orders.discard("mdy")
            if int(found[2]) > 12:
                orders.discard("dmy")
    return seen, orders


def amount(value: str, *, comma_decimal: bool) -> Decimal:
    raw = re.sub(r"[\s\u00a0\u202f€$£]|EUR|USD|GBP", "", value.strip())
    if "," in raw and "." in raw:
        decimal_mark = "," if raw.rfind(",") > raw.rfind(".") else "."
    elif "," in raw:
        decimal_mark = "," if comma_decimal or not re.fullmatch(r"-?\d{1,3}(,\d{3})+", raw) else ""
    elif comma_decimal and re.fullmatch(r"-?\d{1,3}(\.\d{3})+", raw):
        decimal_mark = ","  # "1.500": a thousands dot where the decimal mark is a comma
    else:
        decimal_mark = "."
    thousands = {",": ".", ".": ",", "": ","}[decimal_mark]
    raw = raw.replace(thousands, "")
    if decimal_mark == ",":
        raw = raw.replace(",", ".")
    try:
        found = Decimal(raw)
    except InvalidOperation:
        raise Refused("invalid_amount", value) from None
    if not found.is_finite() or found < 0 or found != found.quantize(Decimal("0.01")):
        raise Refused("invalid_amount", value)
    return found.quantize(Decimal("0.01"))


def status(value: str) -> str:
    found = _STATUSES.get(_fold(value).removeprefix("wc-"))
    if found is None:
        raise Refused("invalid_status", value)
    return found


# Shopify writes these after a quote, so that a spreadsheet keeps them as text ('0612..., a zip
# like '02134 or 'SW1A 1AA); none of them ever starts with one. Elsewhere a leading quote may be
# the value's own ('t Hooft), and our export's quote before a formula is taken off by from_inert.
QUOTED_BY_SHOPIFY = frozenset({"external_id", "phone", "address_phone", "postal_code"})

# Excel shows a long number (an id, a phone number without its "+") in scientific notation,
# keeping 6 significant digits, and a CSV saved from it holds what was shown: "7.01235E+12".
# The digits are lost: such a cell is refused, never stored nor used to match customers.
_ROUNDED = re.compile(r"^\d+(?:[.,]\d+)?E\+\d+$", re.IGNORECASE)
DIGITS = frozenset({*QUOTED_BY_SHOPIFY, "customer_external_id", "number"})
# WooCommerce writes a guest (an order or customer without an account) with customer id 0,
# PrestaShop too: 0 is no shop id. Kept as one, every guest matched the first one stored.
SHOP_IDS = frozenset({"external_id", "customer_external_id"})


def _cells(mapping: list[str], cells: list) -> dict:
    """The row's cells by field (a quote Shopify or our export put before a value removed)."""
    found = {}
    for field, cell in zip(mapping, cells, strict=False):
        if not field:
            continue
        if isinstance(cell, str):
            cell = from_inert(cell.strip())
            if field in QUOTED_BY_SHOPIFY and cell.startswith("'"):
                cell = cell[1:]
            if field in DIGITS and _ROUNDED.match(cell):
                raise Refused("rounded_number", cell)
        if field in SHOP_IDS and cell in ("0", 0):
            cell = ""
        found[field] = cell
    return found


def _check_width(cells: list, headers: int) -> None:
    if len(cells) < headers and any(isinstance(c, str) and "\n" in c for c in cells):
        raise Refused("unclosed_quote")
    extra = cells[headers:]
    if any(str(cell).strip() for cell in extra):
        raise Refused("cells", len(cells))


@dataclasses.dataclass
class CustomerRow:
    """A customer row as read: its values, and what the checks could not settle alone.

    A cell the checks refuse (or normalize) may still be exactly what the customer it names
    already has: older data kept as it was (phones the 0019 normalization could not read, a
    name a spreadsheet would take for a formula). Whether it is can only be told against the
    database, so such a field is not refused here: `refusals` keeps its reason, `as_read` the
    cell, and the services settle it (equal to the stored value: unchanged, never refused).
    """

    values: dict
    as_read: dict = dataclasses.field(default_factory=dict)
    refusals: dict = dataclasses.field(default_factory=dict)
    # What the row is imported without (an incomplete address): {field: (code, value)},
    # shown with the row unless the stored customer has it already (settled like refusals).
    notes: dict = dataclasses.field(default_factory=dict)


def customer_row(mapping: list[str], cells: list, *, date_order: str = "dmy") -> CustomerRow:
    """A customer row's values (only those the file gives), or raises Refused for what no
    stored value can excuse (a broken line, no email, an unreadable date or consent)."""
    _check_width(cells, len(mapping))
    raw = _cells(mapping, cells)
    row = CustomerRow({})
    values = row.values

    def check(name: str, cell, checked):
        """`checked(cell)`, or None with the refusal kept to be settled against the stored
        customer; the cell is kept too when it differs from what is imported."""
        try:
            found = checked(cell)
        except Refused as refused:
            row.refusals[name] = (refused.code, refused.value)
            row.as_read[name] = cell
            return None
        if found != cell:
            row.as_read[name] = cell
        values[name] = found
        return found

    address = str(raw.get("email", "")).strip()
    if not address:
        raise Refused("no_email")
    if check("email", address, email) is None:
        values["email"] = address  # the key the customer is looked up by
    for name in ("external_id", "first_name", "last_name", "language"):
        cell = str(raw.get(name, "")).strip()
        if cell:
            check(name, cell, partial(_language if name == "language" else text, name))
    full = " ".join(str(raw.get("full_name", "")).split())
    if full and not {"first_name", "last_name"} & (values.keys() | row.refusals.keys()):
        for name, part in zip(("first_name", "last_name"), split_name(full), strict=True):
            if part:
                check(name, part, partial(text, name))
    for name in ("created_at", "created_at_utc"):
        if raw.get(name) not in (None, "") and "created_at" not in values:
            at = moment(raw[name], date_order=date_order, utc=name == "created_at_utc")
            values["created_at"] = at.isoformat()
    regions = []
    for prefix in ("", "shipping_"):
        parts = _address_parts(raw, prefix)
        if not parts:
            continue
        name = f"{prefix or 'billing_'}address"
        if not all(parts.get(p) for p in ("line1", "city", "country")):
            # A customer who gave only a country, or a street and no city: the customer is
            # imported, the address (which needs all three) is not, and the row says so.
            written = ", ".join(v for v in parts.values() if v)[:200]
            row.notes[name] = (f"incomplete_{prefix}address", written)
            row.as_read[name] = parts
            regions.append(_region(parts.get("country", "")))
            continue
        checked = check(name, parts, _address)
        regions.append(checked["country"] if checked else "")
    number = str(raw.get("phone", "")).strip() or str(raw.get("address_phone", "")).strip()
    if number:
        # The address's country reads a national number, even when the address is not kept.
        region = next((r for r in regions if r), "")
        try:
            parsed = phone_number(number, region)
        except Refused as refused:
            row.refusals["phone"] = (refused.code, refused.value)
            row.as_read["phone"] = number
        else:
            values["phone"] = phonenumbers.format_number(
                parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL
            )
            if values["phone"] != number:
                row.as_read["phone"] = number
            # The search text's forms of the number, so applying need not parse it again.
            values["phone_variants"] = number_variants(values["phone"], parsed)
    for channel in ("email", "sms"):
        consent = raw.get(f"{channel}_consent")
        if consent not in (None, ""):
            granted = yes_no(str(consent))
            if granted is not None:
                values[f"{channel}_consent"] = granted
                at = raw.get(f"{channel}_consent_at")
                if at not in (None, ""):
                    values[f"{channel}_consent_at"] = moment(at, date_order=date_order).isoformat()
    if "email_consent" not in values:
        # A list of subscribers (or of people who unsubscribed) dates the consent; given both
        # dates, the later one is the customer's latest word.
        dated = [
            (moment(raw[name], date_order=date_order), granted)
            for name, granted in (("email_subscribed_at", True), ("email_unsubscribed_at", False))
            if raw.get(name) not in (None, "")
        ]
        if dated:
            at, granted = max(dated, key=lambda found: found[0])
            values["email_consent"], values["email_consent_at"] = granted, at.isoformat()
    return row


def split_name(full: str) -> tuple[str, str]:
    """A name in one cell as first and last name: "Ada Lovelace", "Jean de La Fontaine" (the
    first word, the rest), or the "Lovelace, Ada" of address books."""
    last, comma, first = full.partition(",")
    if comma and first.strip() and last.strip() and "," not in first:
        return first.strip(), last.strip()
    first, _space, last = full.partition(" ")
    return first, last.strip()


def _language(_name: str, value: str) -> str:
    value = text("language", value)
    if not _LANGUAGE.match(value):
        raise Refused("invalid_language", value)
    return value


def _address_parts(raw: dict, prefix: str) -> dict:
    """The address parts the file has columns for (those it has not are not compared, nor
    written as empty), or {} when the file has no street column or the row no part at all."""
    if prefix + "line1" not in raw:
        return {}  # a file of towns and countries only (WooCommerce Analytics): no address
    parts = {p: str(raw[prefix + p]).strip() for p in ADDRESS_PARTS if prefix + p in raw}
    return parts if any(parts.values()) else {}


def _region(value: str) -> str:
    """The country code of a cell, or "" when it names none."""
    try:
        return country(value) if value else ""
    except Refused:
        return ""


# Countries whose postal codes are all five digits: a spreadsheet that read one as a number
# (02134 -> 2134) dropped zeros that can only have been leading ones.
FIVE_DIGIT_POSTAL_CODES = frozenset({"US", "FR", "DE", "IT", "ES"})


def _address(parts: dict) -> dict:
    address = {p: text(p, v) for p, v in parts.items() if p != "country"}
    address["country"] = country(parts["country"])
    code = address.get("postal_code", "")
    if (
        address["country"] in FIVE_DIGIT_POSTAL_CODES
        and code.isascii()
        and code.isdigit()
        and 3 <= len(code) < 5
    ):
        address["postal_code"] = code.zfill(5)
    return address


def order_row(
    mapping: list[str],
    cells: list,
    *,
    date_order: str = "dmy",
    comma_decimal: bool = False,
    previous: tuple[str, str] = ("", ""),
) -> dict:
    """An order row's values, or raises Refused (the order rules themselves are checked by
    orders.services.order_draft and order_import_check). `previous`: the order number and
    total cell of the row before; an export with a row per item repeats the order's number on
    its further items' rows, with no total (Shopify's) or the same one (WooCommerce's)."""
    _check_width(cells, len(mapping))
    raw = {
        k: (v if isinstance(v, datetime | date) else str(v).strip())
        for k, v in _cells(mapping, cells).items()
    }
    number = text("number", raw.get("number", ""))
    if not number:
        raise Refused("no_number")
    if number == previous[0] and raw.get("total", "") in ("", previous[1]):
        raise Refused("order_line", number)
    values = {"number": number}
    if raw.get("email"):
        values["email"] = email(raw["email"])
    if raw.get("customer_external_id"):
        values["customer_external_id"] = text("customer_external_id", raw["customer_external_id"])
    if "email" not in values and "customer_external_id" not in values:
        raise Refused("no_customer")
    values["placed_at"] = moment(raw.get("placed_at", ""), date_order=date_order).isoformat()
    values["total"] = str(amount(raw.get("total", ""), comma_decimal=comma_decimal))
    values["status"] = status(raw.get("status") or "paid")
    if raw.get("refunded_amount"):
        values["refunded_amount"] = str(amount(raw["refunded_amount"], comma_decimal=comma_decimal))
    for field in ("currency", "source", "medium", "campaign"):
        if raw.get(field):
            values[field] = text(field, raw[field])
    return values
