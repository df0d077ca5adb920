"""Reads of the storefront app: launches (attribution, the client page), API keys."""

import functools
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from backoffice.compiled import CompiledQuery
from storefront.models import ApiKey, Launch


def launch_attributing_order(*, customer_id: int, placed_at: datetime) -> Launch | None:
    """The launch an order placed at `placed_at` is attributed to: the customer's latest
    launch with a source, at or before the order and at most STOREFRONT_ATTRIBUTION_DAYS
    (30) before it ("last non-direct click": a later launch without a source, typing the
    shop's address, does not erase the ad that brought the customer). None if there is none.

    The order takes this launch's source, medium and campaign unless it gives its own.
    """
    window = timedelta(days=settings.STOREFRONT_ATTRIBUTION_DAYS)
    return (
        Launch.objects.filter(
            customer_id=customer_id,
            occurred_at__lte=placed_at,
            occurred_at__gte=placed_at - window,
        )
        .exclude(source="")
        .only("id", "source", "medium", "campaign", "occurred_at")
        .order_by("-occurred_at", "-id")
        .first()
    )


_LAUNCHES = Launch._meta.db_table
# launch_attributing_order's query, written once (the ORM's compilation of it cost more CPU
# than the rest of an order's attribution): the same launch_customer_idx scan.
_ATTRIBUTION_SQL = f"""
SELECT source, medium, campaign FROM {_LAUNCHES}
WHERE customer_id = %s AND occurred_at <= %s AND occurred_at >= %s AND source <> ''
ORDER BY occurred_at DESC, id DESC LIMIT 1
"""


# The same for many orders in one statement (PostgreSQL): one index scan per order, as above.
_ATTRIBUTIONS_SQL = f"""
SELECT o.i, l.source, l.medium, l.campaign
FROM unnest(%s::bigint[], %s::timestamptz[]) WITH ORDINALITY AS o (customer_id, placed_at, i)
CROSS JOIN LATERAL (
    SELECT source, medium, campaign FROM {_LAUNCHES}
    WHERE customer_id = o.customer_id AND occurred_at <= o.placed_at
        AND occurred_at >= o.placed_at - %s * interval '1 day' AND source <> ''
    ORDER BY occurred_at DESC, id DESC LIMIT 1
) l
"""


def launch_attribution(*, customer_id: int, placed_at: datetime) -> tuple[str, str, str] | None:
    """The (source, medium, campaign) of launch_attributing_order's launch, or None."""
    adapt = connection.ops.adapt_datetimefield_value
    window = timedelta(days=settings.STOREFRONT_ATTRIBUTION_DAYS)
    with connection.cursor() as cursor:
        cursor.execute(_ATTRIBUTION_SQL, [customer_id, adapt(placed_at), adapt(placed_at - window)])
        return cursor.fetchone()


def launch_attributions(orders: list[tuple[int, datetime]]) -> list[tuple[str, str, str] | None]:
    """launch_attribution for many (customer id, placed_at) at once, in their order: one query
    on PostgreSQL (the bulk import asks for a batch of orders), one per order elsewhere."""
    if connection.vendor != "postgresql" or len(orders) < 2:
        return [launch_attribution(customer_id=c, placed_at=at) for c, at in orders]
    found: list = [None] * len(orders)
    with connection.cursor() as cursor:
        cursor.execute(
            _ATTRIBUTIONS_SQL,
            [
                [customer for customer, _ in orders],
                [placed_at for _, placed_at in orders],
                settings.STOREFRONT_ATTRIBUTION_DAYS,
            ],
        )
        for i, source, medium, campaign in cursor.fetchall():
            found[i - 1] = (source, medium, campaign)
    return found


def customer_origin(*, customer_id: int, launch_rows: int | None = None, recent: int = 10) -> dict:
    """Where a customer comes from, for the client page: their first and their latest launch
    with a source, and their `recent` latest launches (at most three queries; none when
    `launch_rows`, the customer's number of launches read with the customer, is 0)."""
    if launch_rows == 0:
        return {"first": None, "last": None, "recent": []}
    launches = _recent_launches_query(recent).objects(customer_id)
    if not launches:
        return {"first": None, "last": None, "recent": []}
    last = next((launch for launch in launches if launch.source), None)
    if last is None:
        last = next(iter(_launch_with_source_query("last").objects(customer_id)), None)
    first = (
        next(iter(_launch_with_source_query("first").objects(customer_id)), None) if last else None
    )
    return {"first": first, "last": last, "recent": launches}


# A value no customer id takes, marking where the id goes in a compiled query.
_ANY_CUSTOMER = -7_777_777_777_777


@functools.lru_cache(maxsize=4)
def _recent_launches_query(recent: int) -> CompiledQuery:
    """A customer's `recent` latest launches, compiled once per process (every client page of
    a customer with launches reads them)."""
    launches = Launch.objects.filter(customer_id=_ANY_CUSTOMER).order_by("-occurred_at", "-id")
    return CompiledQuery(launches[:recent], _ANY_CUSTOMER)


@functools.cache
def _launch_with_source_query(which: str) -> CompiledQuery:
    """A customer's first or last launch with a source, compiled once per process."""
    with_source = Launch.objects.filter(customer_id=_ANY_CUSTOMER).exclude(source="")
    order = ("occurred_at", "id") if which == "first" else ("-occurred_at", "-id")
    return CompiledQuery(with_source.order_by(*order)[:1], _ANY_CUSTOMER)


# What may separate a change's updated_at from the start of the transaction that writes it: the
# clocks of the machines running the back office against the database's (updated_at is taken in
# Python), and the moments between a service's timezone.now() and its first statement.
SYNC_CLOCK_MARGIN = timedelta(seconds=5)
# SQLite lists no running transaction: its writes are serialized and short (an import's batch
# at most), so a fixed margin stands in for the oldest one.
SYNC_SQLITE_MARGIN = timedelta(minutes=1)

# The start of the oldest transaction in progress on this database (the database's clock), or
# now when there is none. Every transaction counts, not only those that wrote already: one that
# has not written yet may still write a time it took earlier. Sessions of another role show no
# xact_start (unless the role may read all statistics): their writes are not waited for.
_OLDEST_TRANSACTION_SQL = """
SELECT LEAST(statement_timestamp(), min(xact_start)) FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend'
"""


def customers_sync_horizon() -> datetime:
    """A time before which every change to a customer that a read made now cannot see yet
    was stamped: each committed change is visible, each uncommitted one belongs to a
    transaction that started after it minus SYNC_CLOCK_MARGIN. A platform that syncs the API's
    customer list again from this time (`updated_since`) misses none of the changes that were
    still being written while it read, which an `updated_at` it received would not promise (a
    transaction's changes carry its start time or so, and become visible at its commit).

    Read before the page it comes with (a change committed in between is on the page)."""
    if connection.vendor != "postgresql":
        return timezone.now() - SYNC_SQLITE_MARGIN
    with connection.cursor() as cursor:
        cursor.execute(_OLDEST_TRANSACTION_SQL)
        (oldest,) = cursor.fetchone()
    return oldest - SYNC_CLOCK_MARGIN


def api_key_list() -> QuerySet[ApiKey]:
    """Every API key, active ones first, newest first."""
    return ApiKey.objects.select_related("created_by", "revoked_by").order_by(
        "revoked_at", "-created_at", "-id"
    )
