"""The import pages: Admins only, the upload flow through the worker, the size limit, hostile
input, and a constant number of queries."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clients.models import Customer
from imports.models import ImportJob
from tests.imports.conftest import FILES
from tests.imports.pages import checked_job

pytestmark = pytest.mark.django_db

LIST = "/imports/"


def _post_file(client, name, data=None, kind="customers", **extra):
    from django.core.files.uploadedfile import SimpleUploadedFile

    content = data if data is not None else (FILES / name).read_bytes()
    return client.post(LIST, {"kind": kind, "file": SimpleUploadedFile(name, content)}, **extra)


def test_only_admins_import(viewer_client, staff_client, admin_client_role):
    job = checked_job()
    urls = [
        LIST,
        job.get_absolute_url(),
        reverse("imports:job-mapping", args=[job.pk]),
        reverse("imports:job-refused-csv", args=[job.pk]),
    ]
    for client in (viewer_client, staff_client):
        for url in urls:
            assert client.get(url).status_code == 403, url
        assert _post_file(client, "shopify_customers_export.csv").status_code == 403
        for action in ("apply", "cancel", "resume"):
            url = reverse(f"imports:job-{action}", args=[job.pk])
            assert client.post(url).status_code == 403
    assert ImportJob.objects.count() == 1
    job.refresh_from_db()
    assert job.status == "checked"
    for url in urls:
        assert admin_client_role.get(url).status_code == 200, url
    assert "imports.import_data" in {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name="Admin").permissions.all()
    }


def test_upload_check_and_apply_through_the_worker(
    admin_client_role, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _post_file(admin_client_role, "shopify_customers_export.csv")
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    page = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "en"})
    assert page.status_code == 200
    assert 'data-testid="count-create">3<' in page.text
    assert "Invalid email: not-an-email" in page.text
    assert "Duplicate in the file: the same customer is on line 4" in page.text
    french = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "fr"})
    assert "E-mail invalide\u00a0: not-an-email" in french.text
    assert Customer.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        applied = admin_client_role.post(reverse("imports:job-apply", args=[job.pk]))
    assert applied.status_code == 302
    job.refresh_from_db()
    assert job.status == "applied" and Customer.objects.count() == 3
    csv = admin_client_role.get(reverse("imports:job-refused-csv", args=[job.pk]))
    body = b"".join(csv.streaming_content).decode()
    assert body.splitlines()[0] == "Line,Reason" and len(body.splitlines()) == 6
    import csv as csv_module
    import io

    cells = [c for row in csv_module.reader(io.StringIO(body)) for c in row]
    assert any("=HYPERLINK" in c for c in cells)
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)  # inert


def test_an_unknown_file_asks_for_its_columns(
    admin_client_role, django_capture_on_commit_callbacks
):
    response = _post_file(admin_client_role, "broken_rows.csv")
    job = ImportJob.objects.get()
    assert response["Location"] == reverse("imports:job-mapping", args=[job.pk])
    url = reverse("imports:job-mapping", args=[job.pk])
    form = admin_client_role.get(url)
    assert form.status_code == 200 and "First Name" in form.text
    # Forged and incomplete mappings are refused with a message; nothing starts.
    for data in (
        {"column_0": "no_such_field", "column_1": "", "column_2": "", "date_order": "dmy"},
        {"column_0": "", "column_1": "first_name", "column_2": "", "date_order": "dmy"},
        {"column_0": "email", "column_1": "email", "column_2": "", "date_order": "dmy"},
        {"column_0": "email", "date_order": "ymd"},
    ):
        assert admin_client_role.post(url, data).status_code == 400
    job.refresh_from_db()
    assert job.status == "mapping"
    good = {"column_0": "email", "column_1": "first_name", "column_2": "last_name"}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_role.post(url, {**good, "date_order": "dmy"})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == "checked" and job.counts == {"create": 2, "refused": 3}


def test_files_over_the_size_limit_are_refused_with_a_clear_message(admin_client_role, settings):
    settings.IMPORT_MAX_BYTES = 500
    response = _post_file(
        admin_client_role, "shopify_customers_export.csv", headers={"accept-language": "en"}
    )
    assert response.status_code == 413
    assert "larger than the 500\xa0bytes an import accepts" in response.text
    assert ImportJob.objects.count() == 0
    # A declared length far over the limit is refused before the body is read.
    big = admin_client_role.post(
        LIST,
        data=b"x",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(10**10),
    )
    assert big.status_code == 413


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x02" * 1000,
        b"PK\x03\x04broken zip",
        b"\xd0\xcf\x11\xe0" + b"\x00" * 512,
        b"\n\n\n",
        b'"',
        "Email\n\ud800".encode("utf-8", "surrogatepass"),
    ],
)
def test_hostile_files_get_a_message_not_a_500(admin_client_role, data):
    response = _post_file(admin_client_role, "x.csv", data=data)
    assert response.status_code in (302, 400)
    if response.status_code == 400:
        assert 'data-testid="upload-error"' in response.text or "errorlist" in response.text


def test_hostile_posts_change_nothing(admin_client_role):
    job = checked_job()
    assert admin_client_role.post(LIST, {"kind": "nonsense"}).status_code == 400
    assert admin_client_role.post(reverse("imports:job-resume", args=[job.pk])).status_code == 302
    job.refresh_from_db()
    assert job.status == "checked"
    for action in ("apply", "cancel", "resume"):
        url = reverse(f"imports:job-{action}", args=[999999])
        assert admin_client_role.post(url).status_code == 404
        assert admin_client_role.get(url).status_code == 405
    assert admin_client_role.get(job.get_absolute_url() + "?page=abc").status_code == 200
    assert admin_client_role.get(job.get_absolute_url() + "?page=99999").status_code == 200
    assert admin_client_role.get(job.get_absolute_url() + "?notes=-1").status_code == 200


def test_cancel_drops_the_rows_and_the_file(admin_client_role):
    job = checked_job()
    response = admin_client_role.post(reverse("imports:job-cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == "cancelled" and not job.rows.exists()
    assert admin_client_role.post(reverse("imports:job-apply", args=[job.pk])).status_code == 302
    job.refresh_from_db()
    assert job.status == "cancelled"


@pytest.mark.parametrize("name", ["detail", "list"])
def test_query_count_does_not_grow_with_rows(admin_client_role, name):
    def count(job):
        url = job.get_absolute_url() if name == "detail" else LIST
        with CaptureQueriesContext(connection) as queries:
            assert admin_client_role.get(url).status_code == 200
        return len(queries)

    small = count(checked_job(refused=2, updates=1, noted=1))
    ImportJob.objects.all().delete()
    for _n in range(5):
        large_job = checked_job(refused=150, updates=30, noted=150)
    assert count(large_job) == small


def test_the_progress_poll_returns_the_status_card_alone(admin_client_role):
    job = checked_job()
    type(job).objects.filter(pk=job.pk).update(status="applying", applied_rows=2, total_rows=5)
    response = admin_client_role.get(job.get_absolute_url(), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="import-progress"')
    assert 'value="40"' in response.text and "<html" not in response.text


def test_a_recognized_file_with_unclear_dates_goes_to_the_columns_page(admin_client_role):
    response = _post_file(admin_client_role, "woocommerce_customers_excel_us.csv")
    job = ImportJob.objects.get()
    assert response["Location"] == reverse("imports:job-mapping", args=[job.pk])
    page = admin_client_role.get(response["Location"], headers={"accept-language": "en"})
    assert 'data-testid="dates-unclear"' in page.text
    assert "day first or month first" in page.text


def test_a_new_platforms_export_through_the_pages(
    admin_client_role, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = _post_file(admin_client_role, "prestashop_customers.csv")
    job = ImportJob.objects.get()
    assert response["Location"] == job.get_absolute_url()
    page = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "en"})
    assert "PrestaShop customer export" in page.text
    assert 'data-testid="count-create">3<' in page.text
    refused = _post_file(
        admin_client_role, "magento_customer_addresses.csv", headers={"accept-language": "en"}
    )
    assert refused.status_code == 400
    assert "Customer Addresses file" in refused.text
    assert ImportJob.objects.count() == 1
