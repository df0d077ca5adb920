"""Data the segment filters of bench_lists need beyond what seed_demo makes, added once to the
benchmark database (set-based SQL; PostgreSQL for the launches and push clicks).

- 20 tags ("bench-tag-1" … "bench-tag-20") spread over every customer: each customer carries
  tag (id mod 20) + 1, and one in three a second one; the first 100,000 clients by id also
  carry "bench-bulk-source": what the bulk tagging benchmark tags.
- Launches (PostgreSQL): two per customer for half of the customers, sources spread over
  the known sources, in the last 180 days.
- Push clicks (PostgreSQL): one sent campaign delivered to every active subscription, 5% of
  the deliveries clicked.
The customers' stored last launch source and "opened a push" are written as the services
would (`rebuild_customer_activity --check` agrees).
"""

from django.db import connection, transaction
from django.utils import timezone

from clients.filters import KNOWN_SOURCES
from clients.models import Customer
from notifications.models import Campaign, CampaignStatus, Delivery, PushSubscription
from storefront.models import Launch
from tags.models import CustomerTag, Tag

TAG_COUNT = 20
BULK_SOURCE_TAG = "bench-bulk-source"
# The bulk tagging benchmark tags this many clients (those carrying BULK_SOURCE_TAG).
BULK_CUSTOMERS = 100_000
BENCH_CAMPAIGN = "bench: clicked pushes"
# Customers whose stored launch source one UPDATE writes.
LAUNCH_SLICE = 50_000


def ensure(stderr) -> dict:
    """Add what is missing; the tags' ids by name."""
    q = connection.ops.quote_name
    customers, customer_tag, tag_table = (
        q(Customer._meta.db_table),
        q(CustomerTag._meta.db_table),
        q(Tag._meta.db_table),
    )
    now = timezone.now()
    with transaction.atomic():
        for n in range(1, TAG_COUNT + 1):
            Tag.objects.get_or_create(
                name=f"bench-tag-{n}", defaults={"created_at": now, "updated_at": now}
            )
        Tag.objects.get_or_create(
            name=BULK_SOURCE_TAG, defaults={"created_at": now, "updated_at": now}
        )
    tags = dict(Tag.objects.values_list("name", "pk"))
    bench_tags = [tags[f"bench-tag-{n}"] for n in range(1, TAG_COUNT + 1)]
    # Any of them (a small database may have no customer whose id gives "bench-tag-1").
    if not CustomerTag.objects.filter(tag_id__in=bench_tags).exists():
        stderr.write("  adding 20 tags over every customer…")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {customer_tag} (tag_id, customer_id) "
                f"SELECT t.id, c.id FROM {customers} c JOIN {tag_table} t "
                f"ON t.name = 'bench-tag-' || (c.id %% {TAG_COUNT} + 1) "
                f"UNION ALL SELECT t.id, c.id FROM {customers} c JOIN {tag_table} t "
                f"ON t.name = 'bench-tag-' || ((c.id / 3 + 7) %% {TAG_COUNT} + 1) "
                f"WHERE c.id %% 3 = 0 AND (c.id / 3 + 7) %% {TAG_COUNT} <> c.id %% {TAG_COUNT} "
                f"UNION ALL SELECT t.id, c.id FROM {customers} c JOIN {tag_table} t "
                f"ON t.name = '{BULK_SOURCE_TAG}' WHERE c.id IN (SELECT id FROM "
                f"(SELECT id FROM {customers} WHERE orders_count > 0 ORDER BY id "
                f"LIMIT {BULK_CUSTOMERS}) AS first_clients)",
                [],
            )
    if connection.vendor != "postgresql":
        return tags
    wrote_customers = False  # the stored launch source or push click: VACUUM the rows after
    if not Launch.objects.exists():
        wrote_customers = True
        stderr.write("  adding launches for half of the customers…")
        sources = "ARRAY[" + ",".join(f"'{s}'" for s in KNOWN_SOURCES) + "]"
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {q(Launch._meta.db_table)} (customer_id, visitor_id, occurred_at, "
                "received_at, source, medium, campaign, referrer, platform, device) "
                f"SELECT c.id, '', now() - ((c.id * 7 + k * 13) %% 180) * interval '1 day', now(), "
                f"({sources})[1 + (c.id + k) %% {len(KNOWN_SOURCES)}], '', '', '', 'web', '' "
                f"FROM {customers} c CROSS JOIN (VALUES (0), (1)) AS n(k) WHERE c.id %% 2 = 0",
                [],
            )
            cursor.execute(f"ANALYZE {q(Launch._meta.db_table)}")
            # What storefront.services.launch_record writes on the customer, in slices of
            # ids: one UPDATE of 500,000 customers ran for over 20 minutes (at 1M customers,
            # 2026-12-01), where slices take about 150 µs per customer.
            cursor.execute(f"SELECT coalesce(max(id), 0) FROM {customers}")
            (last_id,) = cursor.fetchone()
            for low in range(0, last_id + 1, LAUNCH_SLICE):
                cursor.execute(
                    f"UPDATE {customers} AS c SET last_launch_source = l.source FROM "
                    f"(SELECT DISTINCT ON (customer_id) customer_id, source "
                    f"FROM {q(Launch._meta.db_table)} WHERE source <> '' "
                    "AND customer_id >= %s AND customer_id < %s "
                    "ORDER BY customer_id, occurred_at DESC, id DESC) AS l "
                    "WHERE c.id = l.customer_id AND c.last_launch_source <> l.source",
                    [low, low + LAUNCH_SLICE],
                )
    if not Campaign.objects.filter(title=BENCH_CAMPAIGN).exists():
        wrote_customers = True
        stderr.write("  adding a campaign delivered to every subscription, 5% clicked…")
        with transaction.atomic():
            campaign = Campaign.objects.create(
                title=BENCH_CAMPAIGN,
                body="bench",
                audience_tab="clients",
                audience_kind="all",
                status=CampaignStatus.SENT,
                public_base_url="https://example.com/",
                created_at=now,
                send_at=now,
            )
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {q(Delivery._meta.db_table)} (campaign_id, subscription_id, "
                    "batch, status, attempts, claim, error, sent_at, clicked_at) "
                    "SELECT %s, s.id, 0, 'sent', 1, '', '', now(), "
                    "CASE WHEN s.id %% 20 = 0 THEN now() END "
                    f"FROM {q(PushSubscription._meta.db_table)} s WHERE s.status = 'active'",
                    [campaign.pk],
                )
                # What notifications.services.click_record writes on the customer.
                cursor.execute(
                    f"UPDATE {customers} SET push_opened = TRUE WHERE NOT push_opened AND id IN "
                    f"(SELECT s.customer_id FROM {q(Delivery._meta.db_table)} d "
                    f"JOIN {q(PushSubscription._meta.db_table)} s ON s.id = d.subscription_id "
                    "WHERE d.clicked_at IS NOT NULL)",
                    [],
                )
                cursor.execute(f"ANALYZE {q(Delivery._meta.db_table)}")
    if not connection.in_atomic_block:
        # What autovacuum does to tables written in bulk (the visibility map lets the tag
        # filters' counts read the indexes only); quick when nothing changed.
        with connection.cursor() as cursor:
            for model in (CustomerTag, Launch, Delivery, *[Customer] * wrote_customers):
                cursor.execute(f"VACUUM ANALYZE {q(model._meta.db_table)}")
    return tags
