"""bench_import's measurement runs (on a few rows: the figures are the README's)."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from clients.models import Customer
from tests.factories import CustomerFactory


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.mark.django_db
@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_bench_import_times_dry_run_apply_and_the_same_file_again(file_format, tmp_path):
    CustomerFactory.create_batch(5, phone="")
    output = tmp_path / "import.json"
    args = ["--rows", "40", "--output", str(output)]
    call_command(
        "bench_import", *args, *(["--xlsx"] if file_format == "xlsx" else []), stdout=StringIO()
    )
    result = json.loads(output.read_text())
    assert result["format"] == file_format and result["rows"] == 40
    # Rows 0, 5, ... 20 name the 5 customers; the others are new.
    assert result["dry_run"]["counts"] == {"update": 5, "create": 35}
    assert result["apply"]["counts"] == {"update": 5, "create": 35, "refused": 0}
    assert result["second_dry_run"]["counts"] == {"unchanged": 40}
    assert result["second_apply"]["counts"] == {"unchanged": 40, "refused": 0}
    assert result["apply"]["peak_rss_mb"] > 0 and result["apply"]["cpu_s"] >= 0
    assert Customer.objects.count() == 40


@pytest.mark.django_db
def test_bench_import_reads_only(tmp_path):
    output = tmp_path / "import.json"
    call_command(
        "bench_import", "--rows", "30", "--xlsx", "--read-only", "--output", str(output),
        stdout=StringIO(),
    )  # fmt: skip
    result = json.loads(output.read_text())
    assert set(result) >= {"read", "rss_start_mb"} and "dry_run" not in result
    assert result["read"]["peak_rss_mb"] > 0
    assert Customer.objects.count() == 0
