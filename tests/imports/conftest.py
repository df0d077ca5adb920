from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from imports import services
from imports.models import ImportJob, ImportStatus

FILES = Path(__file__).parent / "files"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def upload(name: str, *, kind: str = "customers", data: bytes | None = None, actor=None):
    content = data if data is not None else (FILES / name).read_bytes()
    return services.import_upload(upload=SimpleUploadedFile(name, content), kind=kind, actor=actor)


def check(job: ImportJob) -> ImportJob:
    assert job.status == ImportStatus.CHECKING, job.status
    return services.import_check(job_id=job.pk)


def apply(job: ImportJob, actor) -> ImportJob:
    services.import_start_apply(job=job, actor=actor)
    return services.import_apply(job_id=job.pk)


def reasons(job: ImportJob) -> dict[int, str]:
    """{line: reason code} of the refused rows."""
    return {
        row.line: row.reasons[0][0] for row in job.rows.filter(action="refused").order_by("ordinal")
    }
