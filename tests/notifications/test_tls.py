"""Push delivery over HTTPS, as every real push service (FCM, Mozilla, Apple) requires.

The local push service (tests/push_service.py) serves TLS with a certificate signed by a CA it
makes at start; the workers trust that CA through PUSH_CA_FILE, in addition to the system's.
Nothing is mocked: the handshake, the certificate checks, the VAPID JWT and the decryption of
each message are real.
"""

import asyncio
import json

import pytest
import requests
from django.core.exceptions import ImproperlyConfigured
from pywebpush import webpush

from notifications import delivery
from notifications.http1 import Http1Pool, HttpError
from notifications.models import (
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    PushSubscription,
    SubscriptionStatus,
)
from notifications.webpush import Vapid, encrypt, vapid_private_key_parse
from tests.notifications.fixtures_push import send_campaign, subscribe, vapid_settings  # noqa: F401
from tests.push_service import PushService


@pytest.fixture
def tls_push_service(vapid_keys):
    with PushService(vapid_public_key=vapid_keys.public_key, tls=True) as service:
        yield service


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    return lambda **kwargs: send_campaign(django_capture_on_commit_callbacks, **kwargs)


def _rows(campaign):
    return {d.subscription_id: d for d in Delivery.objects.filter(campaign=campaign)}


# --- The push service over TLS ---------------------------------------------------------------


def test_the_tls_push_service_is_a_standard_https_server(tls_push_service, vapid_keys):
    """Another client (pywebpush over requests) verifies its certificate and delivers to it."""
    assert tls_push_service.origin.startswith("https://127.0.0.1:")
    subscription = tls_push_service.new_subscription()
    session = requests.Session()
    session.verify = tls_push_service.ca_file
    session.trust_env = False  # REQUESTS_CA_BUNDLE, when set, would replace `verify`
    response = webpush(
        subscription,
        data='{"title": "Over TLS"}',
        vapid_private_key=vapid_keys.private_key,
        vapid_claims={"sub": "mailto:ops@example.com"},
        ttl=60,
        requests_session=session,
    )
    assert response.status_code == 201
    [message] = tls_push_service.messages_for(subscription["endpoint"])
    assert message.json() == {"title": "Over TLS"}
    assert message.claims["aud"] == tls_push_service.origin
    # Without the CA, requests refuses the certificate as well.
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        requests.post(f"{tls_push_service.origin}/push/x", data=b"", timeout=5)


def test_the_ca_file_only_exists_while_a_tls_service_runs(vapid_keys):
    service = PushService(tls=True)
    with pytest.raises(RuntimeError):
        _ = service.ca_file
    with service:
        path = service.ca_file
        with open(path) as f:
            assert f.read().startswith("-----BEGIN CERTIFICATE-----")
    with pytest.raises(RuntimeError):
        _ = service.ca_file
    with pytest.raises(RuntimeError), PushService() as plain:
        _ = plain.ca_file


# --- Http1Pool over TLS ----------------------------------------------------------------------


def _push_request(service: PushService, vapid: Vapid, text: str) -> tuple[str, dict, bytes]:
    """A real Web Push request (VAPID JWT, encrypted body) to a new subscription."""
    subscription = service.new_subscription()
    keys = subscription["keys"]
    body = encrypt(json.dumps({"title": text}).encode(), p256dh=keys["p256dh"], auth=keys["auth"])
    headers = {
        "Authorization": vapid.authorization(service.origin),
        "Content-Encoding": "aes128gcm",
        "TTL": "60",
    }
    return subscription["endpoint"], headers, body


def _signer(vapid_keys) -> Vapid:
    return Vapid(vapid_private_key_parse(vapid_keys.private_key), "mailto:ops@example.com")


