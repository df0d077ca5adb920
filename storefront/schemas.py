"""Shared pieces of the API's request and response schemas."""

import re
from datetime import UTC, datetime
from typing import Annotated

import phonenumbers
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from ninja import Schema
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    field_validator,
)
from pydantic_core import PydanticCustomError

from backoffice.phones import phone_parse

# What no text may hold: control characters but tab, newline and carriage return; the
# bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069: a name
# holding U+202E showed the rest of the back office's line reversed) and U+FEFF (a byte order
# mark, invisible: a name of it alone looked blank). The schema's patterns say the same.
_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e\u2066-\u2069\ufeff"
_CONTROL = re.compile(f"[{_CONTROLS}]")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().\-/]{3,30}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
# RFC 3339's date-time (the schema's format), its offset optional here so that a time without
# one gets _aware's message.
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_DIGITS = re.compile(r"[0-9]+")


class In(BaseModel):
    """A request body: unknown fields are refused (a typo must not be dropped silently).

    A plain Pydantic model, not ninja's Schema: a body is validated from JSON, never read
    from a Django object, so ninja's wrapping validator (which lets a Schema read model
    attributes) only cost CPU, about a fifth of the bulk import's.

    Strings are checked as sent, against what the schema says (length, pattern); free text
    (`Text`, `Email`, `Phone`) is stripped afterwards. Stripping first (Pydantic's
    `str_strip_whitespace`) accepted " W-1", " EUR" or a name one space over its maxLength,
    which the schema forbids, and refused a name of one space, which it allows.
    """

    model_config = ConfigDict(extra="forbid")


class Update(In):
    """A partial update: only the fields sent change, and null is no value (leave a field out
    to keep it). Declare each field `name: Type = None` (not `Type | None`), so that the
    schema does not call it nullable."""

    @staticmethod
    def _no_null_default(schema: dict) -> None:
        for field_schema in schema.get("properties", {}).values():
            if field_schema.get("default", "") is None:
                del field_schema["default"]

    model_config = ConfigDict(extra="forbid", json_schema_extra=_no_null_default)

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value):
        if value is None:
            raise PydanticCustomError(
                "null", "may not be null (leave the field out to keep its value)"
            )
        return value


class Out(Schema):
    pass


def _text(value: str) -> str:
    if _CONTROL.search(value) or "\x00" in value:
        raise ValueError("contains control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800" in JSON) is no character: it cannot be stored.
        raise ValueError("contains characters no text may contain") from None
    return value


def _email(value: str) -> str:
    _text(value)
    try:
        validate_email(value)
    except DjangoValidationError:
        raise ValueError("is not a valid email address") from None
    return value


