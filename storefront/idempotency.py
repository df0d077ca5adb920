"""`Idempotency-Key` on POST: a retried request returns the first response, the work is done
once.

- The first request with a key reserves it (a RUNNING record, committed at once so that a
  concurrent request with the same key sees it and gets 409 `idempotency-key-in-use`).
- The call runs in its transaction; on success the record becomes DONE with the response,
  in that same transaction: either the work and its recorded response are both committed,
  or neither is.
- A call that fails (any 4xx/5xx) changed nothing, so its record is deleted: the key is free
  again, to retry after fixing the request.
- A later request with the key and the same method, path and body gets the stored response
  (with `Idempotent-Replayed: true`); with another request, 422 `idempotency-key-reused`.
- A RUNNING record older than STOREFRONT_API_IDEMPOTENCY_LOCK seconds (60) belongs to a
  process that died (its work was rolled back with it) and may be taken over.
- Records are kept STOREFRONT_API_IDEMPOTENCY_TTL seconds (24 h); expired ones are deleted
  now and then by the calls themselves.
"""

import hashlib
import random
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone

from storefront.auth import Caller
from storefront.models import IdempotencyRecord
from storefront.problems import Problem

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
_PURGE_ONE_IN = 1000


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


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(
        bytes(record.body), status=record.status_code, content_type=record.content_type
    )
    if record.location:
        response["Location"] = record.location
    response["Idempotent-Replayed"] = "true"
    return response


def idempotency_reserve(
    *, caller: Caller, key: str, fingerprint: str
) -> IdempotencyRecord | HttpResponse:
    """Reserve `key` for this request, or the stored response of its first use."""
    now = timezone.now()
    ttl = timedelta(seconds=settings.STOREFRONT_API_IDEMPOTENCY_TTL)
    lock = timedelta(seconds=settings.STOREFRONT_API_IDEMPOTENCY_LOCK)
    for _attempt in range(3):
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    principal=caller.principal,
                    key=key,
                    fingerprint=fingerprint,
                    created_at=now,
                    started_at=now,
                )
        except IntegrityError:
            pass
        else:
            if random.randrange(_PURGE_ONE_IN) == 0:
                IdempotencyRecord.objects.filter(created_at__lt=now - ttl).delete()
            return record
        existing = IdempotencyRecord.objects.filter(principal=caller.principal, key=key).first()
        if existing is None:
            continue  # deleted meanwhile (its call failed): try to reserve again
        if existing.created_at < now - ttl:
            IdempotencyRecord.objects.filter(
                pk=existing.pk, created_at=existing.created_at
            ).delete()
            continue
        if existing.fingerprint != fingerprint:
            raise Problem(
                "idempotency-key-reused",
                "This Idempotency-Key was used with a different request.",
                extra={"header": HEADER},
            )
        if existing.state == IdempotencyRecord.State.DONE:
            return _replay(existing)
        if existing.started_at >= now - lock:
            raise Problem(
                "idempotency-key-in-use",
                "A request with this Idempotency-Key is still running.",
                headers={"Retry-After": "1"},
            )
        taken = IdempotencyRecord.objects.filter(
            pk=existing.pk, state=IdempotencyRecord.State.RUNNING, started_at=existing.started_at
        ).update(started_at=now)
        if taken:
            return existing
    raise Problem("idempotency-key-in-use", "This Idempotency-Key is being used right now.")


def idempotency_complete(record: IdempotencyRecord, response: HttpResponse) -> None:
    """Store the response (inside the call's transaction, with its work)."""
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        state=IdempotencyRecord.State.DONE,
        status_code=response.status_code,
        content_type=response.get("Content-Type", ""),
        location=response.get("Location", ""),
        body=response.content,
    )


def idempotency_release(record: IdempotencyRecord) -> None:
    """The call failed and changed nothing: free the key."""
    IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyRecord.State.RUNNING).delete()
