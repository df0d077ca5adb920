"""The worker's encryption child (notifications/encryption.py): what it encrypts is what a push
service decrypts, the rows of a wave it fails on are prepared by the worker instead, it holds
no connection, and it goes when the worker goes."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import http_ece
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from notifications import delivery, services
from notifications.encryption import EncryptionProcess, encrypt_wave
from notifications.models import CampaignStatus, Delivery, DeliveryStatus
from notifications.webpush import b64url_encode, public_key_b64
from tests.notifications.fixtures_push import (  # noqa: F401
    send_campaign,
    subscribe,
    vapid_settings,
)

PROJECT_DIR = Path(__file__).resolve().parents[2]


def _receiver():
    key = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    return key, auth, public_key_b64(key), b64url_encode(auth)


def _decrypt(body: bytes, key, auth: bytes) -> bytes:
    return http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm")


def test_the_child_encrypts_each_item_or_says_why_it_cannot():
    key, auth, p256dh, auth_b64 = _receiver()
    items = [(b"hello %d" % i, p256dh, auth_b64) for i in range(5)]
    items.append((b"bad keys", "not-a-point", auth_b64))
    process = EncryptionProcess()

    async def run():
        try:
            return await process.encrypt_many(items)
        finally:
            process.close()

    bodies = asyncio.run(run())
    assert (process.started, process.fallbacks) == (1, 0)
    assert [_decrypt(body, key, auth) for body in bodies[:5]] == [b"hello %d" % i for i in range(5)]
    # The same reason the worker would give, had it encrypted the row itself.
    assert bodies[5] == encrypt_wave([items[5]])[0]
    assert bodies[5].startswith("ValueError: ")


@pytest.mark.parametrize(
    "child",
    [
        "import sys; sys.exit(3)",
        # Reads the wave, answers something else, then hangs.
        "import sys, time; sys.stdin.buffer.read(64);"
        " sys.stdout.buffer.write(b'\\0\\0\\0\\3abc'); sys.stdout.flush(); time.sleep(60)",
    ],
    ids=["exits", "answers-garbage"],
)
def test_a_wave_the_child_fails_is_encrypted_by_the_worker(child):
    key, auth, p256dh, auth_b64 = _receiver()
    items = [(b"hello %d" % i, p256dh, auth_b64) for i in range(3)]
    process = EncryptionProcess(command=(sys.executable, "-c", child))

    async def run():
        try:
            bodies = await process.encrypt_many(items)
            # The failed child is gone; the next waves are encrypted here for a while.
            assert process.pid is None
            return bodies, await process.encrypt_many(items)
        finally:
            process.close()

    first, second = asyncio.run(run())
    assert (process.started, process.fallbacks) == (1, 2)
    for bodies in (first, second):
        assert [_decrypt(body, key, auth) for body in bodies] == [b"hello %d" % i for i in range(3)]


@pytest.mark.django_db
@pytest.mark.usefixtures("vapid_settings")
def test_a_campaign_is_encrypted_by_the_child(push_service, django_capture_on_commit_callbacks):
    subscriptions = [subscribe(push_service) for _ in range(6)]
    encryption = delivery.sender_encryption()
    encryption.close()  # a fresh child, whatever the tests before did to this process's
    fallbacks = encryption.fallbacks
    campaign = send_campaign(django_capture_on_commit_callbacks, title="Spring sale")
    assert campaign.status == CampaignStatus.SENT
    assert encryption.pid is not None
    assert encryption.fallbacks == fallbacks
    for subscription in subscriptions:
        [message] = push_service.messages_for(subscription.endpoint)
        assert message.json()["title"] == "Spring sale"


@pytest.mark.django_db
@pytest.mark.usefixtures("vapid_settings")
def test_the_child_killed_mid_campaign_loses_and_repeats_nothing(
    push_service, django_capture_on_commit_callbacks, settings, monkeypatch
):
    """SIGKILL to the child while waves are prepared: every row is still sent once."""
    settings.PUSH_WAVE_SIZE = 3
    subscriptions = [subscribe(push_service) for _ in range(20)]
    encryption = delivery.sender_encryption()
    fallbacks = encryption.fallbacks
    real_mark = services.deliveries_mark_sending
    killed = set()

    def mark(**kwargs):
        pid = encryption.pid
        if len(killed) < 2 and pid is not None and pid not in killed:
            # The wave after this one is being encrypted by the child right now (or queued).
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        return real_mark(**kwargs)

    monkeypatch.setattr(services, "deliveries_mark_sending", mark)
    campaign = send_campaign(django_capture_on_commit_callbacks)
    assert killed
    assert encryption.fallbacks > fallbacks
    assert (campaign.status, campaign.delivered, campaign.unknown, campaign.failed) == (
        CampaignStatus.SENT,
        20,
        0,
        0,
    )
    assert not Delivery.objects.exclude(status=DeliveryStatus.SENT).exists()
    assert sorted(len(push_service.messages_for(s.endpoint)) for s in subscriptions) == [1] * 20


WORKER = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from notifications.encryption import EncryptionProcess, b64url_encode

    async def main():
        process = EncryptionProcess()
        point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        items = [(b"x", b64url_encode(point), b64url_encode(os.urandom(16)))]
        assert isinstance((await process.encrypt_many(items))[0], bytes)
        assert process.fallbacks == 0
        print(process.pid, flush=True)
        time.sleep(60)

    asyncio.run(main())
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="reads /proc")
def test_the_child_holds_no_socket_and_exits_when_the_worker_is_killed():
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER], cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True
    )
    try:
        child = int(worker.stdout.readline())
        fds = Path(f"/proc/{child}/fd")
        targets = [os.readlink(fd) for fd in fds.iterdir()]
        # Its pipes to the worker, and nothing else the worker had open: it cannot send.
        assert not [target for target in targets if target.startswith("socket:")]
        assert _alive(child)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        deadline = time.monotonic() + 30
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        worker.kill()
        worker.wait()
