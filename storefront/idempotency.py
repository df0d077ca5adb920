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
"""

import hashlib
import random
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.utils import timezone

from storefront.auth import Caller
from storefront.models import IdempotencyRecord
from storefront.problems import Problem

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
