"""An applied import keeps its checked rows IMPORT_RETENTION_DAYS, says until when on its
page, and the daily privacy task deletes them then (the job and its counts stay)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.formats import date_format

from imports.models import ImportJob, ImportRow
from imports.services import import_rows_expire
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
