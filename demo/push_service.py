"""A real Web Push service on 127.0.0.1, for the test suite and the demo.

The tests import it as ``tests.push_service``; ``make run`` serves `DemoPushService` (below) with
``manage.py run_demo_push_service`` so the demo shop's campaigns are delivered without any network.

`PushService` is an HTTP/1.1 server (``ThreadingHTTPServer``, one thread per connection, keep-alive)
that plays both ends a browser subscription involves: the push service that an application server
POSTs to (RFC 8030), and the user agent that holds the subscription's private key and decrypts the
message (RFC 8291). Nothing is mocked: pywebpush, requests/aiohttp and the crypto run for real, so
a test proves that what the application sends would be accepted and could be read by a browser.

Quick start (the ``push_service`` and ``vapid_keys`` fixtures in tests/notifications/conftest.py
do the first two lines for you)::

    with PushService(vapid_public_key=vapid_keys.public_key) as service:
        subscription = service.new_subscription()    # what PushSubscription.toJSON() gives
        webpush(subscription, data='{"title": "Sale"}', ttl=3600,
                vapid_private_key=vapid_keys.private_key,
                vapid_claims={"sub": "mailto:ops@example.com"})
        [message] = service.messages_for(subscription["endpoint"])
        assert message.json() == {"title": "Sale"}

API
---
``PushService(*, vapid_public_key=None, port=0, tls=False, tls_hostnames=(HOST, "localhost"))``
    ``vapid_public_key`` is the application server key (base64url, uncompressed P-256 point, the
    ``applicationServerKey`` a browser would subscribe with). When given, every subscription is
    "restricted" (RFC 8292 section 4.2): a JWT signed with another key is answered 403. When
    ``None`` any key is accepted, but a valid VAPID JWT is still required. ``port`` 0 (the
    default) picks a free port (``HOST`` is 127.0.0.1). ``tls=True`` serves HTTPS, as every
    real push service does: ``start()`` makes a throwaway CA and a server certificate it signs
    for ``tls_hostnames`` (IP addresses and DNS names, as subjectAltName entries); a client
    verifies the service by trusting ``ca_file``.
``start() -> PushService``, ``stop()``, and ``with PushService() as service:``
    Binds 127.0.0.1 on ``port`` and serves from a background thread. ``stop()`` closes open
    keep-alive connections too, so it never hangs; it is idempotent.
``origin: str``
    ``"http://127.0.0.1:PORT"`` (``https://`` with ``tls``); the ``aud`` every JWT must carry.
``ca_file: str``
    With ``tls``, the path of the throwaway CA's certificate (PEM) while the service runs: give it
    to the client (``PUSH_CA_FILE``, ``requests``' ``verify=``) to trust the service. A new CA
    is made at each ``start()``; no one else trusts it.
``new_subscription() -> dict``
    ``{"endpoint": origin + "/push/<random id>", "expirationTime": None,
    "keys": {"p256dh": ..., "auth": ...}}`` (the shape of ``PushSubscription.toJSON()``). The
    service keeps the private key and auth secret to decrypt what is sent to it.
``received: list[Received]`` and ``messages_for(endpoint) -> list[Received]``
    Snapshots (copies), in arrival order, of the messages the service took for delivery: those
    programmed to 201, recorded **when the request arrives**, before any programmed delay or
    dropped connection, so a message whose answer the client never saw (it timed out, the
    connection broke) is still received, as with a real push service. A `Received` has
    ``endpoint``, ``payload`` (decrypted bytes), ``json()``, ``headers`` (every request header,
    case-insensitive: ``headers["TTL"]``), ``ttl`` (int), ``urgency`` ("normal" when absent),
    ``topic`` (or None), ``claims`` (the JWT claims: ``aud``, ``exp``, ``sub``),
    ``vapid_public_key`` (the ``k`` it was signed with), ``location`` (the Location answered) and
    ``received_at`` (aware UTC datetime of the request's arrival, before any programmed delay).
``received_counts() -> Counter[str]`` and ``duplicates() -> dict[str, int]``
    How many messages each endpoint was delivered; the endpoints delivered more than one.
``requests: list[RequestRecord]``
    Every request the service read in full (any method, any answer), in the order they were
    finished with: ``method``, ``target`` (the request target exactly as on the request line),
    ``endpoint`` (``origin + target``), ``status`` (the answer, or None when the connection was
    dropped or the service stopped before answering), ``delivered`` (in ``received``),
    ``payload`` (decrypted, when delivered), ``at`` (arrival, aware UTC) and ``delayed`` (the
    seconds it waited before answering: past the client's timeout, nobody read the answer).
``respond(endpoint_or_None, *, status, times=None, retry_after=None, delay=0.0, drop=False,
retry_after_date=False, fraction=None, seed=None, for_seconds=None)``
    Programs the answer for one endpoint (a ``new_subscription()`` endpoint) or, with ``None``, for
    every endpoint; an endpoint's own programming wins over the global one. ``status`` is 201 or
    400-599. ``times=N`` applies to the next N requests only, then the service answers 201 again;
    ``times=None`` until reprogrammed. ``retry_after`` (seconds) adds a ``Retry-After`` header
    (429, 503...). ``delay`` makes the service wait that many seconds before answering (a slow
    service; with ``status=201`` the message is delivered when it arrives, so a delay longer
    than the client's timeout is a request that reached the service and whose answer was lost).
    ``drop=True`` reads the request in full, then closes the connection without answering (with
    ``status=201`` the message is delivered: the connection broke after the service accepted
    it; with an error status it is not). ``retry_after_date=True`` sends ``Retry-After`` as an
    HTTP date ``retry_after`` seconds ahead instead of a number of seconds. ``fraction=0.3``
    applies the answer to each request with that probability (the others get normal service;
    ``seed`` makes the draw repeatable). ``for_seconds`` ends the programming by itself that long
    after the first request it answered (a 30 s storm of 429, however long the client takes to
    start sending). Each call replaces the previous programming for the same
    target; ``respond(target, status=201)`` restores normal service. Programmed answers apply
    to requests that pass validation: a malformed request still gets its own 4xx, so a failure
    test also proves the request itself was right. A message programmed to anything but 201 is
    not delivered (not in ``received``).
``set_down(down: bool)``
    Simulates an outage by **refusing connections**: the listening socket is closed (the port
    stays reserved, so the origin does not change) and open keep-alive connections are dropped.
    Clients see a connection error (``requests.ConnectionError``,
    ``aiohttp.ClientConnectorError``), not an HTTP status; to test a 503 use
    ``respond(None, status=503, retry_after=...)``. ``set_down(False)`` listens again on the same
    port.
``down_for(seconds)``
    ``set_down(True)`` now, and ``set_down(False)`` by itself ``seconds`` later (an outage of
    known length while the test watches the client). ``is_down`` says which state it is in.
``requests_count: int``
    HTTP requests that reached the service (any method, any answer).
``connections_count: int``
    TCP connections accepted (with ``tls``, whether or not the handshake then succeeds); shows
    whether a client reuses pooled keep-alive connections.
``clear()``
    Forgets received messages and requests and resets both counters. Subscriptions, programmed
    answers and the up/down state are kept.

What a request must look like (otherwise the answer is an error with a JSON body
``{"code", "error", "message"}`` naming the problem):

- ``POST`` (else 405) to a ``/push/<id>`` endpoint of this service (else 404), with
  ``Content-Length`` (no chunked bodies: 411).
- ``Authorization: vapid t=<JWT>, k=<key>`` (RFC 8292). Absent, or another scheme such as the
  draft ``WebPush <JWT>`` that a ``py_vapid.Vapid01`` instance signs: 401 with
  ``WWW-Authenticate: vapid``. Sign with ``py_vapid.Vapid`` (= ``Vapid02``) or give pywebpush the
  private key string. The JWT must be ES256 and verify with ``k``; ``k`` must be the expected key
  when the service has one; ``aud`` must equal ``origin``; ``exp`` must be in the future and at
  most 24 h ahead; ``sub`` must be a ``mailto:`` or ``https:`` URI. Otherwise 403.
- ``TTL`` (RFC 8030 section 5.2, required): a non-negative integer, else 400. ``Urgency``, if
  sent: very-low, low, normal or high, else 400. ``Topic``, if sent: 1-32 base64url characters,
  else 400.
- A body needs ``Content-Encoding: aes128gcm`` (else 415) and at most 4096 octets (else 413;
  RFC 8291 section 4: 4096 octets of body leave 3993 octets of plaintext). A message without a
  body (a "tickle") is accepted and delivered with ``payload == b""``.
- The body must decrypt per RFC 8291/8188 with the subscription's keys: one record, ``idlen`` 65
  with the sender's public key as ``keyid``, a valid AES-GCM tag, the 0x02 padding delimiter.
  Otherwise 400: a real push service cannot read the body and would accept it, then the browser
  would drop the message silently; failing loudly here is what a test needs.
- Success: 201 with a ``Location`` header (``origin + "/message/<id>"``) and an empty body.

Every response carries ``Content-Length``; connections stay open (HTTP/1.1 keep-alive) unless the
client asks to close or the request could not be read.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import functools
import hashlib
import http.client
import ipaddress
import json
import logging
import random
import re
import secrets
import shutil
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DemoPushService",
    "PushService",
    "Received",
    "RequestRecord",
    "decrypt_aes128gcm",
    "demo_endpoint",
    "demo_endpoint_base",
    "demo_subscription_keys",
]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
MAX_BODY = 4096
MAX_JWT_LIFETIME = 24 * 60 * 60
URGENCIES = ("very-low", "low", "normal", "high")
# Bodies up to this size are read (and discarded) before an error answer, so the connection stays
# usable; a client announcing more is answered 413 and disconnected.
_MAX_DRAIN = 1024 * 1024
_PATH_RE = re.compile(r"^/push/([A-Za-z0-9_-]+)$")
_DIGITS_RE = re.compile(r"^[0-9]{1,10}$")
_TOPIC_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_SUB_RE = re.compile(r"^(mailto:.+|https://.+)$", re.IGNORECASE)
_SENDER_KEY_LEN = 65
_VERIFIED_TOKENS_MAX = 4096
_HEADER_LEN = 16 + 4 + 1 + _SENDER_KEY_LEN
_TAG_LEN = 16


def _b64decode(value: str | bytes) -> bytes:
    """Decode base64url with or without padding; raise ValueError on anything else."""
    if isinstance(value, str):
        value = value.encode("ascii", "strict")
    value = value.rstrip(b"=")
    if not re.fullmatch(rb"[A-Za-z0-9_-]*", value):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _hkdf(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


class DecryptionError(ValueError):
    """The body is not an RFC 8291 message this subscription can read."""


def decrypt_aes128gcm(
    body: bytes, *, private_key: ec.EllipticCurvePrivateKey, auth_secret: bytes
) -> bytes:
    """Decrypt a Web Push message body (RFC 8291 over RFC 8188 aes128gcm) as a user agent does."""
    if len(body) < _HEADER_LEN:
        raise DecryptionError(f"body of {len(body)} octets is shorter than the aes128gcm header")
    salt = body[:16]
    record_size = int.from_bytes(body[16:20], "big")
    idlen = body[20]
    if idlen != _SENDER_KEY_LEN:
        raise DecryptionError(
            f"idlen is {idlen}: RFC 8291 puts the 65-octet sender public key in keyid"
        )
    sender_key_bytes = body[21:_HEADER_LEN]
    ciphertext = body[_HEADER_LEN:]
    if record_size < _TAG_LEN + 2:
        raise DecryptionError(f"record size {record_size} is below the RFC 8188 minimum of 18")
    if len(ciphertext) < _TAG_LEN + 1:
        raise DecryptionError("the record is shorter than a padding delimiter and a tag")
    if len(ciphertext) > record_size:
        raise DecryptionError(
            f"{len(ciphertext)} octets of records with rs={record_size}: RFC 8291 requires "
            "a single record"
        )
    try:
        sender_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_key_bytes)
    except ValueError as exc:
        raise DecryptionError("keyid is not a P-256 public key") from exc

    ecdh_secret = private_key.exchange(ec.ECDH(), sender_key)
    key_info = b"WebPush: info\x00" + _public_bytes(private_key.public_key()) + sender_key_bytes
    ikm = _hkdf(ecdh_secret, salt=auth_secret, info=key_info, length=32)
    cek = _hkdf(ikm, salt=salt, info=b"Content-Encoding: aes128gcm\x00", length=16)
    nonce = _hkdf(ikm, salt=salt, info=b"Content-Encoding: nonce\x00", length=12)
    try:
        # A single record has sequence number 0, so its nonce is the derived nonce itself.
        plaintext = AESGCM(cek).decrypt(nonce, ciphertext, None)
    except InvalidTag as exc:
        raise DecryptionError(
            "AES-GCM authentication failed (tampered body, or encrypted for other keys)"
        ) from exc
    unpadded = plaintext.rstrip(b"\x00")
    if not unpadded or unpadded[-1] != 0x02:
        raise DecryptionError("the record does not end with the 0x02 last-record delimiter")
    return unpadded[:-1]


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive request headers."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = {name.lower(): (name, value) for name, value in items}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass(frozen=True)
class Received:
    """A push message the service accepted (201) and decrypted."""

    endpoint: str
    payload: bytes
    headers: Headers
    ttl: int
    urgency: str
    topic: str | None
    claims: dict[str, Any]
    vapid_public_key: str
    location: str
    received_at: datetime

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass(frozen=True)
class RequestRecord:
    """One request the service read in full, whatever became of it (see ``requests``)."""

    method: str
    # The request target exactly as it came on the request line (``/push/<id>?...``).
    target: str
    endpoint: str
    # The answer the service gave, or None when it dropped the connection instead of answering
    # or stopped while a delayed answer was pending.
    status: int | None
    # Whether the service took the message for delivery (it is then in ``received``), answered
    # or not: a timed-out or dropped request may well have been delivered.
    delivered: bool
    payload: bytes | None
    at: datetime
    # Seconds the service waited before answering (a programmed delay), 0.0 for none.
    delayed: float = 0.0


@dataclass
class _Subscription:
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey | None  # None: the service cannot read its messages
    auth_secret: bytes


@dataclass
class _Rule:
    status: int
    remaining: int | None
    retry_after: int | None
    delay: float
    drop: bool = False
    retry_after_date: bool = False
    # Applies to each request with this probability (None: to every request).
    fraction: float | None = None
    random: random.Random | None = None
    # Seconds the rule lasts from the first request it answers (None: until reprogrammed),
    # and the time.monotonic() at which it ends once that request came.
    duration: float | None = None
    until: float | None = None
    # What the answer's problem document says (a test's programmed failure unless told).
    message: str = "programmed failure (PushService.respond)"


@dataclass
class _Answer:
    status: int
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    delivery: Received | None = None
    drop: bool = False


class _Reject(Exception):
    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


_UNAUTHORIZED = (("WWW-Authenticate", "vapid"),)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self, push_service: PushService, port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.push_service = push_service
        self.tls = tls
        super().__init__((HOST, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), a DNS call for nothing.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.socket.getsockname()[:2]

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.tls is not None:
            # The handshake happens in the connection's thread (_Handler.setup): done here, one
            # slow or silent client would stop the service from accepting anyone else.
            connection = self.tls.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            return  # the client went away; nothing to report
        if isinstance(error, ssl.SSLError):
            # A client that does not trust the certificate, or speaks plain HTTP to the TLS
            # port: its own error says what happened.
            logger.debug("push service: TLS handshake with %s failed: %s", client_address, error)
            return
        logger.exception("push service: error while serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalPushService/1.0"
    disable_nagle_algorithm = True
    # An idle keep-alive connection is closed after this many seconds (clients reconnect).
    timeout = 60
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.push_service._connection_opened(self.connection)
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()  # within `timeout`, set by super().setup()
            except BaseException:
                # finish() does not run when setup() fails; the server closes the socket.
                self.server.push_service._connection_closed(self.connection)
                raise

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.push_service._connection_closed(self.connection)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _serve(self) -> None:
        service = self.server.push_service
        service._count_request()
        body = self._read_body()
        if body is None:
            return
        arrived = datetime.now(UTC)
        answer = service._answer(self.command, self.path, self.headers.items(), body)
        # Taken for delivery on arrival, like a real service: a client that times out waiting
        # for the answer, or a connection that breaks before it, does not unsend the message.
        if answer.delivery is not None:
            service._deliver(answer.delivery)
        stopped = bool(answer.delay) and service._stopping.wait(answer.delay)
        answered = not stopped and not answer.drop
        # Recorded before the answer goes out, so a client that has its answer finds it here.
        service._record_request(
            RequestRecord(
                method=self.command,
                target=self.path,
                endpoint=f"{service.origin}{self.path}",
                status=answer.status if answered else None,
                delivered=answer.delivery is not None,
                payload=answer.delivery.payload if answer.delivery is not None else None,
                at=arrived,
                delayed=answer.delay,
            )
        )
        if answered:
            self._send(answer)
            return
        self.close_connection = True
        if answer.drop:
            # The request was read in full; the connection goes away without an answer.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self.connection, socket.SHUT_RDWR)

    def _read_body(self) -> bytes | None:
        """Read the request body; answer and return None when it cannot be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send(_Answer(HTTPStatus.LENGTH_REQUIRED, "send the body with Content-Length"))
            return None
        raw_length = self.headers.get("Content-Length", "0").strip()
        if not _DIGITS_RE.match(raw_length):
            self.close_connection = True
            self._send(_Answer(HTTPStatus.BAD_REQUEST, f"bad Content-Length {raw_length!r}"))
            return None
        length = int(raw_length)
        if length > _MAX_DRAIN:
            self.close_connection = True
            self._send(_too_large(length))
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return None
        return body

    # Every method is counted and answered; PushService rejects all but POST with 405.
    do_POST = do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def _send(self, answer: _Answer) -> None:
        payload = b""
        if answer.status >= 400:
            payload = json.dumps(
                {
                    "code": answer.status,
                    "error": _phrase(answer.status),
                    "message": answer.message,
                }
            ).encode()
        try:
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)
        except OSError:
            # The client gave up (its timeout ran out while the service was slow, for example).
            self.close_connection = True


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _too_large(length: int) -> _Answer:
    return _Answer(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        f"body of {length} octets exceeds the {MAX_BODY}-octet limit (RFC 8291 section 4)",
    )


