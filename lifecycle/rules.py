"""The lifecycle groups' rules, written once for Python and once for SQL (kept in step by
tests/lifecycle/test_rules.py, which compares them customer by customer).

A customer's group follows from three figures stored on the customer (clients.models.Customer)
and five thresholds (lifecycle.models.Thresholds):

- recency: days since the last finalized order (`last_order_at`),
- frequency: finalized orders (`orders_count`),
- monetary value: total spent, net of refunds (`total_spent`);
- `recent_days`, `active_days`, `lost_days`: recency bands; `top_orders`, `top_spent`: what
  makes a customer one of the shop's most frequent or biggest buyers.

The rules are tried in order, the first that holds gives the group (README, "Lifecycle
groups"). Nothing here reads the database: `group_sql` builds the CASE expression that the
order services' statistics statements and the daily recompute embed, reading the thresholds
from their one-row table with fixed fallbacks if it is empty.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext

from backoffice.templatetags.formatting import money

DAY = timedelta(days=1)


class Group(models.TextChoices):
    """The groups, in the order the dashboard lists them."""

    CHAMPIONS = "champions", _("Champions")
    LOYAL = "loyal", _("Loyal")
    PROMISING = "promising", _("Promising")
    NEW = "new", _("New")
    NEEDS_ATTENTION = "needs_attention", _("Needs attention")
    AT_RISK = "at_risk", _("At risk")
    ABOUT_TO_LOSE = "about_to_lose", _("About to lose")
    LOST = "lost", _("Lost")
    PROSPECTS = "prospects", _("Prospects")


# Groups that still buy: the Overdue work list leaves Lost customers (and leads) out.
OVERDUE_GROUPS = tuple(g for g in Group.values if g not in (Group.LOST, Group.PROSPECTS))


@dataclass(frozen=True)
class Rules:
    """The five thresholds the groups are decided by."""

    recent_days: int
    active_days: int
    lost_days: int
    top_orders: int
    top_spent: Decimal


# A shop with fewer clients than this has no distribution worth its quantiles: it gets
# FALLBACK (recency in days, frequency in orders, money in the shop's currency).
MIN_CLIENTS = 100
FALLBACK = Rules(
    recent_days=30, active_days=90, lost_days=365, top_orders=4, top_spent=Decimal("500")
)
# Quantiles of the shop's clients (customers with a finalized order).
RECENT_QUANTILE = 0.20  # the 20% who ordered most recently are "recent"
ACTIVE_QUANTILE = 0.50  # half the clients ordered within active_days
LOST_QUANTILE = 0.90  # the 10% who have not ordered for longest are lost
TOP_QUANTILE = 0.80  # top 20% by orders and by money
# Floors, so that a shop whose clients all ordered this week keeps sensible bands.
MIN_RECENT_DAYS, MIN_ACTIVE_DAYS, MIN_LOST_DAYS, MIN_TOP_ORDERS = 7, 14, 60, 2


def rules_from_quantiles(
    *, recent: float, active: float, lost: float, top_orders: int, top_spent: Decimal
) -> Rules:
    """Thresholds from the shop's quantiles (days as measured, rounded up), floored and kept
    in order (recent <= active <= lost)."""
    recent_days = max(MIN_RECENT_DAYS, math.ceil(recent))
    active_days = max(MIN_ACTIVE_DAYS, recent_days, math.ceil(active))
    lost_days = max(MIN_LOST_DAYS, active_days, math.ceil(lost))
    return Rules(
        recent_days=recent_days,
        active_days=active_days,
        lost_days=lost_days,
        top_orders=max(MIN_TOP_ORDERS, int(top_orders)),
        top_spent=Decimal(top_spent),
    )


def _within(last: datetime, now: datetime, days: int) -> bool:
    return now - last <= days * DAY


def group_of(
    *, orders_count: int, total_spent: Decimal, last_order_at: datetime | None, now, rules: Rules
) -> str:
    """The group of one customer: the reference the SQL below must agree with."""
    n, spent = orders_count, total_spent
    if n == 0 or last_order_at is None:
        return Group.PROSPECTS
    recent = _within(last_order_at, now, rules.recent_days)
    active = _within(last_order_at, now, rules.active_days)
    if n == 1 and recent:
        return Group.NEW
    if recent and n >= rules.top_orders and spent >= rules.top_spent:
        return Group.CHAMPIONS
    if active and n >= rules.top_orders:
        return Group.LOYAL
    if recent:
        return Group.PROMISING
    if active:
        return Group.NEEDS_ATTENTION
    if not _within(last_order_at, now, rules.lost_days):
        return Group.LOST
    if n >= rules.top_orders or spent >= rules.top_spent:
        return Group.AT_RISK
    return Group.ABOUT_TO_LOSE


# --- SQL -------------------------------------------------------------------------------------

THRESHOLDS_TABLE = "lifecycle_thresholds"


def _threshold(column: str) -> str:
    fallback = getattr(FALLBACK, column)
    # An uncorrelated scalar subquery: evaluated once per statement (an InitPlan on
    # PostgreSQL), a primary-key read of a one-row table.
    return f"COALESCE((SELECT {column} FROM {THRESHOLDS_TABLE} WHERE id = 1), {fallback})"


def group_sql(
    vendor: str, *, n: str, spent: str, last: str, now: str = "", rules: Rules | None = None
) -> str:
    """The SQL CASE expression of group_of() over SQL expressions for the orders count, the
    total spent and the last order's time. `now`, a parameter placeholder, defaults to the
    database's clock (the transaction's start on PostgreSQL). The thresholds are read from
    their table, or are `rules` when given (as numbers: they are no user input)."""

    def threshold(column: str) -> str:
        return _threshold(column) if rules is None else str(getattr(rules, column))

    def within(column: str) -> str:
        days = threshold(column)
        if vendor == "postgresql":
            moment = now or "now()"
            return f"(({last}) >= ({moment}) - ({days}) * interval '1 day')"
        moment = f"julianday({now})" if now else "julianday('now')"
        return f"(julianday({last}) >= {moment} - ({days}))"

    top_orders, top_spent = threshold("top_orders"), threshold("top_spent")
    recent, active, lost = within("recent_days"), within("active_days"), within("lost_days")
    return f"""CASE
        WHEN ({n}) = 0 OR ({last}) IS NULL THEN '{Group.PROSPECTS}'
        WHEN ({n}) = 1 AND {recent} THEN '{Group.NEW}'
        WHEN {recent} AND ({n}) >= {top_orders} AND ({spent}) >= {top_spent}
            THEN '{Group.CHAMPIONS}'
        WHEN {active} AND ({n}) >= {top_orders} THEN '{Group.LOYAL}'
        WHEN {recent} THEN '{Group.PROMISING}'
        WHEN {active} THEN '{Group.NEEDS_ATTENTION}'
        WHEN NOT {lost} THEN '{Group.LOST}'
        WHEN ({n}) >= {top_orders} OR ({spent}) >= {top_spent} THEN '{Group.AT_RISK}'
        ELSE '{Group.ABOUT_TO_LOSE}'
    END"""


# --- Expected next order and the reason ------------------------------------------------------


def usual_interval(
    *, orders_count: int, first_order_at: datetime | None, last_order_at: datetime | None
) -> timedelta | None:
    """The customer's own average time between orders (at least a day); None below two."""
    if orders_count < 2 or first_order_at is None or last_order_at is None:
        return None
    return max((last_order_at - first_order_at) / (orders_count - 1), DAY)


