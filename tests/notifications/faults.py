"""What the push fault tests share: real `manage.py db_worker` processes on the test database,
and the delivery promise checked against the push service's own record.

The promise (notifications/README.md, "Delivery"): nobody receives a campaign twice, every row
recorded as delivered was received, every row ends in a final state, the campaign completes by
itself (no `push_resume`, no other command), and the campaign's counters equal its rows
(`rebuild_push_stats --check` finds no drift).
"""

import io
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.core.management import call_command

from notifications.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from tests.processes import stop, worker_env

# Short timeouts and backoffs so that every fault plays out in seconds; the rest is the
# production settings module (DEBUG off). Each test adds its own lines.
WORKER_SETTINGS = """
from backoffice.settings import *  # noqa: F403

PUSH_ALLOW_LOOPBACK_ENDPOINTS = True
PUSH_REQUEST_TIMEOUT = 1.0
PUSH_RETRY_BASE_DELAY = 0.2
PUSH_RETRY_MAX_DELAY = 1.0
PUSH_CLAIM_LEASE = 3.0
PUSH_WATCHDOG_INTERVAL = 2.0
PUSH_BATCH_SIZE = 20
PUSH_WAVE_SIZE = 10
PUSH_CONCURRENCY = 10
"""


class Workers:
    """Starts `manage.py db_worker --no-reload` processes (the process that runs the task is
    the one started, so SIGKILL reaches the sender), and stops them all at the end."""

    def __init__(self, *, settings, vapid_keys, directory: Path):
        self.directory = directory
        self.configure()
        self.env = worker_env(
            vapid_keys=vapid_keys,
            settings_module="fault_settings",
            PYTHONPATH=os.pathsep.join([str(directory), str(settings.BASE_DIR)]),
            DEBUG="0",
            SECRET_KEY="push-fault-tests",
        )
        self.base_dir = settings.BASE_DIR
        self.processes: list[subprocess.Popen] = []
        self.killed = 0

    def configure(self, extra_settings: str = "") -> None:
        """The workers' settings: WORKER_SETTINGS plus these lines (for workers started next)."""
        (self.directory / "fault_settings.py").write_text(WORKER_SETTINGS + extra_settings)

    def start(self) -> subprocess.Popen:
        number = len(self.processes)
        log_path = self.directory / f"db_worker-{number}.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "manage.py",
                    "db_worker",
                    "--no-reload",
                    "--no-startup-delay",
                    "--interval",
                    "0.2",
                    "--worker-id",
                    f"fault-{os.getpid()}-{number}",
                ],
                cwd=self.base_dir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process.log_path = log_path
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        """SIGKILL, after checking the worker runs its tasks itself (no reloader child)."""
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        if children.exists():
            assert children.read_text().strip() == "", "db_worker has a child: use --no-reload"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        self.killed += 1

    def wait_started(self, *, within: float = 60) -> None:
        """Until every worker started has logged that it polls its queue."""
        deadline = time.monotonic() + within
        while not all("Starting worker" in p.log_path.read_text() for p in self.processes):
            assert time.monotonic() < deadline, f"the workers did not start:\n{self.logs()}"
            time.sleep(0.05)

    def alive(self) -> list[subprocess.Popen]:
        return [p for p in self.processes if p.poll() is None]

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.log_path.name} (exit {p.poll()}):\n{p.log_path.read_text()[-1500:]}"
            for p in self.processes
        )

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                stop(process, timeout=20)


def statuses(campaign: Campaign) -> dict[str, int]:
    counts = Counter(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True))
    return {status: counts[status] for status in DeliveryStatus.values if counts[status]}


def wait_until_sent(campaign: Campaign, *, within: float, workers: Workers) -> float:
    """Seconds until the campaign is "sent" by itself; fails with the rows and logs if not."""
    started = time.monotonic()
    while True:
        campaign.refresh_from_db()
        if campaign.status == CampaignStatus.SENT:
            return time.monotonic() - started
        assert time.monotonic() - started < within, (
            f"the campaign is still {campaign.status!r} after {within:.0f} s with no manual"
            f" command: rows {statuses(campaign)}\n{workers.logs()}"
        )
        assert workers.alive(), f"every worker exited\n{workers.logs()}"
        time.sleep(0.25)