class PushService:
    """A real Web Push service on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        vapid_public_key: str | None = None,
        port: int = 0,
        tls: bool = False,
        tls_hostnames: Sequence[str] = (HOST, "localhost"),
    ) -> None:
        self._port = port
        self._tls = tls
        self._tls_hostnames = tuple(tls_hostnames)
        if tls and not self._tls_hostnames:
            raise ValueError("a TLS push service needs at least one host name for its certificate")
        self._tls_directory: str | None = None
        self._expected_key: bytes | None = None
        if vapid_public_key is not None:
            try:
                self._expected_key = _b64decode(vapid_public_key)
                ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self._expected_key)
            except ValueError as exc:
                raise ValueError(
                    "vapid_public_key must be a base64url uncompressed P-256 point"
                ) from exc
        self._lock = threading.Lock()
        self._subscriptions: dict[str, _Subscription] = {}
        self._rules: dict[str | None, _Rule] = {}
        self._received: list[Received] = []
        self._requests: list[RequestRecord] = []
        self._up_timer: threading.Timer | None = None
        self._down_lock = threading.Lock()
        self._verified_tokens: dict[tuple[str, str], dict[str, Any]] = {}
        self._requests_count = 0
        self._connections_count = 0
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._placeholder: socket.socket | None = None
        self._stopping = threading.Event()
        self._origin: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> PushService:
        if self._server is not None:
            raise RuntimeError("the push service is already started")
        self._stopping.clear()
        try:
            context = None
            if self._tls:
                self._tls_directory = tempfile.mkdtemp(prefix="push-service-tls-")
                context = _tls_server_context(Path(self._tls_directory), self._tls_hostnames)
            self._server = _Server(self, self._port, context)
        except BaseException:
            self._remove_tls_files()
            raise
        scheme = "https" if self._tls else "http"
        self._origin = f"{scheme}://{HOST}:{self._server.server_port}"
        self._serve_in_background()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._stopping.set()
        self._cancel_up_timer()
        if self._thread is not None:
            server.shutdown()
            self._thread.join()
            self._thread = None
        self._drop_connections()
        server.server_close()  # also waits for the connection threads
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None
        self._server = None
        self._remove_tls_files()

    def _remove_tls_files(self) -> None:
        if self._tls_directory is not None:
            shutil.rmtree(self._tls_directory, ignore_errors=True)
            self._tls_directory = None

    def __enter__(self) -> PushService:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def set_down(self, down: bool) -> None:
        self._cancel_up_timer()
        with self._down_lock:
            self._set_down(down)

    def down_for(self, seconds: float) -> None:
        """Refuse connections now and for ``seconds``, then listen again by itself."""
        if seconds <= 0:
            raise ValueError("seconds must be > 0")
        self.set_down(True)
        timer = threading.Timer(seconds, self._come_back)
        timer.daemon = True
        with self._down_lock:
            self._up_timer = timer
        timer.start()

    @property
    def is_down(self) -> bool:
        return self._placeholder is not None

    def _come_back(self) -> None:
        with self._down_lock:
            if self._up_timer is None or self._server is None:
                return  # stopped, or set_down() took over meanwhile
            self._up_timer = None
            self._set_down(False)

    def _cancel_up_timer(self) -> None:
        with self._down_lock:
            timer, self._up_timer = self._up_timer, None
        if timer is not None:
            timer.cancel()

    def _set_down(self, down: bool) -> None:
        server = self._require_server()
        if down and self._placeholder is None:
            server.shutdown()
            self._thread.join()
            self._thread = None
            port = server.server_port
            server.socket.close()
            # Keep the port bound (but not listening) so connections are refused and nothing else
            # can take the port meanwhile: endpoints handed out stay valid once the service is up.
            self._placeholder = _reusable_socket()
            self._placeholder.bind((HOST, port))
            self._drop_connections()
        elif not down and self._placeholder is not None:
            listener = _reusable_socket()
            listener.bind((HOST, server.server_port))
            listener.listen(server.request_queue_size)
            server.socket = listener
            self._placeholder.close()
            self._placeholder = None
            self._serve_in_background()

    # -- subscriptions and programming --------------------------------------------------------

    @property
    def origin(self) -> str:
        if self._origin is None:
            raise RuntimeError("start() the push service first")
        return self._origin

    @property
    def ca_file(self) -> str:
        if not self._tls:
            raise RuntimeError("the push service serves plain HTTP (PushService(tls=True) for TLS)")
        if self._tls_directory is None:
            raise RuntimeError("start() the push service first")
        return str(Path(self._tls_directory) / _CA_FILE)

    def new_subscription(self) -> dict[str, Any]:
        private_key = ec.generate_private_key(ec.SECP256R1())
        auth_secret = secrets.token_bytes(16)
        endpoint = f"{self.origin}/push/{secrets.token_urlsafe(24)}"
        with self._lock:
            self._subscriptions[endpoint] = _Subscription(endpoint, private_key, auth_secret)
        return {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {
                "p256dh": _b64encode(_public_bytes(private_key.public_key())),
                "auth": _b64encode(auth_secret),
            },
        }

    def respond(
        self,
        endpoint_or_None: str | None,
        *,
        status: int,
        times: int | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
        drop: bool = False,
        retry_after_date: bool = False,
        fraction: float | None = None,
        seed: int | None = None,
        for_seconds: float | None = None,
    ) -> None:
        with self._lock:
            known = endpoint_or_None is None or endpoint_or_None in self._subscriptions
        if not known:
            raise ValueError(f"{endpoint_or_None!r} is not an endpoint of this push service")
        if status != HTTPStatus.CREATED and not 400 <= status <= 599:
            raise ValueError(f"status must be 201 or 400-599, not {status}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        if retry_after is not None and (retry_after < 0 or status < 400):
            raise ValueError("retry_after must be >= 0 and goes with an error status")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        if retry_after_date and retry_after is None:
            raise ValueError("retry_after_date needs retry_after (seconds from now)")
        if drop and retry_after is not None:
            raise ValueError("a dropped connection carries no Retry-After")
        if fraction is not None and not 0 < fraction <= 1:
            raise ValueError("fraction must be in (0, 1]")
        if for_seconds is not None and for_seconds <= 0:
            raise ValueError("for_seconds must be > 0")
        with self._lock:
            if status == HTTPStatus.CREATED and not delay and not drop:
                self._rules.pop(endpoint_or_None, None)
            else:
                self._rules[endpoint_or_None] = _Rule(
                    status,
                    times,
                    retry_after,
                    delay,
                    drop=drop,
                    retry_after_date=retry_after_date,
                    fraction=fraction,
                    random=random.Random(seed) if fraction is not None else None,
                    duration=for_seconds,
                )

    # -- observations -------------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def messages_for(self, endpoint: str) -> list[Received]:
        with self._lock:
            return [message for message in self._received if message.endpoint == endpoint]

    def received_counts(self) -> collections.Counter[str]:
        """How many times each endpoint was delivered a message (taken for delivery)."""
        with self._lock:
            return collections.Counter(message.endpoint for message in self._received)

    def duplicates(self) -> dict[str, int]:
        """The endpoints delivered more than one message, with their count."""
        return {endpoint: n for endpoint, n in self.received_counts().items() if n > 1}

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def requests_count(self) -> int:
        with self._lock:
            return self._requests_count

    @property
    def connections_count(self) -> int:
        with self._lock:
            return self._connections_count

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
            self._requests.clear()
            self._requests_count = 0
            self._connections_count = 0

    # -- request handling (called from the connection threads) --------------------------------

    def _answer(
        self, method: str, path: str, header_items: list[tuple[str, str]], body: bytes
    ) -> _Answer:
        try:
            return self._accept(method, path, Headers(header_items), body)
        except _Reject as reject:
            return _Answer(reject.status, reject.message, reject.headers)

    def _accept(self, method: str, path: str, headers: Headers, body: bytes) -> _Answer:
        if method != "POST":
            raise _Reject(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{method} is not allowed: push messages are POSTed",
                (("Allow", "POST"),),
            )
        match = _PATH_RE.match(path)
        endpoint = f"{self.origin}{path}"
        subscription = self._subscription_for(endpoint, match[1]) if match else None
        if subscription is None:
            raise _Reject(HTTPStatus.NOT_FOUND, f"no push subscription at {path}")

        claims, key = self._check_vapid(headers.get("Authorization"))
        ttl, urgency, topic = _check_push_headers(headers)
        payload = b""
        if body:
            encoding = headers.get("Content-Encoding", "")
            if encoding.strip().lower() != "aes128gcm":
                raise _Reject(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                    f"Content-Encoding {encoding!r}: only aes128gcm (RFC 8291) is accepted",
                )
            if len(body) > MAX_BODY:
                raise _Reject(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _too_large(len(body)).message)
            payload = self._decrypt(body, subscription)

        rule = self._take_rule(endpoint)
        if rule is not None and rule.status != HTTPStatus.CREATED:
            retry: tuple[tuple[str, str], ...] = ()
            if rule.retry_after is not None and rule.retry_after_date:
                when = formatdate(time.time() + rule.retry_after, usegmt=True)
                retry = (("Retry-After", when),)
            elif rule.retry_after is not None:
                retry = (("Retry-After", str(rule.retry_after)),)
            return _Answer(
                rule.status,
                rule.message,
                retry,
                rule.delay,
                drop=rule.drop,
            )
        location = f"{self.origin}/message/{secrets.token_urlsafe(16)}"
        delivery = Received(
            endpoint=endpoint,
            payload=payload,
            headers=headers,
            ttl=ttl,
            urgency=urgency,
            topic=topic,
            claims=claims,
            vapid_public_key=key,
            location=location,
            received_at=datetime.now(UTC),
        )
        return _Answer(
            HTTPStatus.CREATED,
            headers=(("Location", location),),
            delay=rule.delay if rule else 0.0,
            delivery=delivery,
            drop=rule.drop if rule else False,
        )

    def _subscription_for(self, endpoint: str, endpoint_id: str) -> _Subscription | None:
        with self._lock:
            return self._subscriptions.get(endpoint)

    def _decrypt(self, body: bytes, subscription: _Subscription) -> bytes:
        try:
            return decrypt_aes128gcm(
                body, private_key=subscription.private_key, auth_secret=subscription.auth_secret
            )
        except DecryptionError as exc:
            raise _Reject(HTTPStatus.BAD_REQUEST, f"cannot decrypt the body: {exc}") from exc

    def _check_vapid(self, authorization: str | None) -> tuple[dict[str, Any], str]:
        """Verify an RFC 8292 ``vapid`` Authorization header; return the claims and the key."""
        if not authorization:
            raise _Reject(
                HTTPStatus.UNAUTHORIZED, "missing Authorization: vapid t=..., k=...", _UNAUTHORIZED
            )
        scheme, _, params = authorization.strip().partition(" ")
        if scheme.lower() != "vapid":
            raise _Reject(
                HTTPStatus.UNAUTHORIZED,
                f"Authorization scheme {scheme!r}: only RFC 8292 'vapid t=..., k=...' is accepted",
                _UNAUTHORIZED,
            )
        parts = {}
        for item in params.split(","):
            name, sep, value = item.strip().partition("=")
            if sep:
                parts[name.strip().lower()] = value.strip()
        if not parts.get("t") or not parts.get("k"):
            raise _Reject(
                HTTPStatus.UNAUTHORIZED, "the vapid credentials need both t and k", _UNAUTHORIZED
            )
        token, key = parts["t"], parts["k"]
        # A campaign signs one JWT and reuses it; like a real push service, verify it once.
        with self._lock:
            verified = self._verified_tokens.get((token, key))
        if verified is None:
            verified = _verify_jwt(token, key, expected_key=self._expected_key)
            with self._lock:
                if len(self._verified_tokens) >= _VERIFIED_TOKENS_MAX:
                    self._verified_tokens.clear()
                self._verified_tokens[token, key] = verified
        claims = dict(verified)
        if claims.get("aud") != self.origin:
            raise _Reject(
                HTTPStatus.FORBIDDEN,
                f"JWT aud {claims.get('aud')!r} is not this push service's origin {self.origin!r}",
            )
        exp = claims.get("exp")
        now = time.time()
        # A NumericDate (RFC 7519) may be fractional; booleans are ints to Python, not to JSON.
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise _Reject(HTTPStatus.FORBIDDEN, f"JWT exp {exp!r} is not a NumericDate")
        if exp <= now:
            raise _Reject(HTTPStatus.FORBIDDEN, f"JWT expired {now - exp:.0f} s ago")
        if exp > now + MAX_JWT_LIFETIME:
            raise _Reject(
                HTTPStatus.FORBIDDEN,
                f"JWT exp is {exp - now:.0f} s ahead; RFC 8292 allows at most 24 hours",
            )
        sub = claims.get("sub")
        if not isinstance(sub, str) or not _SUB_RE.match(sub):
            raise _Reject(
                HTTPStatus.FORBIDDEN, f"JWT sub {sub!r} must be a mailto: or https: contact URI"
            )
        return claims, key

    def _take_rule(self, endpoint: str) -> _Rule | None:
        with self._lock:
            for target in (endpoint, None):
                rule = self._rules.get(target)
                if rule is None:
                    continue
                if rule.until is not None and time.monotonic() >= rule.until:
                    del self._rules[target]
                    continue
                if rule.duration is not None and rule.until is None:
                    rule.until = time.monotonic() + rule.duration
                if rule.fraction is not None and rule.random.random() >= rule.fraction:
                    return None  # this request is spared: normal service
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        del self._rules[target]
                return rule
        return None

    def _deliver(self, message: Received) -> None:
        with self._lock:
            self._received.append(message)

    def _record_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def _count_request(self) -> None:
        with self._lock:
            self._requests_count += 1

    def _connection_opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections_count += 1
            self._connections.add(connection)

    def _connection_closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _drop_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                # The plain socket's shutdown, also for TLS connections: SSLSocket.shutdown()
                # would drop its TLS state under the thread still reading from it.
                socket.socket.shutdown(connection, socket.SHUT_RDWR)

    def _serve_in_background(self) -> None:
        server = self._require_server()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"push-service-{server.server_port}",
            daemon=True,
        )
        self._thread.start()

    def _require_server(self) -> _Server:
        if self._server is None:
            raise RuntimeError("start() the push service first")
        return self._server


def _reusable_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


_CA_FILE = "ca.pem"


def _tls_server_context(directory: Path, hostnames: tuple[str, ...]) -> ssl.SSLContext:
    """A throwaway CA and a server certificate it signs for `hostnames`, in `directory`.

    Returns the server's context. The CA's certificate is `directory / _CA_FILE`; its private
    key is never written, so nothing else can be signed with it. P-256 keys: fast to make.
    """
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"Local push service test CA {secrets.token_hex(4)}"
            )
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = []
    for hostname in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
        except ValueError:
            names.append(x509.DNSName(hostname))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / _CA_FILE).write_bytes(ca_cert.public_bytes(pem))
    (directory / "server.pem").write_bytes(server_cert.public_bytes(pem))
    key_file = directory / "server.key"
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(directory / "server.pem", key_file)
    return context


def _verify_jwt(token: str, key: str, *, expected_key: bytes | None) -> dict[str, Any]:
    """Check an ES256 JWT's signature with the VAPID key ``k``; return its claims."""
    try:
        key_bytes = _b64decode(key)
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key_bytes)
    except ValueError as exc:
        raise _Reject(
            HTTPStatus.FORBIDDEN, "k is not a base64url uncompressed P-256 public key"
        ) from exc
    if expected_key is not None and key_bytes != expected_key:
        raise _Reject(
            HTTPStatus.FORBIDDEN,
            f"the subscription is restricted to application server key {_b64encode(expected_key)}"
            f", the JWT is signed with {_b64encode(key_bytes)}",
        )
    pieces = token.split(".")
    if len(pieces) != 3:
        raise _Reject(HTTPStatus.FORBIDDEN, "t is not a JWS compact serialization")
    try:
        header = json.loads(_b64decode(pieces[0]))
        claims = json.loads(_b64decode(pieces[1]))
        signature = _b64decode(pieces[2])
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Reject(HTTPStatus.FORBIDDEN, "the JWT does not decode") from exc
    if not isinstance(header, dict) or header.get("alg") != "ES256":
        alg = header.get("alg") if isinstance(header, dict) else None
        raise _Reject(HTTPStatus.FORBIDDEN, f"JWT alg {alg!r}: RFC 8292 requires ES256")
    if not isinstance(claims, dict):
        raise _Reject(HTTPStatus.FORBIDDEN, "the JWT claims are not a JSON object")
    if len(signature) != 64:
        raise _Reject(HTTPStatus.FORBIDDEN, "an ES256 signature is 64 octets (r || s)")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    signing_input = f"{pieces[0]}.{pieces[1]}".encode("ascii")
    try:
        public_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise _Reject(HTTPStatus.FORBIDDEN, "the JWT signature does not verify with k") from exc
    return claims