def expected_next_order(
    *, orders_count: int, first_order_at: datetime | None, last_order_at: datetime | None
) -> datetime | None:
    """When the customer would order again at their usual pace (two orders or more)."""
    interval = usual_interval(
        orders_count=orders_count, first_order_at=first_order_at, last_order_at=last_order_at
    )
    return None if interval is None else last_order_at + interval


def _days(n: int) -> str:
    return ngettext("%(n)s day", "%(n)s days", n) % {"n": n}


def _ago(days: int) -> str:
    """ "today", "yesterday", "3 days ago": when the last order was, in words."""
    if days == 0:
        return pgettext("lifecycle reason", "today")
    if days == 1:
        return pgettext("lifecycle reason", "yesterday")
    return pgettext("lifecycle reason", "%(days)s ago") % {"days": _days(days)}


def _orders(n: int) -> str:
    return ngettext("%(n)s order", "%(n)s orders", n) % {"n": n}


def reason(
    *,
    group: str,
    orders_count: int,
    total_spent: Decimal,
    first_order_at: datetime | None,
    last_order_at: datetime | None,
    now: datetime,
) -> str:
    """One line saying why a customer is in its group, in the active language, e.g.
    "At risk: no order for 142 days, usually orders every 45 days"."""
    label = Group(group).label if group in Group.values else Group.PROSPECTS.label
    if group == Group.PROSPECTS or last_order_at is None:
        detail = pgettext("lifecycle reason", "no order yet")
        return pgettext("lifecycle reason", "%(group)s: %(detail)s") % {
            "group": label,
            "detail": detail,
        }
    # Calendar days in the shop's time zone, as the expected next order counts them: an order
    # placed yesterday evening was "yesterday", not "today" (24-hour periods said so until the
    # next evening).
    days = max(0, (timezone.localdate(now) - timezone.localdate(last_order_at)).days)
    interval = usual_interval(
        orders_count=orders_count, first_order_at=first_order_at, last_order_at=last_order_at
    )
    since = {"days": _days(days)}
    if group == Group.NEW:
        detail = pgettext("lifecycle reason", "first order %(when)s") % {"when": _ago(days)}
    elif group in (Group.CHAMPIONS, Group.LOYAL, Group.PROMISING):
        detail = pgettext(
            "lifecycle reason", "%(orders)s, %(spent)s spent, the last one %(when)s"
        ) % {
            "orders": _orders(orders_count),
            "spent": money(total_spent),
            "when": _ago(days),
        }
    elif interval is not None:
        detail = pgettext(
            "lifecycle reason", "no order for %(days)s, usually orders every %(interval)s"
        ) % {**since, "interval": _days(max(1, round(interval / DAY)))}
    else:
        detail = pgettext("lifecycle reason", "no order for %(days)s, one order of %(spent)s") % {
            **since,
            "spent": money(total_spent),
        }
    return pgettext("lifecycle reason", "%(group)s: %(detail)s") % {
        "group": label,
        "detail": detail,
    }
