"""An applied import keeps its checked rows IMPORT_RETENTION_DAYS, says until when on its
page, and the daily privacy task deletes them then (the job and its counts stay). An import
left waiting (neither applied nor cancelled) is cancelled by the same task
IMPORT_ABANDONED_DAYS after it was last touched, its file and rows deleted."""

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from django.utils.formats import date_format

from imports.models import ImportJob, ImportRow, ImportStatus
from imports.services import import_abandoned_expire, import_rows_expire
from privacy import tasks as privacy_tasks
from tests.factories import UserFactory
from tests.imports.conftest import apply, check, upload

pytestmark = pytest.mark.django_db


def _applied(days_ago: float) -> ImportJob:
    job = apply(check(upload("shopify_customers_export.csv")), UserFactory(role="Admin"))
    finished = timezone.now() - timedelta(days=days_ago)
    ImportJob.objects.filter(pk=job.pk).update(finished_at=finished)
    job.refresh_from_db()
    return job


def test_rows_of_applied_imports_are_kept_then_deleted_by_the_daily_task(settings):
    settings.IMPORT_RETENTION_DAYS = 30
    old = _applied(days_ago=30.01)
    recent = _applied(days_ago=29.9)
    # A checked import not applied keeps its rows: it may still be applied (or cancelled).
    waiting = check(upload("shopify_customers_export.csv"))
    kept = {job.pk: job.rows.count() for job in (old, recent, waiting)}
    assert all(kept.values())

    result = privacy_tasks.daily_run()
    assert result["kept_data_expired"] == kept[old.pk]
    assert not ImportRow.objects.filter(job=old).exists()
    assert {job.pk: job.rows.count() for job in (recent, waiting)} == {
        recent.pk: kept[recent.pk],
        waiting.pk: kept[waiting.pk],
    }
    old.refresh_from_db()
    assert old.rows_deleted_at is not None
    assert old.applied_counts == {"create": 3, "refused": 5}  # the counts stay
    assert import_rows_expire() == 0  # safe to run twice


def test_the_page_says_until_when_rows_are_kept_then_that_they_are_gone(
    settings, admin_client_role
):
    settings.IMPORT_RETENTION_DAYS = 7
    job = _applied(days_ago=2)
    page = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "en"})
    until = date_format(
        timezone.localtime(job.finished_at + timedelta(days=7)), "SHORT_DATE_FORMAT"
    )
    assert f"are kept until {until}, then deleted" in page.text
    assert "Refused rows" in page.text

    ImportJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=8))
    import_rows_expire()
    page = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "fr"})
    assert "ont été supprimées le" in page.text
    assert "Lignes refusées" not in page.text  # the refused rows went with the rest


def _touched(job: ImportJob, days_ago: float) -> ImportJob:
    at = timezone.now() - timedelta(days=days_ago)
    ImportJob.objects.filter(pk=job.pk).update(created_at=at, heartbeat_at=at)
    job.refresh_from_db()
    return job


def test_imports_left_waiting_are_cancelled_with_their_file_by_the_daily_task(
    settings, django_capture_on_commit_callbacks
):
    settings.IMPORT_ABANDONED_DAYS = 14
    checked = _touched(check(upload("shopify_customers_export.csv")), days_ago=14.01)
    columns = _touched(upload("shopify_customers_export.csv"), days_ago=20)
    ImportJob.objects.filter(pk=columns.pk).update(status=ImportStatus.MAPPING, heartbeat_at=None)
    stopped = _touched(check(upload("shopify_customers_export.csv")), days_ago=15)
    ImportJob.objects.filter(pk=stopped.pk).update(status=ImportStatus.FAILED)
    # Kept: touched recently, partly applied (it can only be resumed), applied.
    recent = _touched(check(upload("shopify_customers_export.csv")), days_ago=13.9)
    partly = _touched(check(upload("shopify_customers_export.csv")), days_ago=30)
    ImportJob.objects.filter(pk=partly.pk).update(status=ImportStatus.FAILED, applied_rows=2)
    applied = apply(check(upload("shopify_customers_export.csv")), UserFactory(role="Admin"))
    _touched(applied, days_ago=15)
    for job in (stopped, partly):
        job.refresh_from_db()
    rows = {job.pk: job.rows.count() for job in (checked, stopped, recent, partly, applied)}
    assert all(rows.values())
    gone = [checked, columns, stopped]
    names = [job.file.name for job in gone]

    with django_capture_on_commit_callbacks(execute=True):
        result = privacy_tasks.daily_run()

    assert result["kept_data_expired"] == rows[checked.pk] + rows[stopped.pk]
    for job, name in zip(gone, names, strict=True):
        job.refresh_from_db()
        assert (job.status, job.abandoned) == (ImportStatus.CANCELLED, True)
        assert not job.rows.exists()
        assert not default_storage.exists(name)
    for job in (recent, partly, applied):
        before = job.status
        job.refresh_from_db()
        assert (job.status, job.abandoned) == (before, False)
        assert job.rows.count() == rows[job.pk]
    assert default_storage.exists(recent.file.name) and default_storage.exists(partly.file.name)
    assert import_abandoned_expire() == 0  # safe to run twice


def test_the_page_says_when_a_waiting_import_is_cancelled_then_that_it_was(
    settings, admin_client_role
):
    settings.IMPORT_ABANDONED_DAYS = 10
    job = _touched(check(upload("shopify_customers_export.csv")), days_ago=3)
    page = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "en"})
    until = date_format(
        timezone.localtime(job.heartbeat_at + timedelta(days=10)), "SHORT_DATE_FORMAT"
    )
    assert f"neither applied nor cancelled by {until}, this import will be cancelled" in page.text

    import_abandoned_expire(now=timezone.now() + timedelta(days=7.01))
    page = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "fr"})
    assert "Annulé automatiquement le" in page.text
    assert "cet import sera alors annulé" not in page.text
    assert "Appliquer" not in page.text