def _check_push_headers(headers: Headers) -> tuple[int, str, str | None]:
    """Validate TTL, Urgency and Topic (RFC 8030 section 5)."""
    raw_ttl = headers.get("TTL")
    if raw_ttl is None:
        raise _Reject(HTTPStatus.BAD_REQUEST, "missing TTL header (RFC 8030 section 5.2)")
    if not _DIGITS_RE.match(raw_ttl.strip()):
        raise _Reject(HTTPStatus.BAD_REQUEST, f"TTL {raw_ttl!r} is not a non-negative integer")
    urgency = headers.get("Urgency", "normal").strip().lower()
    if urgency not in URGENCIES:
        raise _Reject(
            HTTPStatus.BAD_REQUEST, f"Urgency {urgency!r} is not one of {', '.join(URGENCIES)}"
        )
    topic = headers.get("Topic")
    if topic is not None and not _TOPIC_RE.match(topic):
        raise _Reject(HTTPStatus.BAD_REQUEST, f"Topic {topic!r} must be 1-32 base64url characters")
    return int(raw_ttl), urgency, topic


# --- The demo push service -------------------------------------------------------------------
# seed_demo gives the demo shop's subscriptions endpoints on this service and keys from a fixed
# pool of P-256 key pairs derived from a constant seed, so the service (in another process) holds
# every private key and decrypts what the workers send, like the browsers would.

