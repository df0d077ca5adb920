"""Formatting filters available in every template (registered as builtins in settings)."""

from decimal import Decimal, InvalidOperation

from django import template
from django.conf import settings
from django.utils.formats import number_format
from django.utils.translation import get_language

register = template.Library()

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
    number = number_format(abs(amount), decimal_pos=2, use_l10n=True, force_grouping=True)
    if (get_language() or "en").startswith("fr"):
        return f"{sign}{number}\u00a0{symbol}"
    return f"{sign}{symbol}{number}"
