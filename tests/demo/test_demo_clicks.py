"""The demo devices open a share of the notifications they get, through the real click link of a
live server, so a demo campaign gets clicks (and then credited orders) as a real one does."""

import threading
import time

import pytest
from django.utils import timezone

from demo.push_service import (
    DemoPushService,
    demo_clicks,
    demo_endpoint,
    demo_endpoint_gone,
    demo_subscription_keys,
)
from notifications.models import Campaign, Delivery, PushSubscription
from notifications.services import Audience, Message
from notifications.tasks import campaign_submit
from tests.factories import CustomerFactory, UserFactory
from tests.notifications.fixtures_push import vapid_settings  # noqa: F401

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("vapid_settings"),
]


def _demo_devices(port: int, count: int) -> list[PushSubscription]:
    devices = []
    for index in range(1, 10 * count):
        endpoint = demo_endpoint(port=port, subscription_id=index, key_index=index % 64)
        if demo_endpoint_gone(endpoint.rpartition("/")[2]):
            continue
        p256dh, auth = demo_subscription_keys()[index % 64]
        devices.append(
            PushSubscription.objects.create(
                customer=CustomerFactory(push_opt_in=True),
                endpoint=endpoint,
                p256dh=p256dh,
                auth=auth,
                created_at=timezone.now(),
            )
        )
        if len(devices) == count:
            return devices
    raise AssertionError("not enough demo endpoints")


def _send(live_server, django_capture_on_commit_callbacks, link: str) -> Campaign:
    with django_capture_on_commit_callbacks(execute=True):
        campaign = campaign_submit(
            actor=UserFactory(role="Admin"),
            audience=Audience(tab="leads", kind="all"),
            message=Message(title="Demo sale", body="20% off", link=link),
            send_at=None,
            public_base_url=live_server.url,
        )
    campaign.refresh_from_db()
    return campaign


class _OneAtATime:
    """A click gate that opens when set, then lets the clicks through one at a time (each
    waits for the one before it to be reported). The live server's threads share the tests'
    in-memory SQLite connection: two clicks at once would begin a transaction inside the other's
    ("cannot start a transaction within a transaction", seen in CI), which a real database
    file, one connection per thread, never does."""

    def __init__(self):
        self._open = threading.Event()
        self._turn = threading.Semaphore(1)

    def set(self) -> None:
        self._open.set()

    def wait(self, timeout: float) -> bool:
        return self._open.wait(timeout) and self._turn.acquire(timeout=timeout)

    def next(self) -> None:
        self._turn.release()


def _wait_for(condition, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_the_demo_devices_open_their_share_of_a_campaign_through_its_click_link(
    live_server, settings, django_capture_on_commit_callbacks
):
    settings.DEBUG = True
    lines = []
    # The clicks wait for the campaign to be sent: the tests' SQLite database is locked while
    # the test's thread writes (a device that opens the notification at once is no different).
    gate = _OneAtATime()

    def report(line: str) -> None:
        lines.append(line)
        if line.startswith("click "):
            gate.next()

    service = DemoPushService(
        report=report, clicks_per_10k=5_000, click_delay=(0, 0.2), click_gate=gate
    )
    with service:
        devices = _demo_devices(int(service.origin.rpartition(":")[2]), 12)
        campaign = _send(live_server, django_capture_on_commit_callbacks, "https://shop.example/s")
        links = {
            m.endpoint.rpartition("/")[2]: m.json()["url"] for m in service.received if m.payload
        }
        assert len(links) == len(devices) and campaign.delivered == len(devices)
        clickers = {e for e, url in links.items() if demo_clicks(e, url, 5_000)}
        # A real share: some devices open it, some do not (fixed by device and link).
        assert 0 < len(clickers) < len(devices)
        gate.set()
        _wait_for(lambda: sum(line.startswith("click ") for line in lines) == len(clickers))
    clicked = Delivery.objects.filter(campaign=campaign, clicked_at__isnull=False)
    assert {d.subscription.endpoint.rpartition("/")[2] for d in clicked} == clickers
    campaign.refresh_from_db()
    assert campaign.clicks == len(clickers)
    # Every click went through the back office's redirect, and the log says so per device.
    assert all(line.endswith("(302)") for line in lines if line.startswith("click "))
    # The log names each notification's link, so whoever runs the demo can open one by hand.
    assert sum(" link http" in line for line in lines if line.startswith("201 ")) == len(devices)


def test_without_a_link_nothing_is_opened(
    live_server, settings, django_capture_on_commit_callbacks
):
    settings.DEBUG = True
    lines = []
    with DemoPushService(report=lines.append, clicks_per_10k=10_000, click_delay=(0, 0)) as service:
        _demo_devices(int(service.origin.rpartition(":")[2]), 3)
        campaign = _send(live_server, django_capture_on_commit_callbacks, "")
        time.sleep(0.5)
    assert campaign.delivered == 3
    assert not any(line.startswith("click ") for line in lines)
    assert not Delivery.objects.filter(campaign=campaign, clicked_at__isnull=False).exists()


def test_the_share_is_a_share():
    links = [f"https://backoffice.example/push/c/token-{n}" for n in range(2_000)]
    opened = sum(demo_clicks("demo-1a-3", url, 2_000) for url in links)
    assert 300 < opened < 500  # 20% of 2,000
    assert not any(demo_clicks("demo-1a-3", url, 0) for url in links)
