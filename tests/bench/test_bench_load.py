"""`manage.py bench_load` end to end, briefly: gunicorn with the production settings and wrk."""

import json
import shutil
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command

from tests.factories import CustomerFactory, make_order

pytestmark = [
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        reason="gunicorn needs a database it can share: the SQLite test database is in memory",
    ),
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_bench_load_serves_every_kind_of_page_without_errors(tmp_path):
    for n in range(12):
        customer = CustomerFactory(last_name=f"Loadtest{n}")
        make_order(customer, total="25.00")
    CustomerFactory()  # a lead
    output = tmp_path / "load.json"
    out = StringIO()

    call_command(
        "bench_load",
        duration=2,
        warmup=0,
        workers=2,
        connections=2,
        threads=1,
        port=8016,
        output=str(output),
        stdout=out,
        stderr=StringIO(),
    )

    result = json.loads(output.read_text())
    assert result["requests"] > 0
    assert result["errors"] == 0, result["error_detail"]
    assert result["database"]["customers"] == 13
    assert all(
        result["setup"]["distinct_urls"][kind] for kind in ("list", "search", "client", "order")
    )
    assert "Requests/s:" in out.getvalue()
    # The temporary user it logged in with is gone.
    assert not User.objects.filter(username__startswith="bench-load-").exists()
