"""The search box and filters of the Clients and Leads tabs."""

import functools
from datetime import UTC

import django_filters
from django import forms
from django.core.validators import MaxValueValidator, RegexValidator
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django_filters.fields import DateRangeField

from backoffice.countries import is_country
from clients.models import Customer
from clients.search import MAX_PK, SearchQuery, parse_query
from lifecycle.rules import Group
from segments.filters import SegmentFilters

# Offered as suggestions; any value stored on orders can be typed.
KNOWN_SOURCES = ("google", "facebook", "instagram", "newsletter", "direct", "bing", "tiktok")
KNOWN_MEDIUMS = ("organic", "cpc", "referral", "email", "none", "social")

_MONEY = {"max_digits": 12, "decimal_places": 2, "min_value": 0}
_COUNT = {"min_value": 0, "validators": [MaxValueValidator(10**9)]}
_TEXT = {"max_length": 100}


class CountFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField


class ShopDateRangeField(DateRangeField):
    """From and to dates, read as whole days in the shop's time zone.

    A day at the edge of the calendar (1 January of year 1 east of Greenwich, 31 December
    9999 west of it) starts or ends outside what Python's datetime can hold in UTC, where the
    database compares: such a bound means "since the beginning" or "until the end" and is
    left out. A range that ends before it starts is refused with a message.
    """

    def compress(self, data_list):
        if data_list and all(data_list) and data_list[0] > data_list[1]:
            raise forms.ValidationError(
                _("The first date is after the second."), code="reversed_range"
            )
        value = super().compress(data_list)
        if value is None:
            return None
        start, stop = _in_utc_or_none(value.start), _in_utc_or_none(value.stop)
        return None if start is None and stop is None else slice(start, stop)


def _in_utc_or_none(moment):
    if moment is None:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


class ShopDateRangeFilter(django_filters.DateFromToRangeFilter):
    field_class = ShopDateRangeField


def _country_code(value: str) -> None:
    # Anything but two letters is already refused by the format check.
    if len(value) == 2 and value.isascii() and value.isalpha() and not is_country(value):
        raise forms.ValidationError(
            _("No country has the code “%(code)s”."), params={"code": value.upper()}
        )


class YesNoField(forms.NullBooleanField):
    """The value of a yes/no filter's select ("true", "false", or nothing for any): another
    value is an error, reported with the filters ignored, not read as "any" as
    NullBooleanField reads it (`push=yes` listed every customer without a word)."""

    _VALUES = {"true": True, "false": False, "1": True, "0": False}

    def to_python(self, value):
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        found = self._VALUES.get(str(value).strip().lower())
        if found is None:
            raise forms.ValidationError(
                forms.ChoiceField.default_error_messages["invalid_choice"],
                code="invalid_choice",
                params={"value": value},
            )
        return found


class YesNoFilter(django_filters.BooleanFilter):
    field_class = YesNoField


class CustomerFilterForm(forms.Form):
    """The filter form: a minimum above its maximum is reported and the range left out,
    rather than showing an empty list."""

    RANGES = (("spent_min", "spent_max"), ("orders_min", "orders_max"))

    def clean(self):
        cleaned = super().clean()
        for low, high in self.RANGES:
            if (
                cleaned.get(low) is not None
                and cleaned.get(high) is not None
                and cleaned[low] > cleaned[high]
            ):
                # The whole range is left out (the message is on its second field).
                cleaned.pop(low)
                self.add_error(
                    high,
                    forms.ValidationError(
                        _("The maximum is below the minimum."), code="reversed_range"
                    ),
                )
        return cleaned


