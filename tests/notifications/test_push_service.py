"""The local push service (tests/push_service.py) against the real pywebpush, requests and aiohttp.

What is sent is really encrypted and signed, and what the service accepts it really decrypted and
verified; these tests pin down both halves so the notifications tests can trust it.
"""

import asyncio
import concurrent.futures
import json
import os
import time
from collections.abc import Iterator

import aiohttp
import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from py_vapid import Vapid01
from py_vapid.utils import b64urldecode, b64urlencode
from pywebpush import WebPusher, WebPushException, webpush, webpush_async

from tests.notifications.conftest import VapidKeys, make_vapid_keys
from tests.push_service import PushService, decrypt_aes128gcm

CONTACT = "mailto:ops@example.com"


def claims() -> dict:
    # pywebpush adds aud and exp to the dict it is given, so every send gets a fresh one.
    return {"sub": CONTACT}


def send(subscription: dict, keys: VapidKeys, data: str | None = "hello", **kwargs):
    return webpush(
        subscription,
        data=data,
        vapid_private_key=keys.private_key,
        vapid_claims=claims(),
        timeout=10,
        **kwargs,
    )


def send_status(subscription: dict, keys: VapidKeys, data: str | None = "hello", **kwargs):
    """Send with pywebpush; return the HTTP status and the service's explanation."""
    try:
        response = send(subscription, keys, data, **kwargs)
    except WebPushException as exc:
        return exc.status_code, exc.response.json()["message"]
    return response.status_code, ""


