"""`manage.py bench_push_faults`: a campaign under each fault, counted by the push service.

For each scenario, real `manage.py db_worker --no-reload` processes send one campaign of N
subscriptions to the local Web Push service (demo/push_service.py, in this process: it
decrypts every message and records what it took), while the service or the bench injects a
fault: answers after the client's timeout, connections dropped after the request was
accepted, a storm of 429, transient 500s, refused connections, workers killed with SIGKILL,
two workers at once. It reports, from the service's record against the campaign's rows:
received (subscriptions that got it), duplicates (copies beyond the first), lost
(subscriptions that never got it), unknown and failed rows, and the time to completion
(from enqueueing the batches to the campaign being "sent" with no command run), or that it
did not complete.

The workers run the settings module of this process with shorter timeouts (WORKER_SETTINGS):
the faults play out in seconds rather than minutes. Everything the bench writes (customers,
subscriptions, campaigns, their rows and tasks) is deleted at the end. It needs PostgreSQL and
a database no other worker serves (a copy: the workers would otherwise share its tasks).
"""

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from clients.models import AuditEntry, Customer
from demo.push_service import PushService
from notifications.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    PushSubscription,
)

WORKER_SETTINGS = """
from {module} import *  # noqa: F403

DEBUG = False
TASKS = {{"default": {{"BACKEND": "django_tasks_db.DatabaseBackend"}}}}
PUSH_ALLOW_LOOPBACK_ENDPOINTS = True
PUSH_REQUEST_TIMEOUT = 2.0
PUSH_RETRY_BASE_DELAY = 0.5
PUSH_RETRY_MAX_DELAY = 2.0
PUSH_CLAIM_LEASE = 10.0
PUSH_WATCHDOG_INTERVAL = 5.0
"""

CHUNK = 1000


@dataclass
class Scenario:
    name: str
    description: str
    workers: int = 1
    kills: int = 0


SCENARIOS = [
    Scenario("none", "no fault (reference)"),
    Scenario("timeouts", "answers after 3 s (timeout 2 s) for 10 s; the service took each"),
    Scenario("dropped", "10% of connections closed unanswered after accepting, for 10 s"),
    Scenario("429", "429 Retry-After: 1 to everything for 30 s"),
    Scenario("429-date", "429 with Retry-After as an HTTP date 2 s ahead, for 15 s"),
    Scenario("500", "500 to 20% of requests for 10 s"),
    Scenario("refused", "connections refused for the first 10 s"),
    Scenario(
        "kill", "the worker SIGKILLed 3 times, 2 s apart, a new one started each time", kills=3
    ),
    Scenario("two-workers", "two workers at once", workers=2),
]


@dataclass
class Result:
    scenario: Scenario
    recipients: int
    received: int
    duplicates: int
    lost: int
    rows: dict[str, int]
    requests: int
    seconds: float | None
    notes: list[str] = field(default_factory=list)


def program(service: PushService, name: str) -> None:
    """Put the push service in the scenario's fault mode (the fault starts with the first
    request it answers)."""
    if name == "timeouts":
        service.respond(None, status=201, delay=3.0, for_seconds=10)
    elif name == "dropped":
        service.respond(None, status=201, drop=True, fraction=0.1, seed=1, for_seconds=10)
    elif name == "429":
        service.respond(None, status=429, retry_after=1, for_seconds=30)
    elif name == "429-date":
        service.respond(None, status=429, retry_after=2, retry_after_date=True, for_seconds=15)
    elif name == "500":
        service.respond(None, status=500, fraction=0.2, seed=2, for_seconds=10)
    elif name == "refused":
        service.down_for(10)
    else:
        service.respond(None, status=201)


