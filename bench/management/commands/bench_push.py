import gc
import time
import uuid

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from bench.memory import PeakRss, rss
from bench.push import Sink, key_pool
from clients.models import Customer
from notifications.conf import push_setting
from notifications.delivery import batch_send, sender_encryption
from notifications.models import Campaign, CampaignStatus, Delivery, PushSubscription
from notifications.webpush import vapid_get, vapid_keys_generate


class _Rollback(Exception):
    pass


def _mb(value: int) -> str:
    return f"{value / 2**20:.1f} MB"


class Command(BaseCommand):
    help = (
        "Benchmark push delivery: send a campaign to N generated subscriptions on a local sink "
        "(127.0.0.1, answers 201) with the real batch code, then the same messages with the naive "
        "loop (pywebpush.webpush() per subscription) on a sample; print messages per second, "
        "the ratio and memory. Everything it writes to the database is rolled back."
    )

    def add_arguments(self, parser):
        parser.add_argument("--subscriptions", type=int, default=10000)
        parser.add_argument(
            "--naive-sample",
            type=int,
            default=2000,
            help="Messages sent with the naive loop (it is slow; its rate is per message).",
        )
        parser.add_argument("--key-pool", type=int, default=200, help="Distinct browser keys.")

    def handle(self, *, subscriptions, naive_sample, key_pool, **options):
        if subscriptions < 1:
            raise CommandError("--subscriptions must be at least 1.")
        public, private = vapid_keys_generate()
        keys = key_pool_make(key_pool, self.stderr)
        # The benchmark signs with its own throwaway key, whatever the settings say. It runs
        # with DEBUG off, as a production worker does: with DEBUG on, Django keeps the SQL of
        # the last 9,000 queries in memory, and the setup's bulk inserts alone (their SQL
        # holds every value) would inflate the process by tens of MB at 100,000
        # subscriptions, and the log of the sending's queries would grow with N.
        overrides = {
            "VAPID_PRIVATE_KEY": private,
            "VAPID_PUBLIC_KEY": public,
            "DEBUG": False,
            # The sink is on 127.0.0.1, an endpoint the sender accepts only with this on.
            "PUSH_ALLOW_LOOPBACK_ENDPOINTS": True,
        }
        with override_settings(**overrides), Sink() as sink:
            try:
                with transaction.atomic():
                    self._run(sink, subscriptions, keys, naive_sample)
                    raise _Rollback
            except _Rollback:
                pass

    def _run(self, sink, n, keys, naive_sample):
        self.stderr.write(f"Creating {n:,} subscriptions…")
        rss_before_setup = rss()
        campaign = _setup(sink.origin, n, keys)
        # Measure from a collected heap: what sending needs, not what the setup left over.
        gc.collect()
        rss_after_setup = rss()
        batches = (n + push_setting("PUSH_BATCH_SIZE") - 1) // push_setting("PUSH_BATCH_SIZE")
        vapid = vapid_get()
        signed_before = vapid.signed
        self.stderr.write(f"Sending through the batch code ({batches} batches)…")
        encryption = sender_encryption()
        child_cpu = _child_cpu(encryption)
        with PeakRss() as memory:
            started, cpu_started = time.perf_counter(), time.process_time()
            for batch in range(batches):
                batch_send(campaign_id=campaign.pk, batch=batch)
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
        child_cpu = _child_cpu(encryption) - child_cpu
        campaign.refresh_from_db()
        if campaign.delivered != n or campaign.status != CampaignStatus.SENT:
            raise CommandError(f"Only {campaign.delivered:,} of {n:,} were delivered.")
        ours = n / elapsed

        sample = min(n, naive_sample)
        self.stderr.write(f"Sending {sample:,} messages with the naive loop…")
        naive_cpu_started = time.process_time()
        naive = _naive(sink.origin, sample, keys, settings.VAPID_PRIVATE_KEY)
        naive_cpu = time.process_time() - naive_cpu_started

        out = self.stdout.write
        out(f"subscriptions: {n:,} (sink {sink.origin}, {len(keys)} distinct browser keys)")
        out(
            f"batch delivery: {n:,} messages in {elapsed:.2f} s = {ours:,.0f} messages/s "
            f"(one process, {push_setting('PUSH_CONCURRENCY')} connections, "
            f"{vapid.signed - signed_before} VAPID JWT signed)"
        )
        out(
            f"naive loop (pywebpush.webpush() per subscription, sample of {sample:,}): "
            f"{naive:,.0f} messages/s"
        )
        out(f"ratio: {ours / naive:.1f}x")
        # CPU time is what a worker process spends; unlike wall time it does not depend on
        # what else the machine runs (the sink and the database run in other processes).
        out(
            f"CPU per message: batch delivery {cpu / n * 1e6:,.0f} µs "
            f"({n / cpu:,.0f} messages per CPU-second), naive loop "
            f"{naive_cpu / sample * 1e6:,.0f} µs ({sample / naive_cpu:,.0f} per CPU-second)"
        )
        if encryption is not None:
            # Not in the figure above: the child is another process (another core).
            out(
                f"CPU per message of the encryption child process: {child_cpu / n * 1e6:,.0f} µs "
                f"({encryption.started} started, {encryption.fallbacks} waves encrypted "
                f"in the worker instead); its RSS {_mb(rss(encryption.pid))} (not in the "
                "memory below)"
            )
        out(
            f"memory before sending: RSS {_mb(rss_before_setup)} before creating the "
            f"subscriptions, {_mb(rss_after_setup)} after"
        )
        out(
            f"memory while sending: RSS {_mb(memory.start)} -> peak {_mb(memory.peak)} "
            f"(+{_mb(memory.peak - memory.start)})"
        )
        out(f"peak RSS while sending: {_mb(memory.peak)}")


