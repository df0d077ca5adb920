"""The filters of the Clients and Leads tabs that know customers by what they did or carry:
tags, products bought, orders in the last N days, last launch source, push opened.

CustomerFilter (clients/filters.py) inherits them, so the lists, saved segments and push
audiences (clients.selectors.customer_audience) read them as they read the other filters.
Each one is a semi-join (EXISTS) or a correlated subquery served by an index on the customer
side of its table, or a column of the customer row written by the services that change it
(last launch source, push opened), never an aggregate over a whole table.
"""

from datetime import timedelta

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, Q, Subquery
from django.db.models.lookups import Exact, GreaterThan
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_filters.widgets import SuffixedMultiWidget

from backoffice.filtersets import SharedFormFilterSet
from clients.models import LATEST_ORDER_DATES
from orders.models import FINALIZED_STATUSES, CustomerProduct, Order, Product
from tags.models import CustomerTag, Tag

# At most this many tags in one tag filter.
MAX_TAGS_PER_FILTER = 50
# "Orders in the last N days": N from 1 to 10 years.
MAX_RECENT_DAYS = 3650
_PK_LIMIT = 2**63 - 1
# A product text matching more products than this (a name fragment such as "a") is looked up
# as a subquery rather than as a list of ids.
MAX_PRODUCTS = 500


def _restricted_to(queryset, lookup) -> bool:
    """Whether `queryset`'s conditions include `orders_count <lookup> 0`."""
    return any(
        isinstance(child, lookup)
        and getattr(child.lhs, "target", None) is not None
        and child.lhs.target.name == "orders_count"
        and child.rhs == 0
        for child in queryset.query.where.children
    )


def _clients_only(queryset) -> bool:
    """Whether `queryset` is already restricted to the Clients tab (orders_count > 0, as
    clients.models.IS_CLIENT writes it)."""
    return _restricted_to(queryset, GreaterThan)


def _leads_only(queryset) -> bool:
    """Whether `queryset` is already restricted to the Leads tab (orders_count = 0, as
    clients.models.IS_LEAD writes it)."""
    return _restricted_to(queryset, Exact)


def _given(value) -> bool:
    """Whether a cleaned filter value filters (an empty range or list does not)."""
    if isinstance(value, slice):
        return value.start is not None or value.stop is not None
    return value not in (None, "", [])


def _nth_latest_order(n: int, *, since) -> Subquery:
    """The date of the customer's n-th latest finalized order placed since `since` (NULL if
    it has fewer): at most n entries of the orders' (customer, placed_at) index, and their
    rows for the status."""
    return Subquery(
        Order.objects.filter(
            customer=OuterRef("pk"), status__in=FINALIZED_STATUSES, placed_at__gte=since
        )
        .order_by("-placed_at", "-id")
        .values("placed_at")[n - 1 : n]
    )


class TagChoiceField(forms.ModelMultipleChoiceField):
    """Tags chosen by id; [] when none (a filter left empty is no filter), the tags otherwise.

    Ids are checked to be numbers a primary key can hold before the database sees them.
    """

    default_error_messages = {
        **forms.ModelMultipleChoiceField.default_error_messages,
        "too_many": _("Choose at most %(max)s tags."),
    }

    def clean(self, value):
        if not value:
            return []
        if len(value) > MAX_TAGS_PER_FILTER:
            raise forms.ValidationError(
                self.error_messages["too_many"],
                code="too_many",
                params={"max": MAX_TAGS_PER_FILTER},
            )
        for item in value:
            text = str(item)
            if not (text.isascii() and text.isdigit() and 0 < int(text) <= _PK_LIMIT):
                raise forms.ValidationError(
                    self.error_messages["invalid_pk_value"],
                    code="invalid_pk_value",
                    params={"pk": text[:20]},
                )
        return list(super().clean(value))


class TagFilter(django_filters.ModelMultipleChoiceFilter):
    field_class = TagChoiceField


class RecentOrdersWidget(SuffixedMultiWidget):
    suffixes = ["min", "max", "days"]

    def __init__(self, attrs=None):
        super().__init__((forms.NumberInput, forms.NumberInput, forms.NumberInput), attrs)

    def decompress(self, value):
        return list(value) if value else [None, None, None]


class RecentOrdersField(forms.MultiValueField):
    """From, to and days: "between 2 and 5 finalized orders in the last 90 days". Days alone
    mean at least one order; a range without days is refused with a message."""

    widget = RecentOrdersWidget

    def __init__(self, *args, **kwargs):
        count = {"min_value": 0, "max_value": 10**9, "required": False}
        fields = (
            forms.IntegerField(**count),
            forms.IntegerField(**count),
            forms.IntegerField(min_value=1, max_value=MAX_RECENT_DAYS, required=False),
        )
        kwargs.setdefault("require_all_fields", False)
        super().__init__(fields, *args, **kwargs)

    def compress(self, data_list):
        if not data_list or all(value is None for value in data_list):
            return None
        low, high, days = data_list
        if days is None:
            raise forms.ValidationError(
                _("Say over how many days the orders are counted."), code="days_missing"
            )
        if low is not None and high is not None and low > high:
            raise forms.ValidationError(
                _("The maximum is below the minimum."), code="reversed_range"
            )
        if low is None and high is None:
            low = 1
        return (low, high, days)


