"""XLSX exports: built by the task, followed on a page, downloaded by their owner only, until
they expire."""

from datetime import timedelta

import pytest
from django.utils import timezone

from exports import services, tasks, writers
from exports.columns import headers
from exports.models import Export, ExportStatus
from tests.exports.conftest import HOSTILE, xlsx_sheets
from tests.factories import CustomerFactory, UserFactory, make_order

pytestmark = pytest.mark.django_db
URL = "/exports/new/"


def ask(client, django_capture_on_commit_callbacks, language="en", **data):
    """Post an XLSX export; the build task runs when the request's transaction commits (the
    test settings run tasks at once)."""
    fields = {"tab": "clients", "scope": "all", "file_format": "xlsx", **data}
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(URL, fields, headers={"accept-language": language})


def download(client, record, language="en"):
    response = client.get(f"/exports/{record.pk}/download/", headers={"accept-language": language})
    assert response.status_code == 200, response.content[:500]
    return b"".join(response.streaming_content)


def test_the_file_is_built_in_the_background_and_offered_to_its_owner(
    viewer_client, shop, django_capture_on_commit_callbacks
):
    response = ask(viewer_client, django_capture_on_commit_callbacks, "fr")
    record = Export.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/exports/{record.pk}/"
    assert record.status == ExportStatus.DONE
    assert record.rows == record.total == 2
    assert record.expires_at > timezone.now()
    page = viewer_client.get(response["Location"], headers={"accept-language": "fr"})
    assert f'href="/exports/{record.pk}/download/"' in page.text
    assert "hx-trigger" not in page.text  # finished: no more polling
    content = download(viewer_client, record, "fr")
    assert content.startswith(b"PK")
    (sheet,) = xlsx_sheets(content).values()
    assert [value for _, _, value, _ in sheet[0]] == headers("fr")
    by_email = {row[3][2]: row for row in sheet[1:]}
    known = {
        ref.rstrip("0123456789"): (kind, value)
        for ref, kind, value, _ in by_email["zoe@example.com"]
    }
    assert known["A"] == ("n", str(shop["known"].pk))
    assert known["B"] == ("inlineStr", "Zoé")
    assert known["H"] == ("n", "1234.5")  # a number, shown with the file's number format
    assert known["L"] == ("inlineStr", "Oui")
    assert known["Q"] == ("inlineStr", "FR")
    assert known["V"] == ("inlineStr", "DE")
    kind, serial = known["F"]  # the last order, a date in the shop's time zone (14:05)
    assert kind == "n" and abs(float(serial) - 46022.586805) < 0.0001


def test_text_that_looks_like_a_formula_stays_text(
    viewer_client, shop, django_capture_on_commit_callbacks
):
    ask(viewer_client, django_capture_on_commit_callbacks)
    (sheet,) = xlsx_sheets(download(viewer_client, Export.objects.get())).values()
    hostile = {row[3][2]: row for row in sheet[1:]}["hostile@example.com"]
    texts = {value for _, kind, value, _ in hostile if kind == "inlineStr"}
    assert set(HOSTILE.values()) <= texts
    assert "=1+1" in texts
    assert not any(formula for row in sheet for *_, formula in row)


def test_progress_page_polls_while_the_file_is_built(viewer_client, shop):
    record = services.export_create(
        user=None, tab="clients", scope="all", query="", sort="", ids=[],
        file_format="xlsx", language="en",
    )  # fmt: skip
    owner = UserFactory(role="Viewer")
    Export.objects.filter(pk=record.pk).update(requested_by=owner, total=2, rows=1)
    viewer_client.force_login(owner)
    page = viewer_client.get(f"/exports/{record.pk}/")
    assert 'hx-trigger="every 2s"' in page.text
    assert 'value="50"' in page.text
    poll = viewer_client.get(f"/exports/{record.pk}/", headers={"HX-Request": "true"})
    assert poll.text.lstrip().startswith('<section id="export-progress"')
    assert "<html" not in poll.text
    # Not ready: no download.
    assert viewer_client.get(f"/exports/{record.pk}/download/").status_code == 410


def test_only_the_user_who_asked_can_see_and_download_it(
    viewer_client, admin_client_role, shop, django_capture_on_commit_callbacks
):
    ask(viewer_client, django_capture_on_commit_callbacks)
    record = Export.objects.get()
    for url in (f"/exports/{record.pk}/", f"/exports/{record.pk}/download/"):
        assert admin_client_role.get(url).status_code == 404
    assert record.pk not in [e.pk for e in admin_client_role.get("/exports/").context["page"]]


