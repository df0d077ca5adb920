"""What the storefront API holds about a customer: app launches, and the stored responses of
its calls (idempotency records, kept STOREFRONT_API_IDEMPOTENCY_TTL for retries)."""

import json
from datetime import timedelta

from django.conf import settings
from django.db.models import CharField, Value
from django.db.models.functions import Cast, Concat

from clients.models import Customer
from privacy.registry import Erasure, register
from privacy.serialize import rows
from storefront.models import IdempotencyRecord, Launch


def _encodings(value: str) -> list[bytes]:
    """How a value may appear in a stored JSON response: raw UTF-8 or \\u-escaped."""
    escaped = json.dumps(value)[1:-1].encode()
    raw = value.encode()
    return [raw] if escaped == raw else [raw, escaped]


def erase(erasure: Erasure) -> None:
    Launch.objects.filter(customer__in=erasure.customers)._raw_delete(Launch.objects.db)
    principals = Customer.objects.filter(pk__in=erasure.customers).annotate(
        principal=Concat(Value("customer:"), Cast("pk", CharField()))
    )
    IdempotencyRecord.objects.filter(principal__in=principals.values("principal")).delete()
    # Expired records may still be there (they are purged now and then, as calls come in).
    ttl = timedelta(seconds=settings.STOREFRONT_API_IDEMPOTENCY_TTL)
    IdempotencyRecord.objects.filter(created_at__lt=erasure.at - ttl).delete()
    # Responses to the shop's API key that quote the customer (sign-up, orders, addresses):
    # found by their content, for an erasure of a few customers (a retention sweep erases
    # customers without contact for years, long after their records were purged). A retry
    # of such a call would run it again, which only matters within the TTL.
    needles = [
        encoded
        for values in erasure.values.values()
        for value in values
        if len(value) >= 3
        for encoded in _encodings(value)
    ]
    if not needles:
        return
    quoting = [
        pk
        for pk, body in IdempotencyRecord.objects.exclude(body=b"")
        .values_list("pk", "body")
        .iterator(chunk_size=500)
        if any(needle in bytes(body) for needle in needles)
    ]
    IdempotencyRecord.objects.filter(pk__in=quoting).delete()


def export(customer: Customer) -> dict[str, list[dict]]:
    return {
        "launches": rows(
            Launch.objects.filter(customer=customer).order_by("occurred_at", "pk"),
            "id",
            "occurred_at",
            "platform",
            "device",
            "source",
            "medium",
            "campaign",
            "referrer",
            "visitor_id",
        )
    }


register("storefront", models=(Launch, IdempotencyRecord), erase=erase, export=export)
