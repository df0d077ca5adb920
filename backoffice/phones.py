"""Phone numbers in one international format ("+33 6 12 34 56 78"), whatever was typed."""

import functools

import phonenumbers
from django.conf import settings


def phone_parse(text: str) -> phonenumbers.PhoneNumber | None:
    """The number `text` means (read as the shop's country's without a country code), or
    None when it is not a valid phone number."""
    try:
        number = phonenumbers.parse(text, settings.SHOP_COUNTRY)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def phone_international(text: str) -> str:
    """`text` in the international format; as it is when it is no valid number (older rows)."""
    return _international(text, settings.SHOP_COUNTRY) if text else text


@functools.lru_cache(maxsize=4096)
def _international(text: str, country: str) -> str:
    number = phone_parse(text)
    if number is None:
        return text
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
