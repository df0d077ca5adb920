"""`Idempotency-Key` on POST: a retried request returns the first response, the work is done
once.

Everything happens in the call's own transaction, two statements for a new key:

- At the start, the key is looked up (one indexed SELECT). A record with the same method,
  path and body is replayed (with `Idempotent-Replayed: true`) and nothing runs; another
  request with that key gets 422 `idempotency-key-reused`.
- The call runs; on success its response is INSERTed as the key's record, in the same
  transaction as the work: either both are committed or neither is. A call that fails (any
  4xx/5xx) is rolled back whole, record included, so its key is free for the retry.
- Two requests with one key at the same time both find nothing at the start. The unique
  index on (caller, key) decides: the second's INSERT waits for the first transaction, finds
  its committed record, and the second rolls back all its work and answers the first's
  response (or 422 for another body). Work that conflicts earlier (the same order number)
  fails with a 4xx, rolled back; the key, found recorded then, is replayed instead. So the
  work is done once and the later request never gets a 409 for a key still in use: it waits
  for the first and gets its answer.
- Records are kept STOREFRONT_API_IDEMPOTENCY_TTL seconds (24 h); expired ones are deleted
  now and then by the calls themselves, and an expired record found at the start is
  deleted so the key can be used again.

A streamed call (the bulk import) commits its work in parts while it writes its answer, so
its record cannot share one transaction with the work. Instead (idempotency_claim):

- At the start it claims the key: a RUNNING record, committed on its own. A request that
  finds the key RUNNING gets 409 `idempotency-key-in-use` with Retry-After; one that finds
  it DONE reads the whole body, then gets the stored answer (the same body) or 422 (another).
- While it runs, a thread of its own renews the claim (`started_at`) every sixth of
  STOREFRONT_API_IDEMPOTENCY_LEASE, whatever the call waits on; a claim not renewed for the
  whole lease belongs to a process that died (`kill -9`) and is taken over by the next
  request with the key.
- Once its answer is complete, the answer (compressed: up to 10,000 answer lines) and the
  body's fingerprint (hashed as it was read) are stored and the record is DONE. A call that
  stopped midway (an error, the client gone) frees its key: what it committed is found
  `unchanged` by the retry, which is answered afresh.
"""

import hashlib
import logging
import random
import secrets
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from storefront.auth import Caller
from storefront.models import IdempotencyRecord
from storefront.problems import Problem

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
_PURGE_ONE_IN = 1000
_TABLE = IdempotencyRecord._meta.db_table
_RECORD_COLUMNS = ("principal", "key", "fingerprint", "state", "created_at", "started_at")
_RESPONSE_COLUMNS = ("status_code", "content_type", "location", "body")
# ON CONFLICT DO NOTHING (PostgreSQL and SQLite): a concurrent first use of the key wins,
# this one inserts nothing (rowcount 0) after waiting for the first to commit or roll back.
_INSERT_SQL = (
    f"INSERT INTO {_TABLE} ({', '.join(_RECORD_COLUMNS + _RESPONSE_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * (len(_RECORD_COLUMNS) + len(_RESPONSE_COLUMNS)))}) "
    "ON CONFLICT (principal, key) DO NOTHING"
)
_SELECT_SQL = (
    f"SELECT id, fingerprint, created_at < %s, {', '.join(_RESPONSE_COLUMNS)} FROM {_TABLE} "
    "WHERE principal = %s AND key = %s"
)