DEMO_KEY_PAIRS = 64
# Share of demo endpoints (per 10,000) answered 410 Gone: subscriptions the browser dropped.
DEMO_GONE_PER_10K = 300
# What it says then, as real push services word it (the campaign page shows it to the admin).
DEMO_GONE_MESSAGE = "push subscription has unsubscribed or expired (a demo device)"
_DEMO_ID_RE = re.compile(r"^demo-[0-9a-f]+-([0-9]{1,2})$")
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@functools.cache
def _demo_key_pairs() -> tuple[tuple[ec.EllipticCurvePrivateKey, bytes], ...]:
    pairs = []
    for index in range(DEMO_KEY_PAIRS):
        digest = hashlib.sha256(b"demo-push-%d" % index).digest()
        scalar = int.from_bytes(digest, "big") % (_P256_ORDER - 1) + 1  # in [1, order - 1]
        auth = hashlib.sha256(b"demo-push-auth-%d" % index).digest()[:16]
        pairs.append((ec.derive_private_key(scalar, ec.SECP256R1()), auth))
    return tuple(pairs)


def demo_subscription_keys() -> list[tuple[str, str]]:
    """The demo key pool as a browser sends it: (p256dh, auth), base64url without padding."""
    return [
        (_b64encode(_public_bytes(private_key.public_key())), _b64encode(auth))
        for private_key, auth in _demo_key_pairs()
    ]


