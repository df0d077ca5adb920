"""The protocol pieces: encryption (checked by the reference implementation), VAPID tokens."""

import asyncio
import io
import json
import os
import stat

import http_ece
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command
from django.core.management.base import CommandError

from bench.push import key_pool
from notifications.webpush import (
    MAX_PLAINTEXT_SIZE,
    PushClient,
    PushMessage,
    Vapid,
    b64url_decode,
    encrypt,
    retry_after_seconds,
    vapid_private_key_parse,
)
from tests.push_service import PushService


def test_the_plaintext_limit_is_what_4096_encrypted_bytes_leave():
    assert MAX_PLAINTEXT_SIZE == 4096 - 86 - 17 == 3993


def test_encryption_decrypts_with_http_ece():
    receiver = ec.generate_private_key(ec.SECP256R1())
    from notifications.webpush import b64url_encode, public_key_b64

    auth = os.urandom(16)
    body = encrypt(b"hello \xe2\x9c\x93", p256dh=public_key_b64(receiver), auth=b64url_encode(auth))
    assert http_ece.decrypt(body, private_key=receiver, auth_secret=auth, version="aes128gcm") == (
        b"hello \xe2\x9c\x93"
    )
    with pytest.raises(ValueError):
        encrypt(
            b"x" * (MAX_PLAINTEXT_SIZE + 1),
            p256dh=public_key_b64(receiver),
            auth=b64url_encode(auth),
        )


def test_the_largest_payload_is_accepted_by_a_push_service(vapid_keys):
    vapid = Vapid(vapid_private_key_parse(vapid_keys.private_key), "mailto:shop@example.com")
    with PushService(vapid_public_key=vapid_keys.public_key) as service:
        sub = service.new_subscription()
        payload = json.dumps({"body": "x" * (MAX_PLAINTEXT_SIZE - 12)}).encode()
        assert len(payload) == MAX_PLAINTEXT_SIZE

        async def send():
            client = await PushClient(vapid=vapid, concurrency=2, timeout=5).open()
            try:
                message = PushMessage(
                    1,
                    sub["endpoint"],
                    sub["keys"]["p256dh"],
                    sub["keys"]["auth"],
                    payload,
                    60,
                    "low",
                    "t1",
                )
                return await client.send_many([message])
            finally:
                await client.close()

        [result] = asyncio.run(send())
        assert result.status == 201
        [received] = service.received
        assert received.payload == payload
        assert int(received.headers["Content-Length"]) == 4096


def test_one_vapid_token_per_origin_renewed_before_it_expires():
    vapid = Vapid(ec.generate_private_key(ec.SECP256R1()), "mailto:shop@example.com")
    first = vapid.authorization("https://fcm.googleapis.com", now=1_000_000)
    assert vapid.authorization("https://fcm.googleapis.com", now=1_000_000 + 3600) == first
    other = vapid.authorization("https://updates.push.services.mozilla.com", now=1_000_000)
    assert other != first and vapid.signed == 2
    # 12 h tokens are renewed once less than an hour is left.
    assert vapid.authorization("https://fcm.googleapis.com", now=1_000_000 + 11 * 3600 - 1) == first
    renewed = vapid.authorization("https://fcm.googleapis.com", now=1_000_000 + 11 * 3600)
    assert renewed != first and vapid.signed == 3
    token = renewed.split("t=")[1].split(",")[0]
    claims = json.loads(b64url_decode(token.split(".")[1]))
    assert claims == {
        "aud": "https://fcm.googleapis.com",
        "exp": 1_000_000 + 11 * 3600 + 12 * 3600,
        "sub": "mailto:shop@example.com",
    }


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
    ],
)
def test_retry_after(value, seconds):
    from email.utils import parsedate_to_datetime

    now = parsedate_to_datetime("Wed, 21 Oct 2015 07:27:00 GMT").timestamp()
    assert retry_after_seconds(value, now=now) == seconds


def test_generate_vapid_keys(tmp_path):
    out = io.StringIO()
    call_command("generate_vapid_keys", stdout=out)
    lines = dict(line.split("=", 1) for line in out.getvalue().splitlines())
    key = vapid_private_key_parse(lines["VAPID_PRIVATE_KEY"])
    assert Vapid(key, "mailto:x@example.com").public_key == lines["VAPID_PUBLIC_KEY"]
    path = tmp_path / "vapid.env"
    call_command("generate_vapid_keys", "--env-file", str(path), stdout=io.StringIO())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_text()
    with pytest.raises(CommandError):
        call_command("generate_vapid_keys", "--env-file", str(path), stdout=io.StringIO())
    assert path.read_text() == before


def test_key_pool_gives_real_keys():
    [(p256dh, auth)] = key_pool(1)
    assert len(b64url_decode(p256dh)) == 65 and len(b64url_decode(auth)) == 16


@pytest.mark.django_db
def test_bench_push_runs_and_leaves_nothing_behind():
    from notifications.models import Campaign, PushSubscription

    out = io.StringIO()
    call_command(
        "bench_push",
        "--subscriptions",
        "30",
        "--naive-sample",
        "5",
        "--key-pool",
        "3",
        stdout=out,
        stderr=io.StringIO(),
    )
    text = out.getvalue()
    assert (
        "30 messages in" in text
        and "messages/s" in text
        and "ratio:" in text
        and "1 VAPID JWT" in text
    )
    assert not Campaign.objects.exists() and not PushSubscription.objects.exists()