def request_fingerprint(request, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.get_full_path().encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def key_from(request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise Problem(
            "bad-request",
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
            extra={"header": HEADER},
        )
    return key


def _replay(status_code: int, content_type: str, location: str, body) -> HttpResponse:
    response = HttpResponse(bytes(body), status=status_code, content_type=content_type)
    if location:
        response["Location"] = location
    response["Idempotent-Replayed"] = "true"
    return response


def idempotency_lookup(*, caller: Caller, key: str, fingerprint: str) -> HttpResponse | None:
    """The stored response of this key's first use (a replay), or None if the key is new.
    Raises 422 `idempotency-key-reused` if the key was used for another request."""
    ttl = timedelta(seconds=settings.STOREFRONT_API_IDEMPOTENCY_TTL)
    expiry = connection.ops.adapt_datetimefield_value(timezone.now() - ttl)
    with connection.cursor() as cursor:
        cursor.execute(_SELECT_SQL, [expiry, caller.principal, key])
        row = cursor.fetchone()
    if row is None:
        return None
    pk, stored_fingerprint, expired, status_code, content_type, location, body = row
    if expired:
        IdempotencyRecord.objects.filter(pk=pk).delete()
        return None
    if stored_fingerprint.startswith(_TOKEN):  # a streamed call holds it (the import)
        raise Problem(
            "idempotency-key-in-use",
            "A request with this Idempotency-Key is still running; retry once it is done.",
            extra={"header": HEADER},
            headers={"Retry-After": _retry_after()},
        )
    if stored_fingerprint != fingerprint:
        raise Problem(
            "idempotency-key-reused",
            "This Idempotency-Key was used with a different request.",
            extra={"header": HEADER},
        )
    return _replay(status_code, content_type, location, body)


def idempotency_record(
    *, caller: Caller, key: str, fingerprint: str, response: HttpResponse
) -> bool:
    """Store a successful call's response for its key, in the call's transaction. False if a
    concurrent call with the same key committed first: the caller must roll back its work
    and answer idempotency_lookup's response instead."""
    now = timezone.now()
    ops = connection.ops
    at = ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_SQL,
            [
                caller.principal,
                key,
                fingerprint,
                IdempotencyRecord.State.DONE,
                at,
                at,
                response.status_code,
                response.get("Content-Type", ""),
                response.get("Location", ""),
                response.content,
            ],
        )
        inserted = cursor.rowcount == 1
    if inserted and random.randrange(_PURGE_ONE_IN) == 0:
        ttl = timedelta(seconds=settings.STOREFRONT_API_IDEMPOTENCY_TTL)
        IdempotencyRecord.objects.filter(created_at__lt=now - ttl).delete()
    return inserted


def idempotency_replay_after_race(*, caller: Caller, key: str, fingerprint: str) -> HttpResponse:
    """The answer for a call that lost the race for its key (its work was rolled back)."""
    replay = idempotency_lookup(caller=caller, key=key, fingerprint=fingerprint)
    if replay is None:  # the first use's record is gone again (expired and purged meanwhile)
        raise Problem(
            "idempotency-key-in-use",
            "A request with this Idempotency-Key was running at the same time; retry.",
            headers={"Retry-After": "1"},
        )
    return replay


# Streamed calls (see the module docstring).
_RUNNING = IdempotencyRecord.State.RUNNING
_DONE = IdempotencyRecord.State.DONE
_CLAIMED_SQL = (
    f"SELECT id, state, fingerprint, created_at < %s, started_at < %s, "
    f"{', '.join(_RESPONSE_COLUMNS)}, encoding FROM {_TABLE} WHERE principal = %s AND key = %s"
)
_TOKEN = "running:"
# While RUNNING, `fingerprint` holds the claim's own token (no request's fingerprint, a
# SHA-256, can match it): a claim taken over no longer renews, stores or frees the record.
_TAKE_OVER_SQL = (
    f"UPDATE {_TABLE} SET fingerprint = %s, started_at = %s, created_at = %s "
    "WHERE id = %s AND state = %s AND started_at < %s"
)
_OWNED = "WHERE id = %s AND state = %s AND fingerprint = %s"
_RENEW_SQL = f"UPDATE {_TABLE} SET started_at = %s {_OWNED}"
_FINISH_SQL = (
    f"UPDATE {_TABLE} SET state = %s, fingerprint = %s, created_at = %s, status_code = %s, "
    f"content_type = %s, body = %s, encoding = %s {_OWNED}"
)
_RELEASE_SQL = f"DELETE FROM {_TABLE} {_OWNED}"
_INFLATE_BYTES = 256 * 1024


class HashedBody:
    """A request's body as a streamed call reads it (`read`), hashed on the way: its
    fingerprint covers the method, the path and every byte of the body."""

    def __init__(self, request):
        self._request = request
        self._declared = int(request.META.get("CONTENT_LENGTH") or 0)
        self._digest = hashlib.sha256(b"stream")
        for part in (request.method.encode(), request.get_full_path().encode()):
            self._digest.update(len(part).to_bytes(8, "big"))
            self._digest.update(part)
        self._length = 0

    def read(self, size: int) -> bytes:
        block = self._request.read(size)
        self._digest.update(block)
        self._length += len(block)
        return block

    def fingerprint(self) -> str:
        """The fingerprint, once the rest of the body (what the call did not read) is read."""
        while self.read(_INFLATE_BYTES):
            pass
        if self._length < self._declared:
            # The connection dropped: gunicorn and Django end such a body early, no error.
            raise Problem(
                "bad-request",
                f"The body ended after {self._length} of the {self._declared} bytes its "
                "Content-Length announced.",
            )
        digest = self._digest.copy()
        digest.update(self._length.to_bytes(8, "big"))
        return digest.hexdigest()


@dataclass(frozen=True)
class Stored:
    """The finished call's record found for a streamed call's key."""

    fingerprint: str
    status_code: int
    content_type: str
    location: str
    body: bytes
    encoding: str

    def replay(self, body: HashedBody) -> StreamingHttpResponse:
        """The stored answer, once the body is read and found the same (else 422)."""
        if body.fingerprint() != self.fingerprint:
            raise Problem(
                "idempotency-key-reused",
                "This Idempotency-Key was used with a different request.",
                extra={"header": HEADER},
            )
        content = _inflated(self.body) if self.encoding == "deflate" else iter([self.body])
        response = StreamingHttpResponse(
            content, status=self.status_code, content_type=self.content_type
        )
        if self.location:
            response["Location"] = self.location
        response["Idempotent-Replayed"] = "true"
        response["Cache-Control"] = "no-store"
        return response


def _inflated(packed: bytes) -> Iterator[bytes]:
    """A stored answer, unpacked a piece at a time (memory holds the packed answer)."""
    inflater = zlib.decompressobj()
    data = packed
    while data:
        piece = inflater.decompress(data, _INFLATE_BYTES)
        data = inflater.unconsumed_tail
        if piece:
            yield piece
    rest = inflater.flush()
    if rest:
        yield rest


class Claim:
    """A streamed call's hold on its key (a RUNNING record, committed): renewed by a thread of
    its own while the call runs (`held`), then DONE with the answer, or deleted if the call
    stopped."""

    def __init__(self, pk: int, token: str):
        self.pk = pk
        self.token = token
        self._packer = zlib.compressobj()
        self._packed: list[bytes] = []

    def answered(self, piece: bytes) -> None:
        """A piece of the answer, written to the client: kept (packed)."""
        self._packed.append(self._packer.compress(piece))

    @contextmanager
    def held(self):
        """Renew the claim every sixth of the lease, from a thread with its own connection,
        for as long as the call runs: whatever the call waits on (a client sending its body
        slowly, or reading the answer slowly, a lock), a process alive keeps its key, and only
        one that died (kill -9) stops renewing it. Renewing when the call wrote its answer
        let a slow client's import lose its key to a retry, which ran the work again."""
        stop = threading.Event()

        def renew():
            interval = settings.STOREFRONT_API_IDEMPOTENCY_LEASE / 6
            try:
                while not stop.wait(interval):
                    try:
                        with connection.cursor() as cursor:
                            cursor.execute(_RENEW_SQL, [_now(), *self._owned()])
                    except DatabaseError:  # tried again next time: the lease allows five misses
                        logger.warning(
                            "Could not renew the Idempotency-Key of a streamed call", exc_info=True
                        )
            finally:
                connection.close()  # this thread's own

        thread = threading.Thread(target=renew, name="idempotency-renewal", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def finish(self, *, fingerprint: str, status_code: int, content_type: str) -> bool:
        """The answer is complete: store it, for the retries. False if the claim was taken
        over meanwhile (this call outlived its lease without renewing it)."""
        packed = b"".join([*self._packed, self._packer.flush()])
        self._packed = []
        values = [_DONE, fingerprint, _now(), status_code, content_type, packed, "deflate"]
        with connection.cursor() as cursor:
            cursor.execute(_FINISH_SQL, [*values, *self._owned()])
            return cursor.rowcount == 1

    def release(self) -> None:
        """The call stopped before its answer was complete: its key is free again."""
        with connection.cursor() as cursor:
            cursor.execute(_RELEASE_SQL, self._owned())

    def _owned(self) -> list:
        return [self.pk, _RUNNING, self.token]


def _retry_after() -> str:
    """Seconds until a streamed call holding a key renews it (when a retry may find it done,
    or taken over)."""
    return str(max(1, round(settings.STOREFRONT_API_IDEMPOTENCY_LEASE / 6)))


def _now():
    return connection.ops.adapt_datetimefield_value(timezone.now())


def idempotency_claim(*, caller: Caller, key: str) -> Claim | Stored:
    """Claim a key for a streamed call (a Claim), or the record of its first use if it is
    done (a Stored). Raises 409 `idempotency-key-in-use` while another call holds it."""
    lease = settings.STOREFRONT_API_IDEMPOTENCY_LEASE
    ttl = timedelta(seconds=settings.STOREFRONT_API_IDEMPOTENCY_TTL)
    for _ in range(3):  # a record found expired, or taken over by another, is looked at again
        now = timezone.now()
        at = connection.ops.adapt_datetimefield_value(now)
        stale = connection.ops.adapt_datetimefield_value(now - timedelta(seconds=lease))
        expiry = connection.ops.adapt_datetimefield_value(now - ttl)
        with connection.cursor() as cursor:
            token = f"{_TOKEN}{secrets.token_hex(16)}"
            cursor.execute(
                _INSERT_SQL,
                [caller.principal, key, token, _RUNNING, at, at, None, "", "", b""],
            )
            if cursor.rowcount == 1:
                cursor.execute(
                    f"SELECT id FROM {_TABLE} WHERE principal = %s AND key = %s",
                    [caller.principal, key],
                )
                return Claim(cursor.fetchone()[0], token)
            cursor.execute(_CLAIMED_SQL, [expiry, stale, caller.principal, key])
            row = cursor.fetchone()
            if row is None:  # deleted since the INSERT found it
                continue
            pk, state, fingerprint, expired, abandoned, status, content_type = row[:7]
            location, body, encoding = row[7:]
            if expired and state == _DONE:
                cursor.execute(f"DELETE FROM {_TABLE} WHERE id = %s AND state = %s", [pk, _DONE])
                continue
            if state == _DONE:
                return Stored(fingerprint, status, content_type, location, bytes(body), encoding)
            if abandoned:
                cursor.execute(_TAKE_OVER_SQL, [token, at, at, pk, _RUNNING, stale])
                if cursor.rowcount == 1:
                    return Claim(pk, token)
                continue
        break
    raise Problem(
        "idempotency-key-in-use",
        "A request with this Idempotency-Key is still running; retry once it is done to get "
        "its answer.",
        extra={"header": HEADER},
        headers={"Retry-After": _retry_after()},
    )
