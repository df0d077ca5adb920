import io
import re
import zipfile
from datetime import UTC, datetime
from decimal import Decimal
from xml.etree import ElementTree

import pytest

from clients.services import address_create
from tests.factories import CustomerFactory, make_order

HOSTILE = {
    "first_name": '=HYPERLINK("http://evil.example","x")',
    "last_name": "+SUM(1,2)",
    "phone": "-2+3",
    "external_id": "@cmd|' /C calc'!A0",
}


@pytest.fixture(autouse=True)
def export_storage(settings, tmp_path):
    """XLSX files in a folder of the test's own."""
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "exports"},
        },
    }
    return tmp_path / "exports"


@pytest.fixture
def shop(db):
    """A client with known values and addresses, a hostile client, two leads."""
    known = CustomerFactory(
        first_name="Zoé",
        last_name="Lefèvre",
        email="zoe@example.com",
        phone="06 12 34 56 78",
        external_id="shopify-42",
        push_opt_in=True,
        created_at=datetime(2024, 1, 15, 8, 30, tzinfo=UTC),
    )
    billing = address_create(
        customer=known,
        name="Zoé Lefèvre",
        line1="12 rue des Lilas; bât. B",
        line2='Escalier "C"',
        postal_code="75011",
        city="Paris",
        country="FR",
    )
    shipping = address_create(
        customer=known,
        name="Atelier",
        line1="3 Kurfürstendamm",
        postal_code="10719",
        city="Berlin",
        country="de",
    )
    known.default_billing_address = billing
    known.default_shipping_address = shipping
    known.save(update_fields=["default_billing_address", "default_shipping_address"])
    make_order(
        known, total="1234.50", placed_at=datetime(2025, 12, 31, 13, 5, tzinfo=UTC), number="K1"
    )
    hostile = CustomerFactory(
        email="hostile@example.com",
        created_at=datetime(2024, 2, 1, tzinfo=UTC),
        **HOSTILE,
    )
    address = address_create(
        customer=hostile,
        name="x",
        line1="\tTAB",
        line2="\rCR",
        postal_code="=1+1",
        city="Multi\nline, city",
        country="FR",
    )
    hostile.default_billing_address = address
    hostile.save(update_fields=["default_billing_address"])
    make_order(hostile, total="10.00", placed_at=datetime(2025, 6, 1, tzinfo=UTC), number="H1")
    leads = [
        CustomerFactory(email="lead1@example.com", created_at=datetime(2025, 3, 1, tzinfo=UTC)),
        CustomerFactory(email="lead2@example.com", created_at=datetime(2025, 3, 2, tzinfo=UTC)),
    ]
    return {"known": known, "hostile": hostile, "leads": leads, "billing": billing}


def money(value: str) -> Decimal:
    return Decimal(value)


_NS = {"x": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def xlsx_sheets(content: bytes) -> dict[str, list[list]]:
    """The cells of each sheet of an XLSX file, as {sheet file: rows}; each cell is
    (type, value, has_formula): read with the standard library, not the writer."""
    sheets = {}
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        for name in sorted(archive.namelist()):
            if not re.fullmatch(r"xl/worksheets/sheet\d+\.xml", name):
                continue
            root = ElementTree.fromstring(archive.read(name))
            rows = []
            for row in root.iter(f"{{{_NS['x']}}}row"):
                cells = []
                for cell in row.findall("x:c", _NS):
                    kind = cell.get("t", "n")
                    if kind == "inlineStr":
                        value = "".join(t.text or "" for t in cell.iter(f"{{{_NS['x']}}}t"))
                    else:
                        found = cell.find("x:v", _NS)
                        value = None if found is None else found.text
                    cells.append((cell.get("r"), kind, value, cell.find("x:f", _NS) is not None))
                rows.append(cells)
            sheets[name] = rows
    return sheets
