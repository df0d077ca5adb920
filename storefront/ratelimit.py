"""Rate limits per caller: at most N calls per window of S seconds (fixed windows).

Where the counters live: in the database, one row per caller (`storefront_ratewindow`),
incremented by one upsert per call in its own short transaction, before the call's own
transaction starts (so a long call never holds the counter's row lock). The database is
shared by every gunicorn worker and every machine, so the limit holds across them with no
extra service. On PostgreSQL the upsert commits with `synchronous_commit = off`: a counter
lost in a crash only lets a few calls more through, and the call does not wait for a flush.

Settings: STOREFRONT_API_RATE_LIMIT calls per STOREFRONT_API_RATE_WINDOW seconds per API
key (default 3,000 per 10 s), STOREFRONT_API_CUSTOMER_RATE_LIMIT per customer token (60).
"""

import math
import time

from django.conf import settings
from django.db import connection, transaction

from storefront.auth import Caller
from storefront.models import RateWindow
from storefront.problems import Problem

_TABLE = RateWindow._meta.db_table
_UPSERT = f"""
INSERT INTO {_TABLE} (principal, window_start, count) VALUES (%s, %s, 1)
ON CONFLICT (principal) DO UPDATE SET
    count = CASE WHEN {_TABLE}.window_start = excluded.window_start
                 THEN {_TABLE}.count + 1 ELSE 1 END,
    window_start = excluded.window_start
RETURNING count
"""


def limit_for(caller: Caller) -> int:
    if caller.is_customer:
        return settings.STOREFRONT_API_CUSTOMER_RATE_LIMIT
    return settings.STOREFRONT_API_RATE_LIMIT


def rate_limit_hit(caller: Caller, *, now: float | None = None) -> None:
    """Count one call for `caller`; raise a 429 problem when over the limit."""
    size = settings.STOREFRONT_API_RATE_WINDOW
    now = time.time() if now is None else now
    window = int(now // size)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        cursor.execute(_UPSERT, [caller.principal, window])
        (count,) = cursor.fetchone()
    limit = limit_for(caller)
    if count > limit:
        retry_after = max(1, math.ceil((window + 1) * size - now))
        raise Problem(
            "rate-limited",
            f"More than {limit} calls in {size} seconds; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
            extra={"limit": limit, "window_seconds": size},
        )