def test_pool_reuses_tls_connections(tls_push_service, vapid_keys):
    vapid = _signer(vapid_keys)
    sequential = [_push_request(tls_push_service, vapid, f"one {i}") for i in range(5)]
    concurrent = [_push_request(tls_push_service, vapid, f"many {i}") for i in range(24)]

    async def main():
        pool = Http1Pool(limit=4, timeout=5, ca_file=tls_push_service.ca_file)
        try:
            first = [
                await pool.post(url, headers=headers, body=body)
                for url, headers, body in sequential
            ]
            after_sequential = (pool.connections_opened, tls_push_service.connections_count)
            second = await asyncio.gather(
                *(pool.post(url, headers=headers, body=body) for url, headers, body in concurrent)
            )
            return first + list(second), after_sequential, pool.connections_opened
        finally:
            await pool.close()

    responses, after_sequential, opened = asyncio.run(main())
    assert [r.status for r in responses] == [201] * 29
    # Five requests one after the other: one TLS connection, kept alive, on both sides.
    assert after_sequential == (1, 1)
    # 24 at once through 4 slots: at most 4 connections, the first one among them.
    assert opened <= 4
    assert tls_push_service.connections_count == opened
    assert tls_push_service.requests_count == 29
    for (url, _, _), text in zip(
        sequential + concurrent,
        [f"one {i}" for i in range(5)] + [f"many {i}" for i in range(24)],
        strict=True,
    ):
        [message] = tls_push_service.messages_for(url)
        assert message.json() == {"title": text}


def test_pool_reconnects_when_the_service_closed_an_idle_tls_connection(
    tls_push_service, vapid_keys
):
    vapid = _signer(vapid_keys)
    before = _push_request(tls_push_service, vapid, "before")
    after = _push_request(tls_push_service, vapid, "after")

    async def main():
        pool = Http1Pool(limit=2, timeout=5, ca_file=tls_push_service.ca_file)
        try:
            first = await pool.post(before[0], headers=before[1], body=before[2])
            # The service drops its connections (an outage), then listens again.
            tls_push_service.set_down(True)
            tls_push_service.set_down(False)
            await asyncio.sleep(0.2)
            second = await pool.post(after[0], headers=after[1], body=after[2])
            return first.status, second.status, pool.connections_opened
        finally:
            await pool.close()

    assert asyncio.run(main()) == (201, 201, 2)
    assert tls_push_service.connections_count == 2
    assert len(tls_push_service.received) == 2


def _post_error(url: str, ca_file: str = "") -> HttpError:
    async def main():
        pool = Http1Pool(limit=1, timeout=5, ca_file=ca_file)
        try:
            with pytest.raises(HttpError) as caught:
                await pool.post(url, headers={"TTL": "60"}, body=b"")
            return caught.value
        finally:
            await pool.close()

    return asyncio.run(main())


def test_pool_refuses_a_certificate_from_an_untrusted_ca(tls_push_service):
    url = f"{tls_push_service.origin}/push/x"
    error = _post_error(url)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    # Trusting another CA does not help: only the CA that signed the certificate does.
    with PushService(tls=True) as other:
        error = _post_error(url, ca_file=other.ca_file)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    assert tls_push_service.requests_count == 0


def test_pool_checks_the_hostname_even_with_the_ca_trusted():
    with PushService(tls=True, tls_hostnames=["localhost"]) as service:
        error = _post_error(f"{service.origin}/push/x", ca_file=service.ca_file)
        assert "certificate is not valid for '127.0.0.1'" in str(error)
        assert service.requests_count == 0


def test_pool_refuses_an_unusable_ca_file(tmp_path):
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    for path in (not_pem, tmp_path / "missing.pem"):
        with pytest.raises(OSError):
            Http1Pool(ca_file=str(path))


# --- A campaign over TLS ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("vapid_settings")
def test_a_campaign_is_delivered_over_https_with_the_ca_trusted(tls_push_service, run, settings):
    settings.PUSH_CA_FILE = tls_push_service.ca_file
    settings.PUSH_CONCURRENCY = 3
    subscriptions = [subscribe(tls_push_service) for _ in range(12)]
    assert all(s.endpoint.startswith("https://127.0.0.1:") for s in subscriptions)
    campaign = run(title="Sale over TLS")
    assert campaign.status == CampaignStatus.SENT
    assert (campaign.recipients, campaign.delivered, campaign.failed, campaign.expired) == (
        12,
        12,
        0,
        0,
    )
    rows = _rows(campaign)
    for subscription in subscriptions:
        [message] = tls_push_service.messages_for(subscription.endpoint)
        assert message.json()["title"] == "Sale over TLS"
        assert message.json()["tag"] == f"campaign-{campaign.pk}"
        assert message.claims["aud"] == tls_push_service.origin
        row = rows[subscription.pk]
        assert (row.status, row.attempts, row.last_status_code, row.error) == (
            DeliveryStatus.SENT,
            1,
            201,
            "",
        )
        assert row.sent_at is not None
    # The pool's TLS connections were kept alive and reused for the 12 messages.
    assert 1 <= tls_push_service.connections_count <= 3
    assert tls_push_service.requests_count == 12


