"""The CSV export: content in both languages, CSV injection, streaming, same rows as the list."""

import csv
import io

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from exports import services, writers
from exports.columns import FIELDS, KEYS, headers
from exports.models import Export, ExportStatus
from exports.selectors import export_customers
from tests.exports.conftest import HOSTILE
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db
URL = "/exports/new/"


def export(client, language="en", **data):
    fields = {"tab": "clients", "scope": "all", "file_format": "csv", **data}
    return client.post(URL, fields, headers={"accept-language": language})


def content(response) -> bytes:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content)


def rows_of(data: bytes, delimiter: str) -> list[dict]:
    text = data.decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    return [dict(zip(KEYS, row, strict=True)) for row in table[1:]], table[0]


def test_english_csv_headers_values_and_separators(viewer_client, shop):
    response = export(viewer_client, "en")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="clients-')
    data = content(response)
    assert not data.startswith(b"\xef\xbb\xbf")
    rows, header = rows_of(data, ",")
    assert header == headers("en")
    assert header[:4] == ["Client ID", "First name", "Last name", "Email"]
    known = {row["email"]: row for row in rows}["zoe@example.com"]
    assert known == {
        "id": str(shop["known"].pk),
        "first_name": "Zoé",
        "last_name": "Lefèvre",
        "email": "zoe@example.com",
        "phone": "06 12 34 56 78",
        # 13:05 UTC is 14:05 in Paris, the shop's time zone.
        "last_order_at": "2025-12-31 14:05",
        "last_source": "google",
        "total_spent": "1234.50",
        "orders_count": "1",
        "first_order_at": "2025-12-31 14:05",
        "created_at": "2024-01-15 09:30",
        "push_opt_in": "Yes",
        "billing_line1": "12 rue des Lilas; bât. B",
        "billing_line2": 'Escalier "C"',
        "billing_postal_code": "75011",
        "billing_city": "Paris",
        "billing_country": "FR",
        "shipping_line1": "3 Kurfürstendamm",
        "shipping_line2": "",
        "shipping_postal_code": "10719",
        "shipping_city": "Berlin",
        "shipping_country": "DE",
        "external_id": "shopify-42",
    }
    # Only the Clients tab.
    assert {row["email"] for row in rows} == {"zoe@example.com", "hostile@example.com"}


def test_french_csv_has_a_bom_semicolons_french_dates_and_decimal_commas(viewer_client, shop):
    data = content(export(viewer_client, "fr"))
    assert data.startswith(b"\xef\xbb\xbf")
    first_line = data.decode("utf-8-sig").split("\n")[0]
    assert first_line.startswith('"N° client";"Prénom";"Nom";"E-mail";"Téléphone";"Dernière')
    assert "Adresse de facturation ligne 1" in first_line
    rows, header = rows_of(data, ";")
    assert header == headers("fr")
    known = {row["email"]: row for row in rows}["zoe@example.com"]
    assert known["last_order_at"] == "31/12/2025 14:05"
    assert known["created_at"] == "15/01/2024 09:30"
    assert known["total_spent"] == "1234,50"
    assert known["push_opt_in"] == "Oui"
    # A cell holding the delimiter is quoted, and reads back whole.
    assert known["billing_line1"] == "12 rue des Lilas; bât. B"
    assert '"12 rue des Lilas; bât. B"' in data.decode("utf-8-sig")
    assert "Non" in {row["push_opt_in"] for row in rows}
    response = export(viewer_client, "fr")
    assert response["Content-Disposition"].startswith('attachment; filename="clients-')
    leads = export(viewer_client, "fr", tab="leads")
    assert leads["Content-Disposition"].startswith('attachment; filename="prospects-')


@pytest.mark.parametrize("language,delimiter", [("en", ","), ("fr", ";")])
def test_cells_a_spreadsheet_would_run_are_made_inert(viewer_client, shop, language, delimiter):
    rows, _ = rows_of(content(export(viewer_client, language)), delimiter)
    hostile = {row["email"]: row for row in rows}["hostile@example.com"]
    for key, value in HOSTILE.items():
        assert hostile[key] == "'" + value
    assert hostile["billing_line1"] == "'\tTAB"
    assert hostile["billing_line2"] == "'\rCR"
    assert hostile["billing_postal_code"] == "'=1+1"
    # A line break inside a cell is quoted, not a new row.
    assert hostile["billing_city"] == "Multi\nline, city"
    # No cell of the file starts with a trigger.
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


