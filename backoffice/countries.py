"""Countries by ISO 3166 alpha-2 code, named in the user's language (Unicode CLDR, via Babel)."""

import functools

from babel import Locale, UnknownLocaleError
from django.utils.translation import get_language

# CLDR territories with two-letter codes that are not countries.
_NOT_COUNTRIES = {"EU", "EZ", "QO", "UN", "XA", "XB", "ZZ"}


@functools.cache
def _names(language: str) -> dict[str, str]:
    try:
        locale = Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        locale = Locale("en")
    return {
        code: name
        for code, name in locale.territories.items()
        if len(code) == 2 and code.isalpha() and code not in _NOT_COUNTRIES
    }


COUNTRY_CODES = frozenset(_names("en"))


def is_country(code: str) -> bool:
    return code.upper() in COUNTRY_CODES


def country_name(code: str, language: str | None = None) -> str:
    """The country's name in `language` (default: the active one); the code if unknown."""
    return _names(language or get_language() or "en").get(code.upper(), code)
