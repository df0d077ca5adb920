"""Rate limits per caller: at most N calls per window of S seconds (fixed windows).

Where the counters live, shared by every gunicorn worker and every machine:

- in Django's cache named by STOREFRONT_API_RATE_LIMIT_CACHE when it is set (the `api`
  cache on Redis when REDIS_URL is): one key per caller and window, incremented atomically
  by the cache (`incr`, `add` for the window's first call), expiring after the window. No
  database write per call. On Redis, one script (EVALSHA) increments the key and gives the
  window's first call its expiry, atomically: one round trip and one reply to read, on a
  client kept by the process (Django's `incr` costs two round trips and a new client per
  call; a MULTI/EXEC pipeline, four replies to parse and 8% of an order call's CPU). If the
  cache cannot be reached, the call is counted in the database instead (logged), so an outage
  of Redis is not an outage of the API.
- otherwise in the database (the embedded default, SQLite included), one row per caller
  (`storefront_ratewindow`), incremented by one upsert per call in its own short
  transaction, before the call's own transaction starts (so a long call never holds the
  counter's row lock). On PostgreSQL the upsert commits with `synchronous_commit = off`: a
  counter lost in a crash only lets a few calls more through, and the call does not wait
  for a flush.

Settings: STOREFRONT_API_RATE_LIMIT calls per STOREFRONT_API_RATE_WINDOW seconds per API
key (default 3,000 per 10 s), STOREFRONT_API_CUSTOMER_RATE_LIMIT per customer token (60).
"""

import logging
import math
import time

import redis
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection, transaction
from redis.commands.core import Script

from storefront.auth import Caller
from storefront.models import RateWindow
from storefront.problems import Problem

logger = logging.getLogger(__name__)
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


def _count_in_database(principal: str, window: int) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        cursor.execute(_UPSERT, [principal, window])
        (count,) = cursor.fetchone()
    return count


# KEYS[1]: the caller's key for this window; ARGV[1]: its lifetime in seconds. Redis runs a
# script atomically: no other call comes between the increment and the expiry.
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
# (LOCATION, OPTIONS) of a Redis cache: the counting script on this process's client
# (thread-safe; its connection pool reconnects after a fork).
_redis_scripts: dict[tuple[str, str], Script] = {}


def _redis_script(alias: str) -> Script:
    config = settings.CACHES[alias]
    location = config["LOCATION"]
    location = location if isinstance(location, str) else location[0]
    # Django's own options (serializer, pool and parser classes) are not the client's.
    options = {
        name: value
        for name, value in config.get("OPTIONS", {}).items()
        if name not in ("serializer", "pool_class", "parser_class")
    }
    found = (location, repr(sorted(options.items())))
    script = _redis_scripts.get(found)
    if script is None:
        client = redis.Redis.from_url(location, **options)
        script = _redis_scripts[found] = client.register_script(_COUNT_SCRIPT)
    return script


def _count_in_redis(alias: str, key: str, size: int) -> int:
    # EVALSHA (and EVAL once when the server does not know the script: after a restart).
    return _redis_script(alias)(keys=[key], args=[size + 1])


def _count_in_cache(alias: str, principal: str, window: int, size: int) -> int:
    cache = caches[alias]
    key = f"ratelimit:{principal}:{window}"
    if isinstance(cache, RedisCache):
        return _count_in_redis(alias, cache.make_key(key), size)
    try:
        return cache.incr(key)
    except ValueError:  # the window's first call (or the key expired just now)
        if cache.add(key, 1, timeout=size + 1):
            return 1
        return cache.incr(key)


def rate_limit_hit(caller: Caller, *, now: float | None = None) -> None:
    """Count one call for `caller`; raise a 429 problem when over the limit."""
    size = settings.STOREFRONT_API_RATE_WINDOW
    now = time.time() if now is None else now
    window = int(now // size)
    alias = settings.STOREFRONT_API_RATE_LIMIT_CACHE
    count = None
    if alias:
        try:
            count = _count_in_cache(alias, caller.principal, window, size)
        except Exception:
            logger.exception("Rate limit cache %r unreachable: counting in the database", alias)
    if count is None:
        count = _count_in_database(caller.principal, window)
    limit = limit_for(caller)
    if count > limit:
        retry_after = max(1, math.ceil((window + 1) * size - now))
        raise Problem(
            "rate-limited",
            f"More than {limit} calls in {size} seconds; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
            extra={"limit": limit, "window_seconds": size},
        )
