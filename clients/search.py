"""The text the search box matches: lower case, accents removed, phone digits kept."""

import re
import unicodedata

import phonenumbers
from django.conf import settings

_NOT_DIGIT = re.compile(r"\D+")


def normalize(text: str) -> str:
    """Lower-case `text` and strip its accents, so "Éloïse" and "eloise" match."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def phone_variants(phone: str) -> list[str]:
    """The digit strings a person may type for `phone`: as stored, international, national.

    "+33 6 12 34 56 78" is found by "0612345678" as well as "33612345678".
    """
    digits = _NOT_DIGIT.sub("", phone)
    if not digits:
        return []
    variants = {digits}
    try:
        number = phonenumbers.parse(phone, settings.SHOP_COUNTRY)
    except phonenumbers.NumberParseException:
        return [digits]
    for fmt in (phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.NATIONAL):
        variants.add(_NOT_DIGIT.sub("", phonenumbers.format_number(number, fmt)))
    return sorted(variants)


def customer_search_text(*, pk, first_name: str, last_name: str, email: str, phone: str) -> str:
    """What a customer's row stores in `search_text`."""
    parts = [str(pk or ""), first_name, last_name, email, phone, *phone_variants(phone)]
    return normalize(" ".join(p for p in parts if p))


_PHONE_LIKE = re.compile(r"^\+?[\d\s().\-/]{4,}$")


def phone_digits(query: str) -> str:
    """The digits of a query that looks like a phone number ("06 12 34"), else ""."""
    if _PHONE_LIKE.match(query.strip()):
        return _NOT_DIGIT.sub("", query)
    return ""