def demo_endpoint_base(port: int) -> str:
    """What every demo endpoint starts with; ``<subscription id, hex>-<key index>`` follows."""
    return f"http://{HOST}:{port}/push/demo-"


def demo_endpoint(*, port: int, subscription_id: int, key_index: int) -> str:
    """A demo subscription's endpoint; it names its key pair so the service can decrypt."""
    return f"{demo_endpoint_base(port)}{subscription_id:x}-{key_index}"


def demo_endpoint_gone(endpoint_id: str) -> bool:
    """Whether the demo service answers 410 Gone for this endpoint (a fixed 3% of them)."""
    digest = hashlib.sha256(endpoint_id.encode("ascii")).digest()
    return int.from_bytes(digest[:4], "big") % 10_000 < DEMO_GONE_PER_10K


def demo_clicks(endpoint_id: str, url: str, per_10k: int) -> bool:
    """Whether the demo device of this endpoint opens this notification (``per_10k`` of them,
    fixed per device and link: each campaign has its own link, so its own clickers)."""
    digest = hashlib.sha256(f"click {endpoint_id} {url}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 10_000 < per_10k


class DemoPushService(PushService):
    """`PushService` for the demo shop: every ``/push/<id>`` endpoint exists.

    Messages to a ``demo_endpoint()`` are decrypted with the demo key pool; any other endpoint
    (or a body that does not decrypt) is still answered 201, as a real push service that cannot
    read bodies would, and the failure is reported. A fixed 3% of endpoints answer 410 Gone.
    Only the last 1,000 messages are kept in ``received``. ``report`` gets one line per push,
    with the notification's link.

    With ``clicks_per_10k``, the demo devices also open that share of the notifications they
    get, as customers do: ``click_delay`` seconds after delivery (a random time in the range),
    a GET of the notification's link (the back office's click link; the redirect to the shop
    is not followed, there is no shop), reported as a ``click`` line. A test can hold the
    clicks back until ``click_gate`` (an Event) is set.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        vapid_public_key: str | None = None,
        report: Callable[[str], None] = logger.info,
        clicks_per_10k: int = 0,
        click_delay: tuple[float, float] = (2.0, 20.0),
        click_gate: threading.Event | None = None,
    ) -> None:
        super().__init__(vapid_public_key=vapid_public_key, port=port)
        self._received = collections.deque(maxlen=1000)
        self._requests = collections.deque(maxlen=1000)
        self._report = report
        self._clicks_per_10k = clicks_per_10k
        self._click_delay = click_delay
        self._click_gate = click_gate
        self._click_timers: set[threading.Timer] = set()
        self._click_lock = threading.Lock()

    def stop(self) -> None:
        with self._click_lock:
            timers, self._click_timers = self._click_timers, set()
        for timer in timers:
            timer.cancel()
        super().stop()

    def _click_later(self, path: str, url: str) -> None:
        if not url.startswith(("http://", "https://")):
            return  # no link: the device opens the shop's home page, nothing to count
        if not demo_clicks(path.rpartition("/")[2], url, self._clicks_per_10k):
            return
        timer = threading.Timer(random.uniform(*self._click_delay), self._click, (path, url))
        timer.daemon = True
        with self._click_lock:
            self._click_timers.add(timer)
        timer.start()

    def _click(self, path: str, url: str) -> None:
        if self._click_gate is not None and not self._click_gate.wait(30):
            return
        with self._click_lock:
            self._click_timers = {t for t in self._click_timers if t.is_alive()}
        parts = urllib.parse.urlsplit(url)
        connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(parts.netloc, timeout=10)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("GET", target)
            status = connection.getresponse().status
        except OSError as exc:
            self._report(f"click {path}: the back office did not answer ({exc})")
            return
        finally:
            connection.close()
        self._report(f"click {path}: the customer opened the notification ({status})")

    def _subscription_for(self, endpoint: str, endpoint_id: str) -> _Subscription | None:
        match = _DEMO_ID_RE.match(endpoint_id)
        if match and int(match[1]) < DEMO_KEY_PAIRS:
            private_key, auth = _demo_key_pairs()[int(match[1])]
            return _Subscription(endpoint, private_key, auth)
        return _Subscription(endpoint, None, b"")

    def _decrypt(self, body: bytes, subscription: _Subscription) -> bytes:
        if subscription.private_key is None:
            self._report(f"cannot decrypt the push to {subscription.endpoint}: not a demo key")
            return b""
        try:
            return decrypt_aes128gcm(
                body, private_key=subscription.private_key, auth_secret=subscription.auth_secret
            )
        except DecryptionError as exc:
            self._report(f"cannot decrypt the push to {subscription.endpoint}: {exc}")
            return b""

    def _take_rule(self, endpoint: str) -> _Rule | None:
        if demo_endpoint_gone(endpoint.rpartition("/")[2]):
            return _Rule(HTTPStatus.GONE, None, None, 0.0, message=DEMO_GONE_MESSAGE)
        return super()._take_rule(endpoint)

    def _answer(
        self, method: str, path: str, header_items: list[tuple[str, str]], body: bytes
    ) -> _Answer:
        answer = super()._answer(method, path, header_items, body)
        if answer.delivery is not None:
            title, url = _title_and_url(answer.delivery.payload)
            self._report(f"201 {path} {title}" + (f" link {url}" if url else ""))
            if self._clicks_per_10k and url:
                self._click_later(path, url)
        elif answer.status == HTTPStatus.GONE:
            self._report(f"410 {path} (an expired demo subscription)")
        else:
            self._report(f"{answer.status} {method} {path}: {answer.message}")
        return answer


def _title_and_url(payload: bytes) -> tuple[str, str]:
    """How the demo log names a notification, and the link it opens ("" if none)."""
    if not payload:
        return "(no readable payload)", ""
    try:
        data = json.loads(payload)
    except ValueError:
        return f"({len(payload)} bytes, not JSON)", ""
    if not isinstance(data, dict):
        return "(no title)", ""
    title, url = data.get("title"), data.get("url")
    return (
        f"title={title!r}" if isinstance(title, str) else "(no title)",
        url if isinstance(url, str) else "",
    )