@dataclass
class Outcome:
    """A campaign's rows against what the push service received."""

    rows: dict[str, int]
    recipients: int
    received: int  # subscriptions that received the campaign at least once
    duplicates: int  # copies beyond the first, over all subscriptions
    twice: list[int]  # subscriptions that received it more than once
    lost: int  # subscriptions that never received it
    unknown: int
    sent_not_received: list[int]
    failed_but_received: list[int]
    unknown_not_received: int

    def __str__(self) -> str:
        return (
            f"rows {self.rows}; received {self.received}/{self.recipients},"
            f" duplicates {self.duplicates} ({len(self.twice)} subscriptions twice or more),"
            f" lost {self.lost}, unknown {self.unknown}"
            f" ({self.unknown_not_received} of them never received);"
            f" delivered rows not received {len(self.sent_not_received)};"
            f" failed rows received {len(self.failed_but_received)}"
        )


def outcome(campaign: Campaign, push_service) -> Outcome:
    counts = push_service.received_counts()
    rows = list(
        Delivery.objects.filter(campaign=campaign).values_list(
            "subscription_id", "subscription__endpoint", "status"
        )
    )
    got = {sub: counts.get(endpoint, 0) for sub, endpoint, _ in rows}
    status_of = {sub: status for sub, _, status in rows}
    return Outcome(
        rows=statuses(campaign),
        recipients=len(rows),
        received=sum(1 for n in got.values() if n),
        duplicates=sum(n - 1 for n in got.values() if n > 1),
        twice=sorted(sub for sub, n in got.items() if n > 1),
        lost=sum(1 for n in got.values() if not n),
        unknown=sum(1 for s in status_of.values() if s == DeliveryStatus.UNKNOWN),
        sent_not_received=sorted(
            sub for sub, s in status_of.items() if s == DeliveryStatus.SENT and got[sub] != 1
        ),
        failed_but_received=sorted(
            sub for sub, s in status_of.items() if s == DeliveryStatus.FAILED and got[sub]
        ),
        unknown_not_received=sum(
            1 for sub, s in status_of.items() if s == DeliveryStatus.UNKNOWN and not got[sub]
        ),
    )


def assert_promise(campaign: Campaign, push_service, *, label: str) -> Outcome:
    """The delivery promise, from the push service's own record; returns the outcome."""
    result = outcome(campaign, push_service)
    print(f"\n{label}: {result}")
    campaign.refresh_from_db()
    problems = []
    if campaign.status != CampaignStatus.SENT:
        problems.append(f"campaign {campaign.status!r}, not sent")
    if result.twice:
        problems.append(f"{len(result.twice)} subscriptions received the campaign twice or more")
    if result.sent_not_received:
        problems.append(f"{len(result.sent_not_received)} rows delivered but not received once")
    if result.failed_but_received:
        problems.append(
            f"{len(result.failed_but_received)} rows failed although the service received them"
        )
    open_rows = result.rows.get(DeliveryStatus.PENDING, 0) + result.rows.get(
        DeliveryStatus.SENDING, 0
    )
    if open_rows:
        problems.append(f"{open_rows} rows not in a final state")
    counters = {
        "delivered": result.rows.get(DeliveryStatus.SENT, 0),
        "failed": result.rows.get(DeliveryStatus.FAILED, 0),
        "expired": result.rows.get(DeliveryStatus.EXPIRED, 0),
        "unknown": result.rows.get(DeliveryStatus.UNKNOWN, 0),
    }
    for name, expected in counters.items():
        if getattr(campaign, name) != expected:
            problems.append(f"campaign.{name} is {getattr(campaign, name)}, rows say {expected}")
    out = io.StringIO()
    try:
        call_command("rebuild_push_stats", "--check", stdout=out)
    except SystemExit:
        problems.append(f"rebuild_push_stats --check: {out.getvalue().strip()}")
    assert not problems, f"{label}: {'; '.join(problems)}. {result}"
    return result
