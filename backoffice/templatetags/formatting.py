"""Formatting filters available in every template (registered as builtins in settings)."""

import functools
import re
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from django import template
from django.conf import settings
from django.utils.formats import get_format, number_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import get_language

from backoffice.countries import country_name as _country_name
from backoffice.phones import phone_international

register = template.Library()


_EMAIL_BREAK = re.compile(r"(?<=@)|(?=[.\-_+])")


@register.filter
def email_link(value) -> str:
    """A mailto link whose text has line-break opportunities (<wbr>) after the @ and before
    dots, hyphens, underscores and plus signs: a long address wraps there, not anywhere."""
    email = str(value or "")
    parts = _EMAIL_BREAK.split(email)
    # A <wbr> before every part but the first, all of it built by format_html.
    text = format_html("{}", parts[0]) + format_html_join(
        "", "<wbr>{}", ((part,) for part in parts[1:])
    )
    return format_html('<a href="mailto:{}">{}</a>', email, text)


@register.filter
def phone(value) -> str:
    """A stored phone number in the international format ("+33 6 12 34 56 78")."""
    return phone_international(str(value or ""))


@register.filter
def country_name(code) -> str:
    """ "DE" -> "Germany" in English, "Allemagne" in French; an unknown code as it is."""
    return _country_name(str(code or ""))


_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF", "CAD": "CA$", "JPY": "¥"}


@register.filter
def money(value, currency: str | None = None) -> str:
    """`value` in the shop currency, as the language writes it: €1,234.56 / 1 234,56 €."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return ""
    code = currency or settings.SHOP_CURRENCY
    symbol = _SYMBOLS.get(code, code)
    sign = "-" if amount < 0 else ""
    language = get_language()
    number = _amount(abs(amount), language)
    if (language or "en").startswith("fr"):
        return f"{sign}{number}\u00a0{symbol}"
    return f"{sign}{symbol}{number}"


def _amount(amount: Decimal, language: str | None) -> str:
    """number_format(amount, decimal_pos=2, force_grouping=True) in `language`, for the
    usual case (groups of three) without its per-call format lookups: a list page writes an
    amount on every row. Decimals past the second are cut, as number_format cuts them."""
    decimal_sep, grouping, thousand_sep = _number_style(language)
    if grouping != 3 or not amount.is_finite() or abs(amount.adjusted()) > 20:
        return number_format(amount, decimal_pos=2, use_l10n=True, force_grouping=True)
    text = f"{amount.quantize(_CENT, rounding=ROUND_DOWN):,.2f}"
    return text.replace(",", "\0").replace(".", decimal_sep).replace("\0", thousand_sep)


_CENT = Decimal("0.01")


@functools.lru_cache(maxsize=16)
def _number_style(language: str | None) -> tuple[str, object, str]:
    return (
        get_format("DECIMAL_SEPARATOR", language, use_l10n=True),
        get_format("NUMBER_GROUPING", language, use_l10n=True),
        get_format("THOUSAND_SEPARATOR", language, use_l10n=True),
    )