def _phone(value: str) -> str:
    """A valid phone number, stored in the back office's one international format."""
    if not value:
        return value
    number = phone_parse(value) if _PHONE.match(value) else None
    if number is None:
        raise ValueError(
            "is not a valid phone number: add the country code, e.g. +33 6 12 34 56 78"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _language(value: str) -> str:
    if value and not _LANGUAGE.match(value):
        raise ValueError("must be a language tag such as fr or en-GB")
    return value


def _country(value: str) -> str:
    value = value.upper()
    if not _COUNTRY.match(value):
        raise ValueError("must be a two-letter ISO 3166-1 code such as FR")
    return value


def _date_time(value):
    """An RFC 3339 date-time as the schema says: not a number (Pydantic takes 0.5 or "0.5" as
    a Unix time), nor the other forms Pydantic reads ("…T10:00Z", "+0100", ",5" seconds)."""
    if isinstance(value, datetime) or (isinstance(value, str) and _DATE_TIME.fullmatch(value)):
        return value
    raise PydanticCustomError("date_time", "must be a date and time such as 2026-11-30T21:45:00Z")


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must include a time zone (e.g. 2026-11-30T21:45:00Z)")
    try:
        value.astimezone(UTC)
    except OverflowError:
        # Within 14 hours of the calendar's ends (0001-01-01T00:00+14:00): no UTC time, so no
        # database time (SQLite's adapter converts: it was a 500); the end itself is as good.
        return (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=UTC)
    return value


def _strip(value: str) -> str:
    return value.strip()


def _not_blank(value: str) -> str:
    if not value:
        raise PydanticCustomError("blank", "may not be blank")
    return value


# What _text refuses (_CONTROLS), said in the schema too (so that a client generated from it,
# or a fuzzer, knows).
TEXT_PATTERN = rf"^[^{_CONTROLS}]*$"
# What str.strip() removes and _text lets through, spelled out rather than \s (ECMA-262's \s,
# the schema's dialect, has U+FEFF and lacks U+0085): a required text has one character
# outside it, so that it is not blank once stripped.
_SPACES = r"\t\n\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK_PATTERN = rf"^[{_SPACES}]*[^{_CONTROLS}{_SPACES}][^{_CONTROLS}]*$"


def Text(max_length: int, min_length: int = 0):
    """Free text of at most `max_length` characters as sent, stored stripped; `min_length` 1:
    not blank (min_length 0 or 1 only: a longer minimum could not be said of the stripped
    value in a pattern)."""
    assert min_length in (0, 1), min_length
    if not min_length:
        return Annotated[
            str,
            Field(max_length=max_length, pattern=TEXT_PATTERN),
            AfterValidator(_text),
            AfterValidator(_strip),
        ]
    return Annotated[
        str,
        Field(
            min_length=1,
            max_length=max_length,
            pattern=TEXT_PATTERN,
            json_schema_extra={"pattern": NOT_BLANK_PATTERN},
        ),
        AfterValidator(_text),
        AfterValidator(_strip),
        AfterValidator(_not_blank),
    ]


Email = Annotated[
    str,
    Field(min_length=3, max_length=254, json_schema_extra={"format": "email"}),
    AfterValidator(_strip),
    AfterValidator(_email),
]
Phone = Annotated[
    str,
    # The pattern: _text refuses control characters in a phone too (a schema-valid "\x7f" was
    # refused, 422).
    Field(max_length=32, pattern=TEXT_PATTERN),
    AfterValidator(_text),
    AfterValidator(_strip),
    AfterValidator(_phone),
]
Language = Annotated[
    str,
    Field(max_length=35, pattern=r"^$|^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"),
    AfterValidator(_language),
]
Country = Annotated[
    str, Field(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$"), AfterValidator(_country)
]
AwareDatetime = Annotated[datetime, BeforeValidator(_date_time), AfterValidator(_aware)]


def _query_digits(value):
    """An integer in a query string is written in digits: Pydantic also read " 5", "+5", "5.0"
    and "5_0" (which the schema, integer, forbids)."""
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise PydanticCustomError("int_digits", "must be a whole number written in digits")
    return value


def _integral(value):
    """12.0 as 12: to JSON Schema it is the integer 12 (so a schema-valid id or quantity), and
    some JSON writers write it so. Within 2**53, where a float is exactly its integer."""
    if type(value) is float and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


# A database id: positive and within a 64-bit integer column. In a JSON body a number, as the
# schema says ("12" and 12.5 are refused; 12.0 is 12, as in JSON Schema); in a query string,
# where everything is text, `QueryId`: digits.
# The BeforeValidator after the constraints (it runs first either way): before them, Pydantic
# writes them into the JSON schema as "ge" and "le", which are no JSON Schema keywords.
Id = Annotated[int, Strict(), Field(ge=1, le=2**63 - 1), BeforeValidator(_integral)]
# A whole number in a JSON body: 3 or 3.0, not "3", 3.5 or true.
WholeNumber = Annotated[int, Strict(), BeforeValidator(_integral)]
QueryInt = Annotated[int, BeforeValidator(_query_digits)]
QueryId = Annotated[int, Field(ge=1, le=2**63 - 1), BeforeValidator(_query_digits)]
# A JSON boolean: true or false, not 0, 1 or "yes".
Flag = StrictBool


class Page(Out):
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )
