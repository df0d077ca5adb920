"""The text the search box matches: lower case, accents removed, phone digits kept."""

import re
import unicodedata

_NOT_DIGIT = re.compile(r"\D+")


def normalize(text: str) -> str:
    """Lower-case `text` and strip its accents, so "Éloïse" and "eloise" match."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def customer_search_text(*, pk, first_name: str, last_name: str, email: str, phone: str) -> str:
    """What a customer's row stores in `search_text`."""
    digits = _NOT_DIGIT.sub("", phone)
    parts = [str(pk or ""), first_name, last_name, email, phone, digits]
    return normalize(" ".join(p for p in parts if p))


_PHONE_LIKE = re.compile(r"^\+?[\d\s().\-/]{4,}$")


def phone_digits(query: str) -> str:
    """The digits of a query that looks like a phone number ("06 12 34"), else ""."""
    if _PHONE_LIKE.match(query.strip()):
        return _NOT_DIGIT.sub("", query)
    return ""