def vapid_authorization(
    keys: VapidKeys, claims: dict, *, header: dict | None = None, public_key: str | None = None
) -> str:
    """An RFC 8292 header signed here with cryptography, independently of py_vapid's checks."""

    def segment(value: dict) -> str:
        return b64urlencode(json.dumps(value, separators=(",", ":")).encode())

    signing_input = f"{segment(header or {'typ': 'JWT', 'alg': 'ES256'})}.{segment(claims)}"
    der = keys.vapid.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = b64urlencode(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return f"vapid t={signing_input}.{signature}, k={public_key or keys.public_key}"


def valid_claims(service: PushService, **changes) -> dict:
    return {"aud": service.origin, "exp": int(time.time()) + 3600, "sub": CONTACT, **changes}


def encrypt(subscription: dict, data: bytes) -> bytes:
    return WebPusher(subscription).encode(data)["body"]


def post(url: str, *, body: bytes | Iterator[bytes] = b"", headers: dict) -> requests.Response:
    return requests.post(url, data=body, headers=headers, timeout=10)


def raw_headers(service: PushService, keys: VapidKeys, **changes) -> dict:
    headers = {
        "Authorization": vapid_authorization(keys, valid_claims(service)),
        "TTL": "60",
        "Content-Encoding": "aes128gcm",
        **changes,
    }
    return {name: value for name, value in headers.items() if value is not None}


# --- decryption ----------------------------------------------------------------------------------


def test_decryption_matches_the_rfc_8291_example():
    # RFC 8291 section 5 / appendix A: the user agent's keys and the message it receives.
    ua_private = ec.derive_private_key(
        int.from_bytes(b64urldecode(b"q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"), "big"),
        ec.SECP256R1(),
    )
    body = b64urldecode(
        b"DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWA"
        b"mS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxs"
        b"j_Qulcy4a-fN"
    )
    payload = decrypt_aes128gcm(
        body, private_key=ua_private, auth_secret=b64urldecode(b"BTBZMqHH6r4Tts7J_aSIgg")
    )
    assert payload == b"When I grow up, I want to be a watermelon"


# --- delivery ------------------------------------------------------------------------------------


def test_webpush_delivers_the_decrypted_payload_with_headers_and_claims(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    other = push_service.new_subscription()
    before = time.time()

    response = send(
        subscription,
        vapid_keys,
        json.dumps({"title": "Spring sale", "url": "/sale/"}),
        ttl=3600,
        headers={"Urgency": "high", "Topic": "spring-sale"},
    )

    assert response.status_code == 201
    assert response.headers["Location"].startswith(f"{push_service.origin}/message/")
    [message] = push_service.received
    assert push_service.messages_for(subscription["endpoint"]) == [message]
    assert push_service.messages_for(other["endpoint"]) == []
    assert message.endpoint == subscription["endpoint"]
    assert message.json() == {"title": "Spring sale", "url": "/sale/"}
    assert (message.ttl, message.urgency, message.topic) == (3600, "high", "spring-sale")
    assert message.headers["TTL"] == message.headers["ttl"] == "3600"
    assert message.headers["Content-Encoding"] == "aes128gcm"
    assert message.claims["aud"] == push_service.origin
    assert message.claims["sub"] == CONTACT
    assert before < message.claims["exp"] <= time.time() + 24 * 3600
    assert message.vapid_public_key == vapid_keys.public_key
    assert message.location == response.headers["Location"]
    assert before <= message.received_at.timestamp() <= time.time()
    assert push_service.requests_count == 1


def test_subscription_has_the_push_subscription_json_shape(push_service):
    subscription = push_service.new_subscription()

    assert subscription["endpoint"].startswith(f"{push_service.origin}/push/")
    assert subscription["expirationTime"] is None
    assert len(b64urldecode(subscription["keys"]["p256dh"].encode())) == 65
    assert len(b64urldecode(subscription["keys"]["auth"].encode())) == 16
    assert push_service.new_subscription()["endpoint"] != subscription["endpoint"]


def test_webpusher_with_a_session_reuses_one_keep_alive_connection(push_service, vapid_keys):
    subscriptions = [push_service.new_subscription() for _ in range(2)]
    session = requests.Session()
    # One JWT for the whole campaign, as a sender that signs once per batch does.
    authorization = vapid_keys.vapid.sign({"aud": push_service.origin, "sub": CONTACT})
    sent = []

    for index in range(10):
        subscription = subscriptions[index % 2]
        data = json.dumps({"n": index})
        response = WebPusher(subscription, requests_session=session).send(
            data, headers=dict(authorization), ttl=120
        )
        assert response.status_code == 201, response.text
        sent.append((subscription["endpoint"], {"n": index}))

    assert [(m.endpoint, m.json()) for m in push_service.received] == sent
    assert all(m.ttl == 120 and m.urgency == "normal" for m in push_service.received)
    assert push_service.connections_count == 1
    session.close()


def test_webpush_async_over_a_shared_aiohttp_session(push_service, vapid_keys):
    subscriptions = [push_service.new_subscription() for _ in range(50)]

    async def campaign():
        connector = aiohttp.TCPConnector(limit=10)
        async with aiohttp.ClientSession(connector=connector) as session:
            responses = await asyncio.gather(
                *(
                    webpush_async(
                        subscription,
                        data=json.dumps({"to": subscription["endpoint"]}),
                        vapid_private_key=vapid_keys.private_key,
                        vapid_claims=claims(),
                        aiohttp_session=session,
                    )
                    for subscription in subscriptions
                )
            )
            return [response.status for response in responses]

    statuses = asyncio.run(campaign())

    assert statuses == [201] * 50
    assert sorted(m.json()["to"] for m in push_service.received) == sorted(
        s["endpoint"] for s in subscriptions
    )
    assert all(m.endpoint == m.json()["to"] for m in push_service.received)
    assert push_service.connections_count <= 10


def test_message_without_payload_is_delivered_empty(push_service, vapid_keys):
    subscription = push_service.new_subscription()

    assert send(subscription, vapid_keys, data=None).status_code == 201

    [message] = push_service.received
    assert message.payload == b""


def test_payload_limit_is_4096_octets_of_body(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    largest = "x" * 3993  # + 86 octets of header, 1 delimiter and 16 of tag = 4096

    assert send_status(subscription, vapid_keys, largest) == (201, "")
    status, message = send_status(subscription, vapid_keys, largest + "x")

    assert status == 413
    assert "4097 octets" in message
    assert [m.payload for m in push_service.received] == [largest.encode()]


# --- VAPID ---------------------------------------------------------------------------------------


def test_jwt_signed_with_another_key_is_rejected(push_service, vapid_keys):
    subscription = push_service.new_subscription()

    status, message = send_status(subscription, make_vapid_keys())

    assert status == 403
    assert f"restricted to application server key {vapid_keys.public_key}" in message
    assert push_service.received == []


def test_service_without_an_expected_key_accepts_any_valid_key():
    with PushService() as service:
        subscription = service.new_subscription()

        assert send(subscription, make_vapid_keys()).status_code == 201
        assert len(service.received) == 1


def test_signature_must_verify_with_the_announced_key(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    # Signed with a stranger's key but announcing the expected key k.
    forged = vapid_authorization(
        make_vapid_keys(), valid_claims(push_service), public_key=vapid_keys.public_key
    )

    response = post(
        subscription["endpoint"],
        body=encrypt(subscription, b"hi"),
        headers=raw_headers(push_service, vapid_keys, Authorization=forged),
    )

    assert response.status_code == 403
    assert "signature does not verify" in response.json()["message"]
    assert push_service.received == []


@pytest.mark.parametrize("exp_ahead", [3600, 3600.5, 24 * 3600 - 5])
def test_a_correct_hand_signed_jwt_is_accepted(push_service, vapid_keys, exp_ahead):
    """The control for the rejections below: the same helper, with valid claims, gets a 201."""
    subscription = push_service.new_subscription()
    exp = time.time() // 1 + exp_ahead
    authorization = vapid_authorization(vapid_keys, valid_claims(push_service, exp=exp))

    response = post(
        subscription["endpoint"],
        body=encrypt(subscription, b"hi"),
        headers=raw_headers(push_service, vapid_keys, Authorization=authorization),
    )

    assert response.status_code == 201, response.text
    assert push_service.received[0].payload == b"hi"
    assert push_service.received[0].claims["exp"] == exp


@pytest.mark.parametrize(
    ("changes", "explanation"),
    [
        ({"exp": -60}, "expired"),
        ({"exp": 24 * 3600 + 120}, "at most 24 hours"),
        ({"aud": "http://127.0.0.1:1"}, "is not this push service's origin"),
        ({"aud": "https://push.example.net"}, "is not this push service's origin"),
        ({"sub": None}, "must be a mailto: or https: contact URI"),
        ({"sub": "ops@example.com"}, "must be a mailto: or https: contact URI"),
        ({"exp": "tomorrow"}, "is not a NumericDate"),
        ({"exp": True}, "is not a NumericDate"),
    ],
)
def test_invalid_claims_are_rejected(push_service, vapid_keys, changes, explanation):
    subscription = push_service.new_subscription()
    jwt_claims = valid_claims(push_service)
    for name, value in changes.items():
        if value is None:
            del jwt_claims[name]
        elif name == "exp" and type(value) is int:
            jwt_claims["exp"] = int(time.time()) + value
        else:
            jwt_claims[name] = value

    response = post(
        subscription["endpoint"],
        body=encrypt(subscription, b"hi"),
        headers=raw_headers(
            push_service, vapid_keys, Authorization=vapid_authorization(vapid_keys, jwt_claims)
        ),
    )

    assert response.status_code == 403
    assert explanation in response.json()["message"]
    assert push_service.received == []


def test_expired_jwt_from_py_vapid_is_rejected(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    expired = vapid_keys.vapid.sign(valid_claims(push_service, exp=int(time.time()) - 1))

    response = post(
        subscription["endpoint"],
        body=encrypt(subscription, b"hi"),
        headers=raw_headers(push_service, vapid_keys, **expired),
    )

    assert response.status_code == 403
    assert "expired" in response.json()["message"]


def test_jwt_must_be_es256(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    authorization = vapid_authorization(
        vapid_keys, valid_claims(push_service), header={"typ": "JWT", "alg": "HS256"}
    )

    response = post(
        subscription["endpoint"],
        body=encrypt(subscription, b"hi"),
        headers=raw_headers(push_service, vapid_keys, Authorization=authorization),
    )

    assert response.status_code == 403
    assert "requires ES256" in response.json()["message"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer abc", "vapid t=abc", "vapid k=BAAA"],
    ids=["missing", "other-scheme", "no-key", "no-token"],
)
def test_missing_or_malformed_authorization_is_401(push_service, vapid_keys, authorization):
    subscription = push_service.new_subscription()

    response = post(
        subscription["endpoint"],
        body=encrypt(subscription, b"hi"),
        headers=raw_headers(push_service, vapid_keys, Authorization=authorization),
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "vapid"
    assert push_service.received == []


def test_draft_webpush_scheme_of_vapid01_is_401(push_service, vapid_keys):
    """A py_vapid Vapid01 signer sends the pre-RFC 'WebPush <jwt>' + Crypto-Key headers."""
    subscription = push_service.new_subscription()
    legacy = Vapid01.from_string(vapid_keys.private_key)

    with pytest.raises(WebPushException) as caught:
        webpush(subscription, data="hi", vapid_private_key=legacy, vapid_claims=claims())

    assert caught.value.status_code == 401
    assert "only RFC 8292" in caught.value.response.json()["message"]


# --- RFC 8030 headers and encoding ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "explanation"),
    [
        ({"TTL": None}, "missing TTL header"),
        ({"TTL": "-1"}, "is not a non-negative integer"),
        ({"TTL": "soon"}, "is not a non-negative integer"),
        ({"Urgency": "urgent"}, "is not one of very-low, low, normal, high"),
        ({"Topic": "spring sale"}, "1-32 base64url characters"),
        ({"Topic": "t" * 33}, "1-32 base64url characters"),
    ],
)
def test_invalid_push_headers_are_400(push_service, vapid_keys, changes, explanation):
    subscription = push_service.new_subscription()

    response = post(
        subscription["endpoint"],
        body=encrypt(subscription, b"hi"),
        headers=raw_headers(push_service, vapid_keys, **changes),
    )

    assert response.status_code == 400
    assert explanation in response.json()["message"]
    assert push_service.received == []


def test_urgency_and_topic_from_pywebpush_are_checked(push_service, vapid_keys):
    subscription = push_service.new_subscription()

    status, message = send_status(subscription, vapid_keys, headers={"Urgency": "asap"})

    assert status == 400
    assert "Urgency" in message


def test_legacy_aesgcm_encoding_is_415(push_service, vapid_keys):
    subscription = push_service.new_subscription()

    status, message = send_status(subscription, vapid_keys, content_encoding="aesgcm")

    assert status == 415
    assert "only aes128gcm" in message
    assert push_service.received == []


def tamper(body: bytes, offset: int) -> bytes:
    return body[:offset] + bytes([body[offset] ^ 0x01]) + body[offset + 1 :]


@pytest.mark.parametrize(
    ("change", "explanation"),
    [
        (lambda body: tamper(body, 0), "authentication failed"),  # salt
        (lambda body: body[:16] + (32).to_bytes(4, "big") + body[20:], "a single record"),
        (lambda body: tamper(body, 20), "idlen"),
        (lambda body: tamper(body, 40), "keyid is not a P-256 public key"),  # sender key
        (lambda body: tamper(body, 90), "authentication failed"),  # ciphertext
        (lambda body: tamper(body, len(body) - 1), "authentication failed"),  # tag
        (lambda body: body[:-1], "authentication failed"),
        (lambda body: body[:50], "shorter than the aes128gcm header"),
    ],
    ids=["salt", "record-size", "idlen", "sender-key", "ciphertext", "tag", "truncated", "header"],
)
def test_tampered_body_is_400(push_service, vapid_keys, change, explanation):
    subscription = push_service.new_subscription()
    body = encrypt(subscription, b'{"title": "Spring sale"}')

    response = post(
        subscription["endpoint"],
        body=change(body),
        headers=raw_headers(push_service, vapid_keys),
    )

    assert response.status_code == 400
    assert explanation in response.json()["message"]
    assert push_service.received == []


def encrypt_record(subscription: dict, record: bytes) -> bytes:
    """Encrypt one record exactly as given (payload, delimiter, padding): RFC 8291 by hand."""
    ua_public = b64urldecode(subscription["keys"]["p256dh"].encode())
    auth_secret = b64urldecode(subscription["keys"]["auth"].encode())
    sender = ec.generate_private_key(ec.SECP256R1())
    sender_public = sender.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    ecdh_secret = sender.exchange(
        ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    )
    salt = os.urandom(16)

    def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)

    ikm = hkdf(ecdh_secret, auth_secret, b"WebPush: info\x00" + ua_public + sender_public, 32)
    cek = hkdf(ikm, salt, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = hkdf(ikm, salt, b"Content-Encoding: nonce\x00", 12)
    header = salt + (4096).to_bytes(4, "big") + bytes([len(sender_public)]) + sender_public
    return header + AESGCM(cek).encrypt(nonce, record, None)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (b"hi\x02", 201),
        (b"hi\x02\x00\x00\x00\x00", 201),  # zero padding after the delimiter is allowed
        (b"hi\x01", 400),  # the delimiter of a record that is not the last one
        (b"hi", 400),  # no delimiter at all
        (b"hi\x02\x00\x07", 400),  # padding must be zeros
    ],
)
def test_padding_delimiter_is_checked(push_service, vapid_keys, record, expected):
    subscription = push_service.new_subscription()

    response = post(
        subscription["endpoint"],
        body=encrypt_record(subscription, record),
        headers=raw_headers(push_service, vapid_keys),
    )

    assert response.status_code == expected, response.text
    assert [m.payload for m in push_service.received] == ([b"hi"] if expected == 201 else [])


def test_body_encrypted_for_another_subscription_is_400(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    other = push_service.new_subscription()

    response = post(
        subscription["endpoint"],
        body=encrypt(other, b"hi"),
        headers=raw_headers(push_service, vapid_keys),
    )

    assert response.status_code == 400
    assert "authentication failed" in response.json()["message"]


# --- routing -------------------------------------------------------------------------------------


def test_unknown_endpoint_is_404(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    unknown = {**subscription, "endpoint": f"{push_service.origin}/push/unknown"}

    assert send_status(unknown, vapid_keys)[0] == 404
    assert post(f"{push_service.origin}/elsewhere", headers={}).status_code == 404
    assert push_service.requests_count == 2


def test_chunked_body_is_411(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    body = encrypt(subscription, b"hi")

    response = post(
        subscription["endpoint"],
        body=iter([body[:50], body[50:]]),  # requests streams an iterator with chunked encoding
        headers=raw_headers(push_service, vapid_keys),
    )

    assert response.status_code == 411
    assert push_service.received == []


def test_only_post_is_allowed(push_service):
    subscription = push_service.new_subscription()

    response = requests.get(subscription["endpoint"], timeout=10)

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


# --- programmed answers --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410, 500])
def test_programmed_failure_for_one_endpoint(push_service, vapid_keys, status):
    failing = push_service.new_subscription()
    healthy = push_service.new_subscription()
    push_service.respond(failing["endpoint"], status=status)

    assert send_status(failing, vapid_keys)[0] == status
    assert send_status(failing, vapid_keys)[0] == status
    assert send_status(healthy, vapid_keys) == (201, "")
    assert [m.endpoint for m in push_service.received] == [healthy["endpoint"]]

    push_service.respond(failing["endpoint"], status=201)
    assert send_status(failing, vapid_keys) == (201, "")


def test_programmed_failure_for_the_next_requests_only(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    push_service.respond(subscription["endpoint"], status=500, times=2)

    statuses = [send_status(subscription, vapid_keys)[0] for _ in range(3)]

    assert statuses == [500, 500, 201]
    assert len(push_service.received) == 1


def test_429_with_retry_after_for_every_endpoint(push_service, vapid_keys):
    first, second = push_service.new_subscription(), push_service.new_subscription()
    push_service.respond(None, status=429, retry_after=30, times=2)

    with pytest.raises(WebPushException) as caught:
        send(first, vapid_keys)
    assert (caught.value.status_code, caught.value.retry_after) == (429, "30")
    with pytest.raises(WebPushException) as caught:
        send(second, vapid_keys)
    assert (caught.value.status_code, caught.value.retry_after) == (429, "30")

    response = send(first, vapid_keys)
    assert response.status_code == 201
    assert "Retry-After" not in response.headers


def test_endpoint_programming_wins_over_the_global_one(push_service, vapid_keys):
    gone = push_service.new_subscription()
    other = push_service.new_subscription()
    push_service.respond(None, status=500)
    push_service.respond(gone["endpoint"], status=410)

    assert send_status(gone, vapid_keys)[0] == 410
    assert send_status(other, vapid_keys)[0] == 500


def test_malformed_request_gets_its_own_error_before_a_programmed_one(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    push_service.respond(None, status=500, times=1)

    response = post(
        subscription["endpoint"],
        body=encrypt(subscription, b"hi"),
        headers=raw_headers(push_service, vapid_keys, TTL=None),
    )

    assert response.status_code == 400
    assert send_status(subscription, vapid_keys)[0] == 500  # the programmed answer is still due


def test_slow_answer_still_delivers(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    push_service.respond(subscription["endpoint"], status=201, delay=0.3)

    started = time.monotonic()
    assert send(subscription, vapid_keys).status_code == 201

    assert time.monotonic() - started >= 0.3
    assert len(push_service.received) == 1
    [record] = push_service.requests
    assert (record.status, record.delayed) == (201, 0.3)


def test_slow_failure_and_client_timeout(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    push_service.respond(subscription["endpoint"], status=503, retry_after=5, delay=0.2, times=1)
    started = time.monotonic()
    with pytest.raises(WebPushException) as caught:
        send(subscription, vapid_keys)
    assert time.monotonic() - started >= 0.2
    assert (caught.value.status_code, caught.value.retry_after) == (503, "5")

    push_service.respond(subscription["endpoint"], status=201, delay=30)
    with pytest.raises(requests.exceptions.ReadTimeout):
        webpush(
            subscription,
            data="hi",
            vapid_private_key=vapid_keys.private_key,
            vapid_claims=claims(),
            timeout=0.2,
        )

    deadline = time.monotonic() + 10  # on a busy machine the service may read it late
    while push_service.requests_count < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    push_service.stop()  # interrupts the pending 30 s answer
    assert time.monotonic() - started < 5
    # The service took the message when it arrived: the client's timeout does not unsend it.
    assert len(push_service.received) == 1
    # The handler records the request once its interrupted wait returns, in its own thread.
    deadline = time.monotonic() + 5
    while len(push_service.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    *_, record = push_service.requests  # after the 503
    assert (record.status, record.delivered, record.payload) == (None, True, b"hi")


def test_respond_rejects_what_it_cannot_do(push_service):
    subscription = push_service.new_subscription()

    with pytest.raises(ValueError, match="not an endpoint of this push service"):
        push_service.respond(f"{push_service.origin}/push/nope", status=410)
    with pytest.raises(ValueError, match="status"):
        push_service.respond(None, status=302)
    with pytest.raises(ValueError, match="times"):
        push_service.respond(None, status=500, times=0)
    with pytest.raises(ValueError, match="retry_after"):
        push_service.respond(subscription["endpoint"], status=201, retry_after=3)


# --- outages, concurrency, housekeeping ----------------------------------------------------------


def test_set_down_refuses_connections_until_up_again(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    session = requests.Session()
    origin = push_service.origin
    assert send(subscription, vapid_keys, requests_session=session).status_code == 201

    push_service.set_down(True)
    with pytest.raises(requests.exceptions.ConnectionError):
        send(subscription, vapid_keys, requests_session=session)
    with pytest.raises(requests.exceptions.ConnectionError):
        send(subscription, vapid_keys)

    push_service.set_down(False)
    assert push_service.origin == origin
    assert send(subscription, vapid_keys, requests_session=session).status_code == 201
    assert len(push_service.received) == 2
    assert push_service.requests_count == 2
    session.close()


def test_200_messages_from_20_threads_are_all_received(push_service, vapid_keys):
    subscriptions = [push_service.new_subscription() for _ in range(20)]

    def sender(thread: int) -> list[int]:
        statuses = []
        with requests.Session() as session:
            for n in range(10):
                response = send(
                    subscriptions[(thread + n) % 20],
                    vapid_keys,
                    json.dumps({"thread": thread, "n": n}),
                    requests_session=session,
                )
                statuses.append(response.status_code)
        return statuses

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(sender, range(20)))

    assert results == [[201] * 10] * 20
    received = push_service.received
    assert sorted((m.json()["thread"], m.json()["n"]) for m in received) == [
        (thread, n) for thread in range(20) for n in range(10)
    ]
    assert all(
        m.endpoint == subscriptions[(m.json()["thread"] + m.json()["n"]) % 20]["endpoint"]
        for m in received
    )
    assert push_service.requests_count == 200
    assert push_service.connections_count == 20


def test_clear_forgets_messages_and_counters_but_not_subscriptions(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    push_service.respond(subscription["endpoint"], status=410)
    send_status(subscription, vapid_keys)
    push_service.respond(subscription["endpoint"], status=201)
    send(subscription, vapid_keys)

    push_service.clear()

    assert (push_service.received, push_service.requests_count) == ([], 0)
    assert push_service.connections_count == 0
    assert send(subscription, vapid_keys).status_code == 201
    assert len(push_service.received) == 1


def test_stop_closes_idle_keep_alive_connections():
    service = PushService().start()
    subscription = service.new_subscription()
    session = requests.Session()
    keys = make_vapid_keys()
    assert send(subscription, keys, requests_session=session).status_code == 201

    started = time.monotonic()
    service.stop()
    service.stop()  # idempotent

    assert time.monotonic() - started < 2
    with pytest.raises(requests.exceptions.ConnectionError):
        send(subscription, keys, requests_session=session)
    session.close()


def test_a_service_that_is_down_stops_cleanly():
    service = PushService().start()
    subscription = service.new_subscription()
    service.set_down(True)
    service.set_down(True)  # already down: nothing changes

    started = time.monotonic()
    service.stop()

    assert time.monotonic() - started < 2
    with pytest.raises(requests.exceptions.ConnectionError):
        send(subscription, make_vapid_keys())


# --- fault modes (what the delivery fault tests program) ---------------------------------------


def test_a_dropped_connection_after_the_request_was_read_still_delivers(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    other = push_service.new_subscription()
    push_service.respond(subscription["endpoint"], status=201, drop=True)

    with pytest.raises(requests.exceptions.ConnectionError):
        send(subscription, vapid_keys)
    assert send(other, vapid_keys).status_code == 201

    # The service took it before the connection went away: the sender cannot know.
    assert push_service.received_counts() == {subscription["endpoint"]: 1, other["endpoint"]: 1}
    dropped, answered = push_service.requests
    assert (dropped.status, dropped.delivered, dropped.payload) == (None, True, b"hello")
    assert (answered.status, answered.delivered) == (201, True)


def test_a_dropped_connection_with_an_error_status_delivers_nothing(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    push_service.respond(None, status=500, drop=True, times=1)

    with pytest.raises(requests.exceptions.ConnectionError):
        send(subscription, vapid_keys)
    assert push_service.received == []
    assert send(subscription, vapid_keys).status_code == 201
    assert [r.status for r in push_service.requests] == [None, 201]


def test_retry_after_in_seconds_or_as_an_http_date(push_service, vapid_keys):
    from email.utils import parsedate_to_datetime

    subscription = push_service.new_subscription()
    push_service.respond(None, status=429, retry_after=1, times=1)
    with pytest.raises(WebPushException) as caught:
        send(subscription, vapid_keys)
    assert (caught.value.status_code, caught.value.response.headers["Retry-After"]) == (429, "1")

    push_service.respond(None, status=429, retry_after=120, retry_after_date=True, times=1)
    before = time.time()
    with pytest.raises(WebPushException) as caught:
        send(subscription, vapid_keys)
    header = caught.value.response.headers["Retry-After"]
    assert header.endswith(" GMT")
    assert before + 118 <= parsedate_to_datetime(header).timestamp() <= time.time() + 121
    assert push_service.received == []


def test_a_fraction_of_requests_fails_repeatably(vapid_keys):
    def statuses(seed: int) -> list[int]:
        with PushService(vapid_public_key=vapid_keys.public_key) as service:
            subscription = service.new_subscription()
            service.respond(None, status=500, fraction=0.3, seed=seed)
            with requests.Session() as session:
                return [
                    send_status(subscription, vapid_keys, requests_session=session)[0]
                    for _ in range(60)
                ]

    first = statuses(7)
    assert first == statuses(7)
    assert set(first) == {201, 500}
    assert 6 <= first.count(500) <= 30  # 30% of 60, loosely


def test_programming_that_ends_by_itself(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    push_service.respond(None, status=429, retry_after=1, for_seconds=0.5)
    assert send_status(subscription, vapid_keys)[0] == 429
    time.sleep(0.6)
    assert send_status(subscription, vapid_keys)[0] == 201


def test_down_for_refuses_connections_then_comes_back_by_itself(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    push_service.down_for(0.5)
    assert push_service.is_down
    with pytest.raises(requests.exceptions.ConnectionError):
        send(subscription, vapid_keys)
    deadline = time.monotonic() + 5
    while push_service.is_down and time.monotonic() < deadline:
        time.sleep(0.05)
    assert send(subscription, vapid_keys).status_code == 201

    push_service.down_for(30)
    push_service.set_down(False)  # takes over: the pending return is cancelled
    assert send(subscription, vapid_keys).status_code == 201
    push_service.down_for(30)
    push_service.stop()  # does not wait for the 30 s


def test_requests_record_the_target_as_written(push_service, vapid_keys):
    subscription = push_service.new_subscription()
    target = "/push/x?a=%2F&b=~!$'()*+,;=:@"
    response = post(f"{push_service.origin}{target}", headers=raw_headers(push_service, vapid_keys))
    assert response.status_code == 404
    [record] = push_service.requests
    assert (record.method, record.target, record.status) == ("POST", target, 404)
    assert record.endpoint == f"{push_service.origin}{target}"
    assert not record.delivered and subscription
