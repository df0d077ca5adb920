"""The text the search box matches: lower case, accents removed, phone digits kept."""

import re
import unicodedata
from dataclasses import dataclass

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
    try:
        number = phonenumbers.parse(phone, settings.SHOP_COUNTRY)
    except phonenumbers.NumberParseException:
        return [digits]
    return number_variants(phone, number)


def number_variants(phone: str, number: phonenumbers.PhoneNumber) -> list[str]:
    """phone_variants() of `phone` when it was already parsed as `number` (the import parses
    each number once)."""
    variants = {_NOT_DIGIT.sub("", phone)}
    for fmt in (phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.NATIONAL):
        variants.add(_NOT_DIGIT.sub("", phonenumbers.format_number(number, fmt)))
    return sorted(variants)


def customer_search_text(
    *, pk, first_name: str, last_name: str, email: str, phone: str, variants=None
) -> str:
    """What a customer's row stores in `search_text` (`variants`: phone_variants(phone), when
    the caller has them)."""
    variants = phone_variants(phone) if variants is None else variants
    parts = [str(pk or ""), first_name, last_name, email, phone, *variants]
    return normalize(" ".join(p for p in parts if p))


_PHONE_LIKE = re.compile(r"^\+?[\d\s().\-/]{4,}$")


def phone_digits(query: str) -> str:
    """The digits of a query that looks like a phone number ("06 12 34"), else ""."""
    if _PHONE_LIKE.match(query.strip()):
        return _NOT_DIGIT.sub("", query)
    return ""


# "#295", as the Client ID column writes it.
_CLIENT_ID = re.compile(r"^#\s*(\d{1,19})$")
_DIGITS = re.compile(r"^\d{1,19}$")
# The largest value of a BigAutoField primary key.
MAX_PK = 2**63 - 1


@dataclass(frozen=True)
class SearchQuery:
    """What the search box asks for.

    `words`: each must appear in a customer's search text, in any order ("garcia agathe"
    finds Agathe Garcia). `digits`: a phone-like query's digits, matched as one string too.
    `client_id`: "#295" asks for that client only. `exact_id`: a query of digits alone is
    also a client ID, listed first among the matches.
    """

    words: tuple[str, ...] = ()
    digits: str = ""
    client_id: int | None = None
    exact_id: int | None = None


def parse_query(text: str) -> SearchQuery:
    """The search box's text read as a SearchQuery ("" asks for nothing)."""
    text = (text or "").strip()
    if match := _CLIENT_ID.match(text):
        # An id past the primary key's range is no customer: 0 matches, not an error.
        return SearchQuery(client_id=min(int(match.group(1)), MAX_PK + 1))
    # "#295 garcia": the # is the Client ID column's way of writing 295.
    words = tuple(dict.fromkeys(w.lstrip("#") or w for w in normalize(text).split()))
    exact_id = None
    if _DIGITS.match(text) and not text.startswith("0") and int(text) <= MAX_PK:
        exact_id = int(text)
    return SearchQuery(words=words, digits=phone_digits(text), exact_id=exact_id)
