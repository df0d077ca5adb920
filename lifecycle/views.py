"""The lifecycle dashboard (groups now and 30 days ago) and the Overdue work list."""

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.paginator import EmptyPage
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext
from django.views import View

from clients.paginators import CappedCountPaginator
from lifecycle.rules import MIN_CLIENTS
from lifecycle.selectors import (
    MOVEMENT_DAYS,
    current_rules,
    customer_lifecycle,
    group_movement,
    overdue_customers,
)

OVERDUE_PER_PAGE = 50


class DashboardView(PermissionRequiredMixin, View):
    permission_required = "clients.view_customer"

    def get(self, request):
        rows, since = group_movement(today=timezone.localdate())
        rules, thresholds = current_rules()
        context = {
            "rows": rows,
            "since": since,
            "movement_days": MOVEMENT_DAYS,
            "total": sum(row.now for row in rows),
            "rules": rules,
            "thresholds": thresholds,
            "min_clients": MIN_CLIENTS,
        }
        return render(request, "lifecycle/dashboard.html", context)


def _page_number(request, notices: list[str]) -> int:
    raw = request.GET.get("page", "")
    if not raw:
        return 1
    if raw.isascii() and raw.isdigit() and 0 < int(raw) < 10**9:
        return int(raw)
    notices.append(gettext("“%(value)s” is not a valid page.") % {"value": raw[:20]})
    return 1


class OverdueView(PermissionRequiredMixin, View):
    """Customers past their expected next order, the most valuable first."""

    permission_required = "clients.view_customer"

    def get(self, request):
        now = timezone.now()
        notices: list[str] = []
        paginator = CappedCountPaginator(overdue_customers(now=now), OVERDUE_PER_PAGE)
        number = _page_number(request, notices)
        try:
            page = paginator.page(number)
        except EmptyPage:
            notices.append(
                gettext("Page %(page)s does not exist; showing page %(last)s.")
                % {"page": number, "last": 1}
            )
            page = paginator.page(1)
        rows = [(customer, customer_lifecycle(customer, now=now)) for customer in page]
        context = {"page": page, "paginator": paginator, "rows": rows, "notices": notices}
        return render(request, "lifecycle/overdue.html", context)
