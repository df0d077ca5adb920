"""The access log's table (/audit/)."""

import django_tables2 as tables
from django.utils.translation import gettext_lazy as _

from privacy.models import AccessLogEntry


class AccessLogTable(tables.Table):
    at = tables.DateTimeColumn(verbose_name=_("Time"), format="SHORT_DATETIME_FORMAT")
    username = tables.Column(verbose_name=_("User"))
    action = tables.Column(verbose_name=_("Action"))
    customer_id = tables.Column(verbose_name=_("Client ID"))
    ip = tables.Column(verbose_name=_("From"))
    path = tables.Column(verbose_name=_("Page"))

    class Meta:
        model = AccessLogEntry
        fields = ("at", "username", "action", "customer_id", "ip", "path")
        # Newest first; the id makes pages stable.
        order_by = ("-at",)
        orderable = False
