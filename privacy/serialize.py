"""Rows of a queryset as plain JSON values, for the data archive (privacy/archive.py)."""

from datetime import date, datetime
from decimal import Decimal


def plain(value):
    """A value as data.json writes it: ISO 8601 dates, decimals as strings."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def rows(queryset, *fields: str, **renamed: str) -> list[dict]:
    """The queryset's `fields` (and `renamed`: {name in the archive: lookup}) as dicts."""
    lookups = list(fields) + list(renamed.values())
    names = list(fields) + list(renamed)
    return [
        {name: plain(value) for name, value in zip(names, values, strict=True)}
        for values in queryset.values_list(*lookups).iterator(chunk_size=2000)
    ]