class Bench:
    def __init__(self, *, n: int, timeout: float, vapid_private: str, vapid_public: str):
        self.n = n
        self.timeout = timeout
        self.run = uuid.uuid4().hex[:8]
        self.directory = Path(tempfile.mkdtemp(prefix="bench-push-faults-"))
        (self.directory / "bench_faults_settings.py").write_text(
            WORKER_SETTINGS.format(module=os.environ["DJANGO_SETTINGS_MODULE"])
        )
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench_faults_settings",
            "PYTHONPATH": os.pathsep.join([str(self.directory), str(settings.BASE_DIR)]),
            "DEBUG": "0",
            "SECRET_KEY": settings.SECRET_KEY,
            "VAPID_PRIVATE_KEY": vapid_private,
            "DATABASE_URL": _database_url(),
        }
        self.service = PushService(vapid_public_key=vapid_public)
        self.processes: list[subprocess.Popen] = []
        self.campaign_ids: list[int] = []
        self.subscription_ids: list[int] = []

    # -- setup and teardown ------------------------------------------------------------------

    def setup(self) -> None:
        self.service.start()
        now = timezone.now()
        for start in range(0, self.n, CHUNK):
            stop = min(self.n, start + CHUNK)
            customers = Customer.objects.bulk_create(
                Customer(
                    email=f"bench-faults-{self.run}-{i}@example.invalid",
                    created_at=now,
                    push_opt_in=True,
                )
                for i in range(start, stop)
            )
            subscriptions = []
            for customer in customers:
                info = self.service.new_subscription()
                subscriptions.append(
                    PushSubscription(
                        customer=customer,
                        endpoint=info["endpoint"],
                        p256dh=info["keys"]["p256dh"],
                        auth=info["keys"]["auth"],
                        created_at=now,
                    )
                )
            created = PushSubscription.objects.bulk_create(subscriptions)
            self.subscription_ids.extend(s.pk for s in created)

    def teardown(self) -> None:
        self.stop_workers()
        self.service.stop()
        if self.campaign_ids:
            DBTaskResult.objects.filter(
                task_path__startswith="notifications.tasks.",
                args_kwargs__args__0__in=self.campaign_ids,
            ).delete()
            Delivery.objects.filter(campaign_id__in=self.campaign_ids).delete()
            Campaign.objects.filter(pk__in=self.campaign_ids).delete()
        customers = Customer.objects.filter(email__startswith=f"bench-faults-{self.run}-")
        PushSubscription.objects.filter(customer__in=customers).delete()
        AuditEntry.objects.filter(customer__in=customers).delete()
        customers.delete()

    # -- workers -----------------------------------------------------------------------------

    def start_worker(self) -> subprocess.Popen:
        log = (self.directory / f"worker-{len(self.processes)}.log").open("w")
        process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "db_worker",
                "--no-reload",
                "--no-startup-delay",
                "--interval",
                "0.2",
            ],
            cwd=settings.BASE_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes.append(process)
        return process

    def stop_workers(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []

    # -- one scenario ------------------------------------------------------------------------

    def campaign(self, scenario: Scenario) -> Campaign:
        """A campaign to the Leads tab (only the bench's customers accept push: checked), due
        now; the workers start it as they start any campaign (start_campaign)."""
        now = timezone.now()
        campaign = Campaign.objects.create(
            title=f"Fault bench: {scenario.name}",
            body="A benchmark message of a realistic length for a shop's push notification.",
            link="https://shop.example/sale",
            audience_tab="leads",
            audience_kind="all",
            status=CampaignStatus.SCHEDULED,
            public_base_url="https://backoffice.example",
            created_at=now,
            send_at=now,
        )
        self.campaign_ids.append(campaign.pk)
        return campaign

    def settle(self, campaign: Campaign) -> None:
        """Leave nothing of an unfinished scenario to the next one's workers."""
        DBTaskResult.objects.filter(
            task_path__startswith="notifications.tasks.",
            args_kwargs__args__0=campaign.pk,
        ).exclude(status__in=["SUCCESSFUL", "FAILED"]).delete()
        Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.SENDING).update(
            status=CampaignStatus.FAILED, error="bench_push_faults: not completed in time"
        )

    def scenario(self, scenario: Scenario) -> Result:
        from notifications.tasks import start_campaign

        self.service.respond(None, status=201)
        self.service.clear()
        for _ in range(scenario.workers):
            self.start_worker()
        campaign = self.campaign(scenario)
        time.sleep(2.0)  # the workers' start-up, so that the time is the campaign's
        program(self.service, scenario.name)
        started = time.monotonic()
        start_campaign.enqueue(campaign.pk)
        notes = []
        if scenario.kills:
            rng = random.Random(3)
            for kill in range(scenario.kills):
                # Killed while sending: after the service has seen the new worker's requests.
                seen = self.service.requests_count
                deadline = time.monotonic() + 60
                while self.service.requests_count == seen and time.monotonic() < deadline:
                    time.sleep(0.05)
                if self.service.requests_count == seen:
                    notes.append(f"no request for 60 s before kill {kill + 1}")
                    break
                time.sleep(1.0 + rng.uniform(0, 1.0))
                victim = self.processes[-1]
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                notes.append(f"kill {kill + 1} at {time.monotonic() - started:.1f} s")
                self.start_worker()
        seconds = None
        while time.monotonic() - started < self.timeout:
            status = Campaign.objects.values_list("status", flat=True).get(pk=campaign.pk)
            if status == CampaignStatus.SENT:
                seconds = time.monotonic() - started
                break
            time.sleep(0.25)
        self.stop_workers()
        self.settle(campaign)
        if self.service.is_down:
            self.service.set_down(False)
        return self.count(scenario, campaign, seconds, notes)

    def count(self, scenario, campaign, seconds, notes) -> Result:
        received = self.service.received_counts()
        rows = Counter()
        got = []
        for endpoint, status in Delivery.objects.filter(campaign=campaign).values_list(
            "subscription__endpoint", "status"
        ):
            rows[status] += 1
            got.append(received.get(endpoint, 0))
        return Result(
            scenario=scenario,
            recipients=len(got),
            received=sum(1 for n in got if n),
            duplicates=sum(n - 1 for n in got if n > 1),
            lost=sum(1 for n in got if not n),
            rows={s: rows[s] for s in DeliveryStatus.values if rows[s]},
            requests=len(self.service.requests),
            seconds=seconds,
            notes=notes,
        )


def _database_url() -> str:
    """The database this process uses, for the workers (whatever DATABASE_URL says)."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    credentials = f"{user}{password}@" if user else ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    # The options of DATABASE_URL (prepare_threshold=none behind a pooler...) carry over.
    query = urlsplit(os.environ.get("DATABASE_URL", "")).query
    return f"postgres://{credentials}{db['HOST'] or ''}{port}/{quote(db['NAME'], safe='')}" + (
        f"?{query}" if query else ""
    )


def check_database() -> str | None:
    """Why the bench cannot run on this database, or None."""
    if connection.vendor != "postgresql":
        return "bench_push_faults needs PostgreSQL (its workers are other processes)."
    if PushSubscription.objects.filter(status="active").exists():
        return (
            "bench_push_faults sends to the whole Leads tab: run it on a database without "
            "active push subscriptions (createdb a fresh one and migrate)."
        )
    return None
