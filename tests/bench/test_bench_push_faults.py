"""`manage.py bench_push_faults` end to end, briefly: a few subscriptions, one scenario, real
worker processes on the test database; the table counts what the push service received."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from clients.models import Customer
from notifications.models import Campaign, PushSubscription
from tests.factories import CustomerFactory
from tests.markers import fault_test

pytestmark = fault_test(
    needs_postgresql="needs PostgreSQL: the workers are other processes",
    why_opt_in="starts worker processes (about 10 s)",
)


def _rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 9 and ":" in cells[0]:
            rows[cells[0].split(":")[0]] = cells
    return rows


def test_the_bench_counts_a_campaign_under_faults_and_deletes_what_it_wrote(settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    out = StringIO()
    call_command(
        "bench_push_faults",
        subscriptions=30,
        scenario=["500"],
        timeout=60,
        stdout=out,
        stderr=StringIO(),
    )
    rows = _rows(out.getvalue())
    assert set(rows) == {"500"}, out.getvalue()
    for name, (_, received, duplicates, lost, unknown, failed, done, *_rest) in rows.items():
        assert (received, duplicates, lost, unknown, failed) == ("30", "0", "0", "0", "0"), (
            name,
            rows,
        )
        assert done.endswith(" s") and not done.startswith("not"), (name, rows)
    assert not Customer.objects.exists()
    assert not PushSubscription.objects.exists()
    assert not Campaign.objects.exists()


def test_the_bench_refuses_a_database_with_subscriptions(settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    PushSubscription.objects.create(
        customer=CustomerFactory(),
        endpoint="https://fcm.googleapis.com/fcm/send/x",
        p256dh="x",
        auth="y",
        created_at=timezone.now(),
    )
    with pytest.raises(CommandError, match="without active push subscriptions"):
        call_command("bench_push_faults", subscriptions=5, stdout=StringIO())