def _child_cpu(encryption) -> float:
    cpu = encryption.cpu_seconds() if encryption is not None else None
    return cpu or 0.0


def key_pool_make(size, stderr):
    stderr.write(f"Generating {size} P-256 browser key pairs…")
    return key_pool(size)


# Rows created per round trip by the setup. The model instances of one chunk are all the
# setup holds at a time, so the process does not grow with N; 1,000 is as fast as 5,000 and
# leaves about 4 MB behind instead of 12-15 MB (measured on PostgreSQL).
SETUP_CHUNK = 1000


def _setup(origin: str, n: int, keys) -> Campaign:
    """N customers with one subscription each on the sink, and a campaign's delivery rows.

    Written directly (not through the services) because it is a throwaway fixture inside
    a transaction that is rolled back. Created chunk by chunk, keeping nothing: no N Python
    objects are alive when sending starts.
    """
    now = timezone.now()
    run = uuid.uuid4().hex[:8]
    campaign = Campaign.objects.create(
        title="Benchmark",
        body="A benchmark message of a realistic length for a shop's push notification.",
        link="https://shop.example/sale",
        audience_tab="leads",
        audience_kind="all",
        status=CampaignStatus.SENDING,
        public_base_url="https://backoffice.example",
        created_at=now,
        send_at=now,
        started_at=now,
        recipients=n,
    )
    batch_size = push_setting("PUSH_BATCH_SIZE")
    for start in range(0, n, SETUP_CHUNK):
        stop = min(n, start + SETUP_CHUNK)
        customers = Customer.objects.bulk_create(
            Customer(email=f"bench-{run}-{i}@example.invalid", created_at=now, push_opt_in=True)
            for i in range(start, stop)
        )
        subs = PushSubscription.objects.bulk_create(
            PushSubscription(
                customer=customer,
                endpoint=f"{origin}/push/{run}-{i}",
                p256dh=keys[i % len(keys)][0],
                auth=keys[i % len(keys)][1],
                created_at=now,
            )
            for i, customer in zip(range(start, stop), customers, strict=True)
        )
        Delivery.objects.bulk_create(
            Delivery(campaign=campaign, subscription=sub, batch=i // batch_size)
            for i, sub in zip(range(start, stop), subs, strict=True)
        )
    return campaign


def _naive(origin: str, sample: int, keys, private_key: str) -> float:
    """The loop a first version would write: one webpush() call per subscription."""
    from pywebpush import webpush

    data = (
        '{"title":"Benchmark","body":"A benchmark message of a realistic length for a shop\'s '
        'push notification.","url":"https://backoffice.example/push/c/x"}'
    )
    started = time.perf_counter()
    for i in range(sample):
        p256dh, auth = keys[i % len(keys)]
        webpush(
            {"endpoint": f"{origin}/push/naive-{i}", "keys": {"p256dh": p256dh, "auth": auth}},
            data=data,
            vapid_private_key=private_key,
            vapid_claims={"sub": "mailto:bench@example.com"},
            ttl=86400,
            timeout=10,
        )
    return sample / (time.perf_counter() - started)