class RecentOrdersFilter(django_filters.Filter):
    field_class = RecentOrdersField


class SegmentFilters(SharedFormFilterSet):
    """The filters added for segments; CustomerFilter inherits them."""

    # A list under one of these filters counts its matches up to this many ("more than
    # 1,000"), not COUNT_CAP: each candidate customer costs an index probe into another
    # table, and counting 10,000 matches was most of the page's time at a million customers.
    RELATED_COUNT_CAP = 1000
    RELATED = ("tags_any", "tags_all", "tags_none", "product", "recent_orders", "launch_source")
    RELATED += ("opened_push",)

    tags_any = TagFilter(
        queryset=Tag.objects.all(), method="by_tags_any", label=_("Has any of the tags")
    )
    tags_all = TagFilter(
        queryset=Tag.objects.all(), method="by_tags_all", label=_("Has all of the tags")
    )
    tags_none = TagFilter(
        queryset=Tag.objects.all(), method="by_tags_none", label=_("Has none of the tags")
    )
    product = django_filters.CharFilter(
        method="by_product",
        label=_("Bought a product"),
        max_length=100,
        help_text=_("SKU or part of the product name"),
    )
    recent_orders = RecentOrdersFilter(
        method="by_recent_orders", label=_("Orders in the last days")
    )
    launch_source = django_filters.CharFilter(
        method="by_launch_source", label=_("Last launch source"), max_length=100
    )
    opened_push = django_filters.ChoiceFilter(
        method="by_opened_push",
        label=_("Opened a push"),
        choices=[("never", _("Never")), ("yes", _("At least once"))],
        empty_label=_("Any"),
    )

    @staticmethod
    def _tagged(tags) -> Exists:
        return Exists(CustomerTag.objects.filter(customer=OuterRef("pk"), tag__in=tags))

    def by_tags_any(self, queryset, name, tags):
        return queryset.filter(self._tagged(tags))

    def by_tags_all(self, queryset, name, tags):
        return queryset.filter(*(self._tagged([tag]) for tag in tags))

    def by_tags_none(self, queryset, name, tags):
        return queryset.filter(~self._tagged(tags))

    def by_product(self, queryset, name, value):
        """Customers with a finalized order holding a line of that SKU (ignoring case) or
        whose product name contains the text."""
        value = value.strip()
        if not value:
            return queryset
        # The products first (a small table, one query), then who bought them: the
        # (product, customer) index of CustomerProduct, kept by the order services. Constant
        # ids, not a subquery: PostgreSQL then knows each (product, customer) pair is unique
        # and streams the count instead of first gathering every buyer of the product.
        matching = Product.objects.filter(Q(sku__iexact=value) | Q(name__icontains=value))
        products = list(matching.order_by("pk").values_list("pk", flat=True)[: MAX_PRODUCTS + 1])
        if not products:
            return queryset.none()
        if len(products) > MAX_PRODUCTS:  # a fragment most products share: as a subquery
            products = matching.values("pk")
        bought = CustomerProduct.objects.filter(customer=OuterRef("pk"), product__in=products)
        return queryset.filter(Exists(bought))

    def by_recent_orders(self, queryset, name, value):
        """Customers with between `low` and `high` finalized orders placed in the last `days`.

        A customer has at least N orders since a date iff its N-th latest finalized order is
        since that date, and at most N iff its (N+1)-th is not. The customer stores the dates
        of its ten latest (clients.models.LATEST_ORDER_DATES, kept by the order services),
        so up to ten the filter compares stored dates; past ten it reads the N-th latest
        order from the (customer, placed_at) index, at most N rows per candidate, for the
        candidates the stored dates have not ruled out.
        """
        low, high, days = value
        since = timezone.now() - timedelta(days=days)
        low = low or 0
        if high == 0:
            if _clients_only(queryset):
                # Clients always have a last order: a range the tab's index reads directly.
                return queryset.filter(last_order_at__lt=since)
            return queryset.filter(Q(last_order_at__lt=since) | Q(last_order_at__isnull=True))
        stored = len(LATEST_ORDER_DATES)
        if low and _leads_only(queryset):
            # Leads have no finalized order (and no index of these dates to say so quickly).
            return queryset.none()
        if low:
            # The low-th latest order (or the oldest stored) is in the period. From two to
            # four, the second latest is said to be too: its index (clients migration 0023)
            # finds the few customers of a short period. Not every date in between: PostgreSQL
            # would take them for independent conditions and expect far fewer matches. Five,
            # the fifth latest alone: its own index (migration 0025) holds the clients with
            # five orders, and the second's would only add rows to read (the count of "5+ in
            # 30 days" read 16,000 rows of the second's 53,644 entries). Past five, the low-th
            # alone for the page, so that PostgreSQL expects as many matches as there are and
            # walks the sort's index (with the fifth too, it sorted the 31,995 clients of the
            # fifth's index for a page of "10+ in 90 days": 14,358 buffers, 26 ms, against 212
            # buffers, 0.1 ms); the count (counted_qs) names the fifth as well: its index
            # carries the later dates (migration 0026), so the count reads that index alone.
            wanted = {LATEST_ORDER_DATES[min(low, stored) - 1]}
            if 2 <= low < 5 or (low > 5 and self._counting):
                wanted.add(LATEST_ORDER_DATES[1 if low < 5 else 4])
            queryset = queryset.filter(**{f"{column}__gte": since for column in sorted(wanted)})
            if low > stored:
                queryset = queryset.alias(recent_low=_nth_latest_order(low, since=since)).filter(
                    orders_count__gte=low, recent_low__isnull=False
                )
        if high is not None:
            if high < stored:
                column = LATEST_ORDER_DATES[high]
                queryset = queryset.filter(
                    Q(**{f"{column}__lt": since}) | Q(**{f"{column}__isnull": True})
                )
            else:
                column = LATEST_ORDER_DATES[-1]
                queryset = queryset.alias(
                    recent_high=_nth_latest_order(high + 1, since=since)
                ).filter(
                    Q(**{f"{column}__lt": since})
                    | Q(**{f"{column}__isnull": True})
                    | Q(orders_count__lte=high)
                    | Q(recent_high__isnull=True)
                )
        return queryset

    def by_launch_source(self, queryset, name, value):
        """Customers whose latest launch with a source came from `value` (as attribution
        reads launches: storefront.selectors.launch_attributing_order), stored on the
        customer by storefront.services; a rare source is read from its partial index."""
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(last_launch_source=value)

    def by_opened_push(self, queryset, name, value):
        """Customers who clicked a push at least once (or never), stored on the customer by
        notifications.services.click_record."""
        return queryset.filter(push_opened=value == "yes")

    # Filters on other tables than the customer's, and the search (its matches come from its
    # trigram index): a probe per tag carrier would evaluate them once per carrier (see
    # count_through_tag; tag + "mar": 146 -> 181 ms when tried).
    NOT_PROBED = ("tags_all", "tags_none", "product", "q")

    def count_through_tag(self) -> Tag | None:
        """The tag whose carriers segments.selectors.capped_count_sql reads first: the one tag
        of "has any of the tags" when the other filters (one at least) read only the customer
        row (not the search, nor orders past the ten dates it stores). A tag alone is counted
        as it was: PostgreSQL merges the tab's index with the tag's, both read without the
        table."""
        if not self.is_bound or not self.is_valid():
            return None
        data = self.form.cleaned_data
        tags = data.get("tags_any") or []
        others = [name for name, value in data.items() if name != "tags_any" and _given(value)]
        if len(tags) != 1 or not others or any(name in self.NOT_PROBED for name in others):
            return None
        if data.get("recent_orders"):
            low, high, _days = data["recent_orders"]
            stored = len(LATEST_ORDER_DATES)
            if (low or 0) > stored or (high is not None and high >= stored):
                return None  # each probe would read the customer's orders
        return tags[0]

    # True while counted_qs() or queryset_without() apply the filters.
    _counting = False

    def queryset_without(self, name: str):
        """The customers under every valid filter but `name`, applied as counted_qs() applies
        them (segments.selectors.capped_count_sql probes these customers)."""
        self._counting = True
        try:
            queryset = self.queryset.all()
            for key, value in self.form.cleaned_data.items():
                if key != name:
                    queryset = self.filters[key].filter(queryset, value)
        finally:
            self._counting = False
        return queryset

    def counted_qs(self):
        """The customers of `qs`, with the conditions that help an index count them but
        would mislead PostgreSQL's estimate for a sorted page (by_recent_orders: the fifth
        latest order's date besides a later one's)."""
        return self.queryset_without("")

    @property
    def count_cap(self) -> int | None:
        """RELATED_COUNT_CAP when a valid filter of this class applies, else None."""
        if not self.is_bound or not self.is_valid():
            return None
        data = self.form.cleaned_data
        if any(data.get(name) not in (None, "", []) for name in self.RELATED):
            return self.RELATED_COUNT_CAP
        return None
