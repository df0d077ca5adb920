"""Every write of the storefront app: API keys (audited) and launches."""

import logging
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from clients.models import Customer
from storefront.auth import api_key_forget, key_generate
from storefront.models import ApiKey, Launch

audit_log = logging.getLogger("storefront.audit")


@transaction.atomic
def api_key_create(*, name: str, scopes: list[str], actor) -> tuple[ApiKey, str]:
    """A new API key; returns the row and the key itself (shown once, never stored)."""
    key, prefix, digest = key_generate()
    api_key = ApiKey.objects.create(
        name=name.strip(),
        prefix=prefix,
        digest=digest,
        scopes=sorted(set(scopes)),
        created_at=timezone.now(),
        created_by=actor,
    )
    audit_log.info(
        "API key %s (%s) created by %s with scopes %s",
        api_key.prefix,
        api_key.name,
        actor.get_username() if actor else "-",
        " ".join(api_key.scopes),
    )
    return api_key, key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor) -> ApiKey:
    """Revoke a key: calls with it are refused from now on in this process, and within
    STOREFRONT_API_KEY_CACHE_SECONDS in every other (a revoked key stays listed)."""
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    # Now (a rollback only makes the next call read the key again) and once committed (a
    # call on another thread may have cached it meanwhile).
    api_key_forget(api_key.prefix)
    transaction.on_commit(lambda: api_key_forget(api_key.prefix))
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.revoked_by = actor
        api_key.save(update_fields=["revoked_at", "revoked_by"])
        audit_log.info(
            "API key %s (%s) revoked by %s",
            api_key.prefix,
            api_key.name,
            actor.get_username() if actor else "-",
        )
    return api_key


def visitor_link(*, visitor_id: str, customer: Customer) -> int:
    """Give a visitor's anonymous launches to the customer they turned out to be (at sign-up
    or login); returns how many were linked."""
    linked = Launch.objects.filter(customer__isnull=True, visitor_id=visitor_id).update(
        customer=customer
    )
    if linked:
        customers_launch_source_refresh([customer.pk])
    return linked


def _launch_source_sql() -> str:
    """The source of customer `c`'s latest launch that had one ('' if none): what
    Customer.last_launch_source stores (as storefront.selectors reads a customer's launches
    for attribution: latest first, ties by id)."""
    launches = connection.ops.quote_name(Launch._meta.db_table)
    return (
        f"COALESCE((SELECT l.source FROM {launches} l WHERE l.customer_id = c.id "
        "AND l.source <> '' ORDER BY l.occurred_at DESC, l.id DESC LIMIT 1), '')"
    )


def customers_launch_source_refresh(customer_ids: list[int] | None = None) -> int:
    """Write Customer.last_launch_source from the launches, for these customers (every
    customer when None), only where it differs; returns how many rows were written."""
    customers = connection.ops.quote_name(Customer._meta.db_table)
    truth = _launch_source_sql()
    where, params = "", []
    if customer_ids is not None:
        if not customer_ids:
            return 0
        where = "c.id IN (" + ", ".join(["%s"] * len(customer_ids)) + ") AND "
        params = list(customer_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {customers} AS c SET last_launch_source = {truth} "
            f"WHERE {where}c.last_launch_source <> {truth}",
            params,
        )
        return cursor.rowcount


def customers_launch_source_mismatches() -> int:
    """How many customers' stored last launch source differs from their launches."""
    customers = connection.ops.quote_name(Customer._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {customers} c WHERE c.last_launch_source <> "
            + _launch_source_sql()
        )
        return cursor.fetchone()[0]


@transaction.atomic
def launch_record(
    *,
    platform: str,
    occurred_at: datetime | None = None,
    customer: Customer | None = None,
    visitor_id: str = "",
    source: str = "",
    medium: str = "",
    campaign: str = "",
    referrer: str = "",
    device: str = "",
    api_key: ApiKey | None = None,
) -> Launch:
    """The app was launched or the site visited. A launch with both a customer and a visitor
    id (a login) also links that visitor's earlier anonymous launches to the customer."""
    now = timezone.now()
    launch = Launch.objects.create(
        customer=customer,
        visitor_id=visitor_id,
        occurred_at=occurred_at or now,
        received_at=now,
        source=source,
        medium=medium,
        campaign=campaign,
        referrer=referrer,
        platform=platform,
        device=device,
        api_key=api_key,
    )
    if (
        customer is not None
        and visitor_id
        and visitor_link(visitor_id=visitor_id, customer=customer)
    ):
        return launch  # the customer's last launch source was refreshed with the linked ones
    if customer is not None and source:
        # Usually the same source as before, or an older launch arriving late: the row is
        # written only when the latest launch's source changed.
        customers_launch_source_refresh([customer.pk])
    return launch
