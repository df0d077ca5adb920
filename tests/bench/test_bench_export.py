"""bench_export's measurement runs (on a handful of customers: the figures are the README's)."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from exports.models import Export
from tests.factories import CustomerFactory, make_order


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["csv", "csv-python", "xlsx"])
def test_bench_export_measures_each_writer(kind, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path},
        },
    }
    for customer in CustomerFactory.create_batch(3):
        make_order(customer)
    CustomerFactory()
    out = StringIO()
    call_command("bench_export", "--only", kind, stdout=out)
    result = json.loads(out.getvalue())
    assert result["kind"] == kind and result["rows"] == 4
    assert result["bytes"] > 0 and result["peak_rss_mb"] > 0
    assert not list(tmp_path.rglob("*.xlsx"))  # the benchmark's files are removed
    assert Export.objects.count() == 2
