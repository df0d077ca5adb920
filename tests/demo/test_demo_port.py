"""The demo push service follows PUSH_DEMO_SERVICE_PORT: demo subscriptions seeded for another
port are moved to it at start, and a busy port stops `make run` with a message naming the
variable to set."""

import socket

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from demo.push_service import (
    DemoPushService,
    demo_endpoint,
    demo_endpoint_gone,
    demo_subscription_keys,
)
from notifications.models import DeliveryStatus, PushSubscription
from tests.factories import CustomerFactory
from tests.notifications.fixtures_push import send_campaign, vapid_settings  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vapid_settings")]

OLD_PORT = 8765


def _demo_subscription(pk_hint: int, port: int = OLD_PORT) -> PushSubscription:
    customer = CustomerFactory(push_opt_in=True)
    key_index = pk_hint % len(demo_subscription_keys())
    p256dh, auth = demo_subscription_keys()[key_index]
    return PushSubscription.objects.create(
        customer=customer,
        endpoint=demo_endpoint(port=port, subscription_id=pk_hint, key_index=key_index),
        p256dh=p256dh,
        auth=auth,
        created_at=timezone.now(),
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_prepare_moves_demo_subscriptions_to_the_port_and_nothing_else(settings):
    settings.DEBUG = True
    port = _free_port()
    demo = [_demo_subscription(i) for i in range(1, 4)]
    others = [
        PushSubscription.objects.create(
            customer=CustomerFactory(),
            endpoint=endpoint,
            p256dh="B" + "A" * 86,
            auth="QUFBQUFBQUFBQUFBQUFBQQ",
            created_at=timezone.now(),
        )
        for endpoint in (
            "https://fcm.googleapis.com/fcm/send/abc",
            f"http://127.0.0.1:{OLD_PORT}/push/not-a-demo-device",
            f"https://127.0.0.1:{OLD_PORT}/push/demo-1-1",
        )
    ]
    call_command("run_demo_push_service", "--prepare", "--port", str(port))
    for before in demo:
        after = PushSubscription.objects.get(pk=before.pk)
        assert after.endpoint == before.endpoint.replace(f":{OLD_PORT}/", f":{port}/")
    for before in others:
        assert PushSubscription.objects.get(pk=before.pk).endpoint == before.endpoint
    # Nothing left to move the second time.
    call_command("run_demo_push_service", "--prepare", "--port", str(port))
    assert PushSubscription.objects.filter(endpoint__contains=f":{port}/").count() == 3


def test_a_busy_port_stops_with_a_message_naming_the_variable(settings):
    settings.DEBUG = True
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _demo_subscription(1)
        with pytest.raises(CommandError, match=f"PUSH_DEMO_SERVICE_PORT={port + 1} make run"):
            call_command("run_demo_push_service", "--prepare", "--port", str(port))
        with pytest.raises(CommandError, match="Set PUSH_DEMO_SERVICE_PORT"):
            call_command("run_demo_push_service", "--port", str(port))
    # Nothing was moved to the busy port.
    assert not PushSubscription.objects.filter(endpoint__contains=f":{port}/").exists()


def test_a_campaign_after_a_port_change_is_delivered(settings, django_capture_on_commit_callbacks):
    settings.DEBUG = True
    subscriptions = [
        s
        for s in (_demo_subscription(i) for i in range(1, 8))
        if not demo_endpoint_gone(s.endpoint.rpartition("/")[2])
    ]
    with DemoPushService(report=lambda line: None) as service:
        port = int(service.origin.rpartition(":")[2])
        settings.PUSH_DEMO_SERVICE_PORT = port
        # What `make run` runs before the worker (the service also does it when it starts).
        from demo.management.commands.run_demo_push_service import (
            demo_endpoints_follow,
        )

        assert demo_endpoints_follow(port) == 7
        send_campaign(django_capture_on_commit_callbacks, audience=None)
        received = {message.endpoint.rpartition("/")[2] for message in service.received}
    statuses = set(
        PushSubscription.objects.filter(pk__in=[s.pk for s in subscriptions]).values_list(
            "deliveries__status", flat=True
        )
    )
    assert statuses == {DeliveryStatus.SENT}
    assert {s.endpoint.rpartition("/")[2] for s in subscriptions} <= received