@pytest.mark.django_db
@pytest.mark.usefixtures("vapid_settings")
@pytest.mark.parametrize("trusted", ["system CAs only", "another CA"])
def test_an_untrusted_certificate_fails_delivery_cleanly(tls_push_service, run, settings, trusted):
    """A certificate error is a network error: retried, then failed; nothing is delivered."""
    settings.PUSH_MAX_ATTEMPTS = 2
    subscriptions = [subscribe(tls_push_service) for _ in range(3)]
    with PushService(tls=True) as other:
        settings.PUSH_CA_FILE = "" if trusted == "system CAs only" else other.ca_file
        campaign = run()
    assert campaign.status == CampaignStatus.SENT
    assert (campaign.recipients, campaign.delivered, campaign.failed) == (3, 0, 3)
    for subscription in subscriptions:
        row = _rows(campaign)[subscription.pk]
        assert (row.status, row.attempts, row.last_status_code, row.sent_at) == (
            DeliveryStatus.FAILED,
            2,
            None,
            None,
        )
        assert "CERTIFICATE_VERIFY_FAILED" in row.error
        subscription.refresh_from_db()
        # The push service's certificate is at fault, not the subscription.
        assert subscription.status == SubscriptionStatus.ACTIVE
        assert subscription.consecutive_failures == 2
    # The workers reached the service but sent nothing over the refused connections.
    assert tls_push_service.connections_count >= 1
    assert tls_push_service.requests_count == 0
    assert tls_push_service.received == []


@pytest.mark.django_db
@pytest.mark.usefixtures("vapid_settings")
def test_a_certificate_for_another_host_is_refused(vapid_keys, run, settings):
    settings.PUSH_MAX_ATTEMPTS = 1
    with PushService(
        vapid_public_key=vapid_keys.public_key, tls=True, tls_hostnames=["push.example"]
    ) as service:
        settings.PUSH_CA_FILE = service.ca_file
        subscription = subscribe(service)
        campaign = run()
        assert service.requests_count == 0
    row = _rows(campaign)[subscription.pk]
    assert (row.status, row.last_status_code) == (DeliveryStatus.FAILED, None)
    assert "IP address mismatch" in row.error
    assert (campaign.delivered, campaign.failed) == (0, 1)


@pytest.mark.django_db
@pytest.mark.usefixtures("vapid_settings")
def test_an_unusable_ca_file_stops_the_batch_before_it_claims_anything(
    tls_push_service, run, settings, tmp_path
):
    settings.PUSH_CA_FILE = str(tmp_path / "missing.pem")
    subscriptions = [subscribe(tls_push_service) for _ in range(2)]
    campaign = run()  # the task fails; the campaign stays to be sent
    assert campaign.status == CampaignStatus.SENDING
    assert all(
        (row.status, row.attempts) == (DeliveryStatus.PENDING, 0)
        for row in _rows(campaign).values()
    )
    with pytest.raises(ImproperlyConfigured, match="PUSH_CA_FILE"):
        delivery.batch_send(campaign_id=campaign.pk, batch=0)
    assert tls_push_service.connections_count == 0
    # Once the setting is fixed, resuming the batch delivers everything, once.
    settings.PUSH_CA_FILE = tls_push_service.ca_file
    assert delivery.batch_send(campaign_id=campaign.pk, batch=0).outcome == "done"
    campaign.refresh_from_db()
    assert (campaign.status, campaign.delivered) == (CampaignStatus.SENT, 2)
    for subscription in subscriptions:
        assert len(tls_push_service.messages_for(subscription.endpoint)) == 1
    assert PushSubscription.objects.filter(consecutive_failures=0).count() == 2
