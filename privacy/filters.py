"""The access log's filters (/audit/): per customer, per user, per action, per period."""

import django_filters
from django import forms
from django.utils.translation import gettext_lazy as _

from privacy.models import AccessAction, AccessLogEntry

MAX_ID = 2**63 - 1


class AccessLogFilter(django_filters.FilterSet):
    customer = django_filters.NumberFilter(
        field_name="customer_id",
        label=_("Client ID"),
        min_value=1,
        max_value=MAX_ID,
        widget=forms.NumberInput(attrs={"min": 1}),
    )
    user = django_filters.CharFilter(
        field_name="username", label=_("User"), lookup_expr="iexact", max_length=150
    )
    action = django_filters.ChoiceFilter(
        label=_("Action"), choices=AccessAction.choices, empty_label=_("Any action")
    )
    date = django_filters.DateFromToRangeFilter(
        field_name="at",
        label=_("Between"),
        widget=django_filters.widgets.DateRangeWidget(attrs={"type": "date"}),
    )

    class Meta:
        model = AccessLogEntry
        fields = ["customer", "user", "action", "date"]