class CustomerFilter(SegmentFilters):
    """The search and filters of the tabs; the filters of segments/filters.py come first."""

    q = django_filters.CharFilter(
        method="search",
        label=_("Search"),
        max_length=200,
        help_text=_("Client ID, name, email or phone"),
    )
    source = django_filters.CharFilter(field_name="last_source", label=_("Last source"), **_TEXT)
    medium = django_filters.CharFilter(field_name="last_medium", label=_("Medium"), **_TEXT)
    spent_min = django_filters.NumberFilter(
        field_name="total_spent", lookup_expr="gte", label=_("Total spent from"), **_MONEY
    )
    spent_max = django_filters.NumberFilter(
        field_name="total_spent", lookup_expr="lte", label=_("Total spent to"), **_MONEY
    )
    orders_min = CountFilter(
        field_name="orders_count",
        lookup_expr="gte",
        label=_("Orders from"),
        **_COUNT,
    )
    orders_max = CountFilter(
        field_name="orders_count",
        lookup_expr="lte",
        label=_("Orders to"),
        **_COUNT,
    )
    last_order = ShopDateRangeFilter(field_name="last_order_at", label=_("Last order between"))
    created = ShopDateRangeFilter(field_name="created_at", label=_("Customer since between"))
    push = YesNoFilter(
        field_name="push_opt_in",
        label=_("Push notifications"),
        widget=forms.Select(
            choices=[("", _("Any")), ("true", _("Accepted")), ("false", _("Not accepted"))]
        ),
    )
    # The consent ledger's current state (privacy/), denormalized on the customer.
    email_consent = YesNoFilter(
        field_name="email_consent",
        label=_("Email consent"),
        widget=forms.Select(
            choices=[("", _("Any")), ("true", _("Given")), ("false", _("Not given"))]
        ),
    )
    sms_consent = YesNoFilter(
        field_name="sms_consent",
        label=_("SMS consent"),
        widget=forms.Select(
            choices=[("", _("Any")), ("true", _("Given")), ("false", _("Not given"))]
        ),
    )
    # Written inline (backoffice.lookups): every plan of a page can use the group indexes.
    group = django_filters.ChoiceFilter(
        field_name="lifecycle_group",
        lookup_expr="inline_exact",
        label=_("Lifecycle group"),
        choices=Group.choices,
    )
    country = django_filters.CharFilter(
        field_name="country",
        method="by_country",
        label=_("Country"),
        max_length=2,
        validators=[
            RegexValidator(r"^[A-Za-z]{2}$", _("Enter a two-letter country code.")),
            _country_code,
        ],
    )

    class Meta:
        model = Customer
        fields = []
        form = CustomerFilterForm

    def search(self, queryset, name, value):
        """Every word of the search in the customer's search text, in any order; a
        phone-like search also as one string of digits; "#295" is client 295 alone."""
        query = parse_query(value)
        if query.client_id is not None:
            if query.client_id > MAX_PK:
                return queryset.none()
            return queryset.filter(pk=query.client_id)
        if not query.words:
            return queryset
        return queryset.filter(search_condition(query))

    def by_country(self, queryset, name, value):
        return queryset.filter(country=value.upper())

    @property
    def active(self) -> bool:
        """Whether any search or filter is applied."""
        return self.is_bound and any(_applied(v) for v in self.form.cleaned_data.values())

    @property
    def search_alone(self) -> bool:
        """Whether the search box is all that applies: valid, and no filter besides it."""
        if not (self.is_bound and self.is_valid()):
            return False
        data = self.form.cleaned_data
        return _applied(data.get("q")) and not any(
            _applied(value) for name, value in data.items() if name != "q"
        )

    def errors_text(self) -> str:
        return "; ".join(
            f"{self.form.fields[field].label if field in self.form.fields else field}: "
            + " ".join(errors)
            for field, errors in self.form.errors.items()
        )


def search_condition(query: SearchQuery) -> Q:
    """The condition of a search with words: every word in the customer's search text, or a
    phone-like query's digits as one string."""
    condition = Q(*(Q(search_text__contains=word) for word in query.words))
    if query.digits and (query.digits,) != query.words:
        condition |= Q(search_text__contains=query.digits)
    return condition


def _empty_range(value) -> bool:
    return isinstance(value, slice) and value.start is None and value.stop is None


def _applied(value) -> bool:
    """Whether a cleaned value of the form searches or filters."""
    return value not in (None, "", [], slice(None)) and not _empty_range(value)


@functools.cache
def filter_keys() -> frozenset[str]:
    """The query-string keys the search and filters read ("q", "source", "last_order_after"…)."""
    keys = set()
    for name, field in CustomerFilter().form.fields.items():
        widget = field.widget
        if hasattr(widget, "suffixes"):  # a range: name_after, name_before
            keys.update(widget.suffixed(name, suffix) for suffix in widget.suffixes)
        else:
            keys.add(name)
    return frozenset(keys)
