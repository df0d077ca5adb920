"""The Web Push protocol: VAPID keys and tokens, payload encryption, a pooled HTTP client.

Nothing here touches the database; notifications/delivery.py drives it.

- VAPID (RFC 8292): one ES256 JWT per push-service origin, reused until an hour before it
  expires, so a campaign of 100,000 messages signs a handful of tokens, not 100,000.
- Encryption (RFC 8291 with the aes128gcm content coding of RFC 8188, in
  notifications/encryption.py, by a child process of the worker when `encrypt_in_child`):
  written against the `cryptography` primitives rather than through pywebpush's
  `WebPusher.encode()`, which does the same computation about twice as slowly (it copies
  the subscription and goes through http_ece's generic record loop). The tests decrypt it
  with http_ece and with a real push service, so it cannot drift from the standard.
- Sending: one pool of keep-alive connections per worker (notifications/http1.py, bounded
  by PUSH_CONCURRENCY), a total timeout on every request, and TTL, Urgency and Topic set
  explicitly. `prepare()` (encrypt, validate, build) is separate from sending, so the caller
  can record that a message is about to be written only once it is ready to go.
"""

import asyncio
import email.utils
import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from notifications.encryption import (  # noqa: F401 (encrypt and the sizes: the app's names)
    AES128GCM_HEADER_SIZE,
    MAX_ENCRYPTED_SIZE,
    MAX_PLAINTEXT_SIZE,
    EncryptionProcess,
    b64url_decode,
    b64url_encode,
    encrypt,
    receiver_key_parse,
)
from notifications.endpoints import endpoint_problem
from notifications.http1 import (
    Http1Pool,
    HttpError,
    InvalidRequest,
    MaybeSent,
    Request,
    Response,
)

# RFC 8292 allows at most 24 h; tokens are signed for 12 h and renewed 1 h before expiry.
VAPID_TOKEN_LIFETIME = 12 * 3600
VAPID_RENEW_BEFORE = 3600

# --- VAPID ---------------------------------------------------------------------------------