def test_expired_files_are_refused_then_deleted(
    viewer_client, shop, django_capture_on_commit_callbacks, export_storage
):
    ask(viewer_client, django_capture_on_commit_callbacks)
    record = Export.objects.get()
    storage = services.export_storage()
    assert storage.exists(record.file)
    Export.objects.filter(pk=record.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = viewer_client.get(f"/exports/{record.pk}/download/")
    assert response.status_code == 410
    assert services.export_delete_expired() == 1
    record.refresh_from_db()
    assert record.status == ExportStatus.EXPIRED and record.file == ""
    assert not list(export_storage.rglob("*.xlsx"))
    # The record stays: it is the audit of the export.
    assert record.rows == 2 and record.requested_by is not None
    page = viewer_client.get(f"/exports/{record.pk}/")
    assert "export again" in page.text
    assert viewer_client.get(f"/exports/{record.pk}/download/").status_code == 410


def test_the_retention_setting_sets_the_expiry(
    viewer_client, shop, settings, django_capture_on_commit_callbacks
):
    settings.EXPORT_RETENTION_HOURS = 2
    ask(viewer_client, django_capture_on_commit_callbacks)
    record = Export.objects.get()
    assert record.expires_at - record.finished_at == timedelta(hours=2)


def test_a_build_whose_worker_died_is_failed_after_the_retention(db):
    record = services.export_create(
        user=None, tab="clients", scope="all", query="", sort="", ids=[],
        file_format="xlsx", language="en",
    )  # fmt: skip
    Export.objects.filter(pk=record.pk).update(
        status=ExportStatus.RUNNING, requested_at=timezone.now() - timedelta(hours=25)
    )
    services.export_delete_expired()
    record.refresh_from_db()
    assert record.status == ExportStatus.FAILED


def test_building_twice_builds_once(db):
    make_order(CustomerFactory())
    record = services.export_create(
        user=None, tab="clients", scope="all", query="", sort="", ids=[],
        file_format="xlsx", language="en",
    )  # fmt: skip
    tasks.build_xlsx_export.call(record.pk)
    first = Export.objects.get().file
    tasks.build_xlsx_export.call(record.pk)
    assert Export.objects.get().file == first
    assert Export.objects.get().status == ExportStatus.DONE


def test_more_rows_than_a_sheet_holds_continue_on_another_sheet(
    viewer_client, db, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(writers, "XLSX_MAX_ROWS", 3)  # the headers and 2 rows a sheet
    for customer in CustomerFactory.create_batch(5):
        make_order(customer)
    ask(viewer_client, django_capture_on_commit_callbacks)
    sheets = list(xlsx_sheets(download(viewer_client, Export.objects.get())).values())
    assert [len(sheet) for sheet in sheets] == [3, 3, 2]
    assert all(sheet[0][0][2] == "Client ID" for sheet in sheets)


def test_a_failed_build_is_reported_without_a_file(
    viewer_client, db, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(writers, "write_xlsx", broken)
    ask(viewer_client, django_capture_on_commit_callbacks)
    record = Export.objects.get()
    assert record.status == ExportStatus.FAILED and record.file == ""
    page = viewer_client.get(f"/exports/{record.pk}/")
    assert "could not be built" in page.text
    assert viewer_client.get(f"/exports/{record.pk}/download/").status_code == 410


def test_a_user_may_have_only_a_few_files_being_built(viewer_client, db):
    for _ in range(services.MAX_BUILDING_PER_USER):
        assert viewer_client.post(URL, {"tab": "clients", "scope": "all", "file_format": "xlsx"})
    # (The build tasks never ran: no commit in this test.)
    response = viewer_client.post(URL, {"tab": "clients", "scope": "all", "file_format": "xlsx"})
    assert response.status_code == 400
    assert "still being built" in response.text
    assert Export.objects.count() == services.MAX_BUILDING_PER_USER
    # CSV files are not built by the worker: still allowed.
    csv = viewer_client.post(URL, {"tab": "clients", "scope": "all", "file_format": "csv"})
    assert csv.status_code == 200


def test_the_cleanup_command_deletes_expired_files(
    viewer_client, shop, django_capture_on_commit_callbacks
):
    from io import StringIO

    from django.core.management import call_command

    ask(viewer_client, django_capture_on_commit_callbacks)
    Export.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    out = StringIO()
    call_command("delete_expired_exports", stdout=out)
    assert out.getvalue().startswith("1 expired export file")
    assert Export.objects.get().status == ExportStatus.EXPIRED


def test_each_file_schedules_its_own_deletion_at_its_expiry(settings, db):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    from django.tasks import task_backends

    make_order(CustomerFactory())
    record = services.export_create(
        user=None, tab="clients", scope="all", query="", sort="", ids=[],
        file_format="xlsx", language="en",
    )  # fmt: skip
    tasks.build_xlsx_export.call(record.pk)
    record.refresh_from_db()
    (scheduled,) = task_backends["default"].results
    assert scheduled.task.name == "delete_expired_exports"
    assert scheduled.task.run_after == record.expires_at
