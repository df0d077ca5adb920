"""Look for personal values in every text column of every table, for the erasure tests.

Generic on purpose: the models are introspected, so a table another app adds is scanned too.
"""

import json

from django.apps import apps
from django.db import models

from clients.search import normalize, phone_variants

TEXT_FIELDS = (models.CharField, models.TextField, models.JSONField, models.BinaryField)


def text_columns():
    """(model, [field names]) of every concrete table with text-like columns."""
    for model in apps.get_models(include_auto_created=True):
        meta = model._meta
        if not meta.managed or meta.proxy:
            continue
        fields = [
            f.attname
            for f in meta.concrete_fields
            if isinstance(f, TEXT_FIELDS) and not f.is_relation
        ]
        if fields:
            yield model, fields


# A string of digits shorter than this turns up by chance in hashes stored as hex (an API key's
# digest holds "5521" about once in a thousand keys), so it is no evidence of a personal value.
MIN_DIGITS = 8


def needles(values) -> set[str]:
    """The values as they may be stored: as typed, normalized (search), phone variants."""
    found = set()
    for value in values:
        if not value or len(value.strip()) < 3:
            continue
        found |= {value.casefold(), normalize(value), json.dumps(value)[1:-1].casefold()}
        found |= {v for v in phone_variants(value) if len(v) >= MIN_DIGITS}
    return {n for n in found if len(n) >= 3}


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("utf-8", "replace").casefold()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False).casefold()
    return str(value).casefold()


def find(values) -> list[tuple[str, str, object, str]]:
    """Every (table, column, primary key, value) holding one of `values`."""
    wanted = needles(values)
    hits = []
    for model, fields in text_columns():
        for row in model._base_manager.values_list("pk", *fields).iterator():
            pk, *cells = row
            for name, cell in zip(fields, cells, strict=True):
                text = _as_text(cell)
                for needle in wanted:
                    if needle in text:
                        hits.append((model._meta.db_table, name, pk, needle))
    return hits
