"""Statements PostgreSQL plans with their values each time, not prepared.

The connections prepare a statement run five times (backoffice.env: prepare_threshold), and
after five more runs PostgreSQL may keep one generic plan for it, planned without the
parameters' values. For a capped count of the lists' filters that plan is a trap: a date in
the period or the tab's `orders_count > 0` become parameters, so PostgreSQL can use none of
the per-tab partial indexes and prices the range at a third of the rows; under LIMIT 1,001
it then finds a sequential scan cheap. "A tag and 5+ orders in the last 30 days" counted in
23 ms with its own plan and 210-290 ms once PostgreSQL had switched to the generic one, on
the sixth request of a connection (2026-12-01, a million customers).
"""

from contextlib import contextmanager


@contextmanager
def planned_each_time(connection):
    """Within the block, `connection` (a Django connection) prepares no statement: each is
    planned with its values (psycopg's prepare_threshold, None for the block)."""
    connection.ensure_connection()
    raw = connection.connection
    if connection.vendor != "postgresql" or not hasattr(raw, "prepare_threshold"):
        yield
        return
    saved = raw.prepare_threshold
    raw.prepare_threshold = None
    try:
        yield
    finally:
        raw.prepare_threshold = saved