def test_the_export_has_the_rows_of_the_list_in_its_order(viewer_client, db):
    for n in range(12):
        customer = CustomerFactory(last_name=f"Name{n:02d}", email=f"c{n}@example.com")
        make_order(customer, total=f"{10 + n * 7 % 40}.00", source="google" if n % 3 else "bing")
    CustomerFactory(email="lead@example.com")
    query = "source=google&spent_min=15"
    page = viewer_client.get(f"/clients/?{query}&sort=-total_spent&per_page=100")
    listed = [int(row["id"]) for row in page.context["listing"].rows]
    assert 0 < len(listed) < 12
    filter_query = page.context["listing"].filter_query
    response = export(viewer_client, scope="filtered", query=filter_query, sort="-total_spent")
    rows, _ = rows_of(content(response), ",")
    assert [int(row["id"]) for row in rows] == listed
    # The name sort (nameless rows last) too.
    page = viewer_client.get("/clients/?sort=name&per_page=100")
    listed = [int(row["id"]) for row in page.context["listing"].rows]
    rows, _ = rows_of(content(export(viewer_client, sort="name")), ",")
    assert [int(row["id"]) for row in rows] == listed


def test_selected_rows_are_the_session_selection_refiltered(admin_client_role, shop):
    known, hostile = shop["known"], shop["hostile"]
    admin_client_role.post(
        "/clients/selection/", {"tab": "clients", "action": "add", "ids": [known.pk]}
    )
    rows, _ = rows_of(content(export(admin_client_role, scope="selected")), ",")
    assert [int(row["id"]) for row in rows] == [known.pk]
    # Ids posted with the form are ignored: the selection is the session's.
    response = export(admin_client_role, scope="selected", ids=[hostile.pk])
    rows, _ = rows_of(content(response), ",")
    assert [int(row["id"]) for row in rows] == [known.pk]
    record = Export.objects.filter(scope="selected").first()
    assert record.ids == [known.pk]


def test_streaming_reads_in_one_query_and_sends_batches(viewer_client, db, monkeypatch):
    """Whatever the number of rows, the same queries; the body comes in many chunks."""
    monkeypatch.setattr(writers, "CSV_BATCH", 2)

    def run():
        with CaptureQueriesContext(connection) as queries:
            response = export(viewer_client)
            chunks = list(response.streaming_content)
        return len(queries), chunks

    CustomerFactory.create_batch(2)
    for customer in CustomerFactory.create_batch(3):
        make_order(customer)
    few_queries, few_chunks = run()
    for customer in CustomerFactory.create_batch(12):
        make_order(customer)
    many_queries, many_chunks = run()
    assert many_queries == few_queries
    if connection.vendor != "postgresql":
        # SQLite: the Python writer hands over CSV_BATCH rows at a time.
        assert len(many_chunks) > len(few_chunks) >= 3


@pytest.mark.parametrize("language", ["en", "fr"])
def test_postgresql_copy_writes_the_same_bytes_as_the_python_writer(shop, language):
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    from exports import pgcopy

    customers = export_customers(tab="clients", scope="all")
    zone = timezone.get_default_timezone()
    by_copy = b"".join(
        pgcopy.copy_chunks(pgcopy.copy_sql(customers, language=language, zone_name=str(zone)))
    )
    rows = customers.values_list(*FIELDS).iterator(chunk_size=2)
    by_python = b"".join(writers.csv_chunks(rows, language=language, zone=zone))
    assert by_copy == by_python
    assert b"'=HYPERLINK" in by_copy


def test_the_export_is_recorded_with_who_what_and_how_many(viewer_client, shop):
    response = export(viewer_client, scope="filtered", query="q=zoe", sort="created_at")
    record = Export.objects.get()
    assert record.status == ExportStatus.RUNNING
    content(response)
    record.refresh_from_db()
    assert record.requested_by.username == response.wsgi_request.user.username
    assert (record.tab, record.scope, record.query, record.sort) == (
        "clients",
        "filtered",
        "q=zoe",
        "created_at",
    )
    assert (record.file_format, record.language) == ("csv", "en")
    assert record.status == ExportStatus.DONE
    assert record.rows == 1
    assert record.finished_at >= record.requested_at


def test_a_download_stopped_by_the_browser_is_recorded_as_interrupted(db, monkeypatch):
    monkeypatch.setattr(writers, "CSV_BATCH", 2)
    for customer in CustomerFactory.create_batch(5):
        make_order(customer)
    record = services.export_create(
        user=None, tab="clients", scope="all", query="", sort="", ids=[],
        file_format="csv", language="en",
    )  # fmt: skip
    stream = services.export_stream_csv(record)
    next(stream)  # the headers
    # What the server does when the browser goes away: it closes the response's iterator.
    stream.close()
    record.refresh_from_db()
    assert record.status == ExportStatus.INTERRUPTED
    assert record.rows < 5
    assert record.finished_at is not None
