"""The lifecycle dashboard (groups now and 30 days ago) and the Overdue work list."""

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.paginator import EmptyPage
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext
from django.views import View

from clients.paginators import KnownCountPaginator
from lifecycle.rules import MIN_CLIENTS
from lifecycle.selectors import (
    MOVEMENT_DAYS,
    current_rules,
    customer_lifecycle,
    group_movement,
    overdue_customers,
)

OVERDUE_PER_PAGE = 50
OVERDUE_LIMIT = 1000


class DashboardView(PermissionRequiredMixin, View):
    permission_required = "clients.view_customer"

    def get(self, request):
        rows, since, reconstructed = group_movement(today=timezone.localdate())
        rules, thresholds = current_rules()
        context = {
            "rows": rows,
            "since": since,
            "reconstructed": reconstructed,
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
        overdue = overdue_customers(now=now)
        # The list stops at the OVERDUE_LIMIT most valuable: a day's work, and each row past
        # the first page costs a visit of the table (the filter needs the dates).
        found = overdue[: OVERDUE_LIMIT + 1].count()
        more = found > OVERDUE_LIMIT
        paginator = KnownCountPaginator(
            overdue[:OVERDUE_LIMIT], OVERDUE_PER_PAGE, count=min(found, OVERDUE_LIMIT)
        )
        number = _page_number(request, notices)
        try:
            page = paginator.page(number)
        except EmptyPage:
            last = max(paginator.num_pages, 1)
            notices.append(
                gettext("Page %(page)s does not exist; showing page %(last)s.")
                % {"page": number, "last": last}
            )
            page = paginator.page(last)
        rows = [(customer, customer_lifecycle(customer, now=now)) for customer in page]
        context = {
            "page": page,
            "paginator": paginator,
            "rows": rows,
            "notices": notices,
            "more": more,
            "limit": OVERDUE_LIMIT,
        }
        return render(request, "lifecycle/overdue.html", context)
