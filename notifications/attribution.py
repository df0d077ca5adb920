"""What each push earned: which campaign an order is credited to, and the campaign link's UTM.

The rule (README, "What each push earned"):

- An order is credited to the campaign whose notification the customer clicked last (any of
  their devices) at most PUSH_ATTRIBUTION_DAYS (7) days before the order was *placed*, the
  click at or before the order's placed_at, both ends of the window included. Last click wins.
- It is decided once, when the order is recorded (orders/services.py writes it in the order's
  INSERT), from placed_at: a payment days later (a bank transfer) does not move it, and a click
  between placing and paying did not bring the order.
- It counts in the campaign's results as the customer's statistics count orders: once the order
  is a finalized purchase (paid, fulfilled or refunded), for its total less what was refunded.
  A pending order is shown as awaiting payment; a cancelled one counts nowhere.

Only the clicked deliveries are read (the partial index delivery_clicked), through the
customer's subscriptions: one indexed statement per order, and nothing at all is read for the
deliveries a customer never clicked.
"""

from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode

from django.conf import settings
from django.db import connection

from notifications.models import Delivery, PushSubscription

_LAST_CLICK_SQL = f"""
SELECT d.campaign_id FROM {Delivery._meta.db_table} d
JOIN {PushSubscription._meta.db_table} s ON s.id = d.subscription_id
WHERE s.customer_id = %s AND d.clicked_at IS NOT NULL AND d.clicked_at >= %s AND d.clicked_at <= %s
ORDER BY d.clicked_at DESC, d.id DESC
LIMIT 1
"""


def attribution_window() -> timedelta:
    return timedelta(days=settings.PUSH_ATTRIBUTION_DAYS)


def campaign_credited(*, customer_id: int, placed_at: datetime) -> int | None:
    """The id of the campaign an order placed at `placed_at` is credited to, or None."""
    ops = connection.ops
    with connection.cursor() as cursor:
        cursor.execute(
            _LAST_CLICK_SQL,
            [
                customer_id,
                ops.adapt_datetimefield_value(placed_at - attribution_window()),
                ops.adapt_datetimefield_value(placed_at),
            ],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def campaigns_credited(orders: list[tuple[int, datetime]]) -> list[int | None]:
    """campaign_credited for many (customer id, placed_at) at once, in one query (the bulk
    import): every click of these customers in the span the orders' windows cover."""
    if not orders:
        return []
    window = attribution_window()
    clicks: dict[int, list[tuple]] = {}
    rows = Delivery.objects.filter(
        subscription__customer_id__in=sorted({customer for customer, _ in orders}),
        clicked_at__isnull=False,
        clicked_at__gte=min(at for _, at in orders) - window,
        clicked_at__lte=max(at for _, at in orders),
    ).values_list("subscription__customer_id", "clicked_at", "id", "campaign_id")
    for customer, clicked_at, delivery, campaign in rows:
        clicks.setdefault(customer, []).append((clicked_at, delivery, campaign))
    credited = []
    for customer, placed_at in orders:
        inside = [c for c in clicks.get(customer, ()) if placed_at - window <= c[0] <= placed_at]
        credited.append(max(inside)[2] if inside else None)
    return credited


# --- The campaign link's UTM parameters ------------------------------------------------------

UTM_SOURCE = "backoffice"
UTM_MEDIUM = "push"


def utm_campaign(campaign_id: int) -> str:
    """The utm_campaign a campaign's link carries: stable and unique, "push-<id>"."""
    return f"push-{campaign_id}"


def link_with_utm(link: str, *, campaign_id: int) -> str:
    """The campaign's link with utm_source, utm_medium and utm_campaign added, so that the
    storefront's launch capture records where the visit came from.

    A parameter the admin already put in the link (even empty) is kept as it is (names
    compared as analytics tools and the storefront read them: decoded, case-sensitive). The
    rest of the link is not touched (its query string byte for byte, its fragment): the
    added parameters are appended to the query, before the fragment.
    """
    if not link:
        return link
    before, hash_, fragment = link.partition("#")
    present = {key for key, _ in parse_qsl(before.partition("?")[2], keep_blank_values=True)}
    added = [
        (key, value)
        for key, value in (
            ("utm_source", UTM_SOURCE),
            ("utm_medium", UTM_MEDIUM),
            ("utm_campaign", utm_campaign(campaign_id)),
        )
        if key not in present
    ]
    if not added:
        return link
    # Spliced into the link as typed, not rebuilt by urlunsplit (which drops an empty "?" or
    # "#" and could re-encode what the admin wrote).
    separator = "&" if "?" in before else "?"
    if before.endswith(("?", "&")):
        separator = ""
    return f"{before}{separator}{urlencode(added)}{hash_}{fragment}"
