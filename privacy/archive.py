"""A customer's data archive: one ZIP with `data.json` and one CSV per section.

The schema (documented in privacy/README.md, "The data archive"):

    data.json = {
      "schema": "backoffice.customer-data/1",
      "generated_at": ISO 8601 time,
      "shop": the shop's name,
      "customer_id": int,
      "sections": {"<section>": [ {column: value, ...}, ... ], ...}
    }

Every registered app contributes its sections (privacy/registry.py); `<section>.csv` holds
the same rows, one column per key (nested values as JSON).
"""

import csv
import io
import json
import zipfile

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from clients.models import Customer
from privacy.registry import registrations

SCHEMA = "backoffice.customer-data/1"
README = """Personal data held by {shop} about customer #{customer_id}, on {at}.

data.json holds every section (schema "{schema}"): {{"sections": {{name: [rows]}}}}.
Each section is also a CSV file (UTF-8, comma-separated, header row), one row per record.
Times are ISO 8601 in UTC, amounts decimal strings in the order's currency.

Sections: {sections}
"""


def archive_sections(customer: Customer) -> dict[str, list[dict]]:
    """Every registered app's sections about the customer."""
    sections: dict[str, list[dict]] = {}
    for registration in registrations():
        if registration.export is not None:
            sections.update(registration.export(customer))
    return sections


def _csv(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    columns = list(rows[0]) if rows else []
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [
                json.dumps(row[c], ensure_ascii=False)
                if isinstance(row[c], dict | list)
                else ("" if row[c] is None else row[c])
                for c in columns
            ]
        )
    return buffer.getvalue().encode("utf-8")


def archive_zip(customer: Customer) -> bytes:
    """The ZIP file of the customer's data."""
    at = timezone.now()
    sections = archive_sections(customer)
    document = {
        "schema": SCHEMA,
        "generated_at": at.isoformat(),
        "shop": settings.SHOP_NAME,
        "customer_id": customer.pk,
        "sections": sections,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "README.txt",
            README.format(
                shop=settings.SHOP_NAME,
                customer_id=customer.pk,
                at=at.isoformat(),
                schema=SCHEMA,
                sections=", ".join(sections),
            ),
        )
        archive.writestr(
            "data.json", json.dumps(document, ensure_ascii=False, indent=1, cls=DjangoJSONEncoder)
        )
        for name, rows in sections.items():
            archive.writestr(f"{name}.csv", _csv(rows))
    return buffer.getvalue()