def vapid_private_key_parse(text: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM or from the base64url raw scalar web-push tools print."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
    else:
        raw = b64url_decode(text)
        if len(raw) != 32:
            raise ValueError("A raw VAPID private key is 32 bytes (43 base64url characters).")
        key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("A VAPID key must be a P-256 (prime256v1) key.")
    return key


def vapid_keys_generate() -> tuple[str, str]:
    """A new VAPID key pair as (public key, private key), both base64url."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = b64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))
    return public_key_b64(key), private


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The uncompressed public point, as a browser's applicationServerKey wants it."""
    return b64url_encode(
        key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


class Vapid:
    """Signs and caches one VAPID JWT per push-service origin."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, subject: str):
        self.private_key = private_key
        self.subject = subject
        self.public_key = public_key_b64(private_key)
        self._tokens: dict[str, tuple[str, int]] = {}
        self.signed = 0  # how many JWTs were signed (the benchmark and tests report it)

    def authorization(self, origin: str, *, now: float | None = None) -> str:
        """The Authorization header for an endpoint of `origin` (scheme://host[:port])."""
        now = int(now if now is not None else time.time())
        cached = self._tokens.get(origin)
        if cached is None or cached[1] - now <= VAPID_RENEW_BEFORE:
            exp = now + VAPID_TOKEN_LIFETIME
            cached = (self._sign({"aud": origin, "exp": exp, "sub": self.subject}), exp)
            self._tokens[origin] = cached
        return f"vapid t={cached[0]}, k={self.public_key}"

    def _sign(self, claims: dict) -> str:
        header = b64url_encode(b'{"typ":"JWT","alg":"ES256"}')
        body = b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{body}".encode("ascii")
        der = self.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        self.signed += 1
        return f"{header}.{body}.{b64url_encode(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _configured_private_key() -> str:
    if settings.VAPID_PRIVATE_KEY:
        return settings.VAPID_PRIVATE_KEY
    if settings.VAPID_PRIVATE_KEY_FILE:
        path = Path(settings.VAPID_PRIVATE_KEY_FILE)
        try:
            return path.read_text()
        except OSError as exc:
            raise ImproperlyConfigured(f"VAPID_PRIVATE_KEY_FILE {path}: {exc}") from exc
    raise ImproperlyConfigured(
        "Web push needs a VAPID key: set VAPID_PRIVATE_KEY (or VAPID_PRIVATE_KEY_FILE); "
        "`python manage.py generate_vapid_keys` creates one."
    )


@lru_cache(maxsize=4)
def _vapid_for(private_key: str, subject: str) -> Vapid:
    try:
        key = vapid_private_key_parse(private_key)
    except ValueError as exc:
        raise ImproperlyConfigured(f"VAPID private key: {exc}") from exc
    return Vapid(key, subject)


def vapid_get() -> Vapid:
    """The process's VAPID signer for the configured key (its token cache lives with it)."""
    vapid = _vapid_for(_configured_private_key(), settings.VAPID_SUBJECT)
    if settings.VAPID_PUBLIC_KEY and settings.VAPID_PUBLIC_KEY.rstrip("=") != vapid.public_key:
        raise ImproperlyConfigured("VAPID_PUBLIC_KEY does not belong to VAPID_PRIVATE_KEY.")
    return vapid


def vapid_configured() -> bool:
    return bool(settings.VAPID_PRIVATE_KEY or settings.VAPID_PRIVATE_KEY_FILE)


# --- Sending -------------------------------------------------------------------------------


@dataclass(slots=True)
class PushMessage:
    key: int  # the caller's id for this message (a delivery id)
    endpoint: str
    p256dh: str
    auth: str
    payload: bytes
    ttl: int
    urgency: str
    topic: str


@dataclass(slots=True)
class PushResult:
    key: int
    status: int | None  # None: no HTTP answer
    retry_after: float | None = None
    error: str = ""
    # No answer, and the request may have reached the push service (written, then a timeout,
    # a dropped connection, a malformed answer): it must never be sent again.
    maybe_sent: bool = False
    # False when sending again cannot help (unusable keys, an endpoint that may not be written).
    retryable: bool = True


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Parse Retry-After (delay in seconds or an HTTP date); None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def endpoint_origin(endpoint: str) -> str:
    """scheme://host[:port] of an endpoint (the JWT's audience)."""
    start = endpoint.find("://")
    if start < 0:
        parts = urlsplit(endpoint)
        return f"{parts.scheme}://{parts.netloc}"
    end = endpoint.find("/", start + 3)
    return endpoint if end < 0 else endpoint[:end]


@dataclass
class PushClient:
    """Sends push messages concurrently over a bounded pool of keep-alive connections.

    Use inside one event loop: `await client.open()`, `await client.send_many(...)` any
    number of times, `await client.close()`.
    """

    vapid: Vapid
    concurrency: int = 100
    timeout: float = 10.0
    # A PEM bundle of CAs trusted besides the system's (PUSH_CA_FILE).
    ca_file: str = ""
    # Encrypt waves in a child process (PUSH_ENCRYPT_IN_CHILD; see encrypt_many).
    encrypt_in_child: bool = False
    pool: Http1Pool | None = field(default=None, init=False)
    encryption: EncryptionProcess | None = field(default=None, init=False)

    async def open(self) -> "PushClient":
        self.pool = Http1Pool(limit=self.concurrency, timeout=self.timeout, ca_file=self.ca_file)
        if self.encrypt_in_child:
            self.encryption = EncryptionProcess()
        return self

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
        if self.encryption is not None:
            self.encryption.close()
            self.encryption = None

    async def encrypt_many(self, messages: list[PushMessage]) -> list[bytes | str] | None:
        """The encrypted bodies of `messages` from the child process (an error text for a
        message that cannot be encrypted), for `prepare(message, body=...)`; None without a
        child (`prepare` then encrypts). The event loop is free while the child works."""
        if self.encryption is None or not messages:
            return None
        return await self.encryption.encrypt_many(
            [(message.payload, message.p256dh, message.auth) for message in messages]
        )

    def prepare(
        self, message: PushMessage, *, body: bytes | str | None = None
    ) -> Request | PushResult:
        """Encrypt and build the request of one message, or the reason it cannot be sent.

        `body`: the message already encrypted by `encrypt_many` (or why it could not be).

        Everything one subscription can get wrong (an endpoint the shop does not write to,
        keys that are not a P-256 point, a header h11 refuses) ends here as a result that is
        not retryable, never as an exception that would stop the other messages.
        """
        try:
            problem = endpoint_problem(message.endpoint)
            if problem:
                return PushResult(message.key, None, error=problem[:300], retryable=False)
            if body is None:
                body = encrypt(message.payload, p256dh=message.p256dh, auth=message.auth)
            elif isinstance(body, str):
                error = f"Cannot encrypt for this subscription: {body}"
                return PushResult(message.key, None, error=error[:300], retryable=False)
            # Bytes: h11 takes them as they are (no encoding per header) and validates every one.
            headers = {
                b"Authorization": self.vapid.authorization(
                    endpoint_origin(message.endpoint)
                ).encode("ascii"),
                b"Content-Encoding": b"aes128gcm",
                b"Content-Type": b"application/octet-stream",
                b"TTL": b"%d" % message.ttl,
                b"Urgency": message.urgency.encode("ascii"),
                b"Topic": message.topic.encode("ascii"),
            }
            return self.pool.request(message.endpoint, headers=headers, body=body)
        except InvalidRequest as exc:
            return PushResult(message.key, None, error=str(exc)[:300], retryable=False)
        except Exception as exc:
            error = f"Cannot encrypt for this subscription: {type(exc).__name__}: {exc}"
            return PushResult(message.key, None, error=error[:300], retryable=False)

    async def send_many(self, messages: list[PushMessage]) -> list[PushResult]:
        """Prepare and send messages concurrently (the tests' and the benchmark's shortcut)."""
        prepared = [(m.key, self.prepare(m)) for m in messages]
        return await self.send_prepared(prepared)

    async def send_prepared(self, prepared: list[tuple[int, "Request | PushResult"]]):
        """Send prepared requests concurrently; results in the same order."""
        connected = await self.connect_prepared(prepared)
        return await self.send_connected(connected)

    async def connect_prepared(self, prepared: list[tuple[int, "Request | PushResult"]]) -> list:
        """Open (or take from the pool) a connection for each prepared request, writing nothing.

        Returns, in order, `Connected` items ready for `send_connected`, or a `PushResult`
        (the reason from `prepare`, or a connection that could not be opened: nothing was
        sent, sending again is safe).
        """
        results: list = []
        opening = []  # (index, key, request) of requests without a warm connection
        for key, item in prepared:
            if isinstance(item, Request):
                connection = await self.pool.take_idle(item)
                if connection is None:
                    opening.append((len(results), key, item))
                else:
                    item = Connected(key, item, connection)
            results.append(item)
        if opening:
            opened = await asyncio.gather(
                *(self._connect(key, request) for _, key, request in opening)
            )
            for (index, _, _), item in zip(opening, opened, strict=True):
                results[index] = item
        return results

    async def _connect(self, key: int, request: Request) -> "Connected | PushResult":
        try:
            return Connected(key, request, await self.pool.connect(request))
        except HttpError as exc:
            return PushResult(key, None, error=str(exc)[:300])

    def abandon(self, connected: list) -> None:
        """Give back the connections of `Connected` items that will not be written."""
        for item in connected:
            if isinstance(item, Connected):
                self.pool.abandon(item.connection)

    async def send_connected(self, connected: list, *, written=None) -> list[PushResult]:
        """Write every `Connected` request at once, then wait for the answers (in order).

        Every request is handed to its socket in this first step, before any await; then
        `written` (a concurrent.futures.Future, if given) is resolved, so a caller in another
        thread can wait until the whole list is on the wire. The answers of the requests
        written here are waited for together, with one timer.
        """
        on_wire = []
        try:
            for item in connected:
                on_wire.append(
                    isinstance(item, Connected) and self.pool.write(item.request, item.connection)
                )
        finally:
            if written is not None:
                written.set_result(None)
        wave = [
            (item.request, item.connection)
            for item, flag in zip(connected, on_wire, strict=True)
            if flag
        ]
        # A connection the server closed between `connect` and the write: nothing was written
        # on it, so its request takes another connection now (rare; one task each).
        later = [
            self._exchange(item)
            for item, flag in zip(connected, on_wire, strict=True)
            if isinstance(item, Connected) and not flag
        ]
        if later:
            answers, *others = await asyncio.gather(self.pool.answers(wave), *later)
        else:
            answers, others = await self.pool.answers(wave), []
        answers, others = iter(answers), iter(others)
        results = []
        for item, flag in zip(connected, on_wire, strict=True):
            if flag:
                results.append(self._result(item.key, next(answers)))
            elif isinstance(item, Connected):
                results.append(next(others))
            else:
                results.append(item)
        return results

    async def send(self, message: PushMessage) -> PushResult:
        prepared = self.prepare(message)
        if isinstance(prepared, PushResult):
            return prepared
        return await self._exchange(Connected(message.key, prepared, None))

    async def _exchange(self, item: "Connected") -> PushResult:
        """Send a request whose connection was not written on (or that has none yet)."""
        try:
            if item.connection is None:
                response = await self.pool.send(item.request)
            else:
                response = await self.pool.exchange(item.request, item.connection)
        except HttpError as exc:
            return self._result(item.key, exc)
        return self._result(item.key, response)

    @staticmethod
    def _result(key: int, answer: "Response | HttpError") -> PushResult:
        if isinstance(answer, MaybeSent):
            return PushResult(key, None, error=str(answer)[:300], maybe_sent=True, retryable=False)
        if isinstance(answer, HttpError):
            # NotSent: nothing reached the service; sending again cannot make a duplicate.
            return PushResult(key, None, error=str(answer)[:300])
        status = answer.status
        retry_after = retry_after_seconds(answer.headers.get("retry-after"))
        text = answer.body[:200].decode("utf-8", "replace") if status >= 300 else ""
        error = "" if status < 300 else f"HTTP {status} {text}".strip()[:300]
        return PushResult(key, status, retry_after=retry_after, error=error)


@dataclass(slots=True)
class Connected:
    """A prepared request and the pooled connection it will be written on."""

    key: int
    request: Request
    connection: object  # http1's connection; None: take one when sending
