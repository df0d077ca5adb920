"""The Clients and Leads tabs."""

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.paginator import EmptyPage, Paginator
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from clients.filters import KNOWN_MEDIUMS, KNOWN_SOURCES, CustomerFilter
from clients.paginators import CappedCountPaginator
from clients.search import SearchQuery, parse_query
from clients.selection import selected_ids
from clients.selectors import MAX_SELECTED, customer_list, customer_match_count, tab_counts
from clients.tables import SORT_KEYS, CustomerTable

PAGE_SIZES = (25, 50, 100)
PUSH_PERMISSION = "notifications.send_campaign"
OTHER_TAB = {"clients": "leads", "leads": "clients"}
# The other tab's matches are counted up to this many ("more than 1,000 matches in Leads"):
# the exact number is on that tab, and counting a common name's every match there would
# cost as much as the search itself.
OTHER_TAB_CAP = 1000
TAB_URLS = {"clients": "clients:client-list", "leads": "clients:lead-list"}
# How the integer query parameters are named in messages about them.
PARAM_NAMES = {"page": gettext_lazy("page"), "per_page": gettext_lazy("per page")}


class KnownCountPaginator(Paginator):
    """A paginator told the number of rows instead of counting them again."""

    def __init__(self, *args, count: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.count = count  # shadows the cached_property


class CustomerListView(PermissionRequiredMixin, SingleTableMixin, FilterView):
    permission_required = "clients.view_customer"
    table_class = CustomerTable
    filterset_class = CustomerFilter
    template_name = "clients/client_list.html"
    # Invalid filters are reported and left out; the valid ones still apply.
    strict = False
    tab = "clients"
    default_sort = "-last_order"

    def get_queryset(self):
        return customer_list(tab=self.tab)

    def get_table(self, **kwargs):
        self.notices = []
        self.counts = tab_counts()
        # Not `request=`: django-tables2 would then paginate once more, counting every row.
        can_send = self.request.user.has_perm(PUSH_PERMISSION)
        self.selection = selected_ids(self.request.session, self.tab) if can_send else []
        table = CustomerTable(
            self.get_table_data(), show_select=can_send, selected=set(self.selection)
        )
        table.request = self.request
        table.order_by = self._sort()
        per_page = self._int_param("per_page", default=PAGE_SIZES[0])
        if per_page not in PAGE_SIZES:
            self.notices.append(
                _("Rows per page can be %(sizes)s.") % {"sizes": ", ".join(map(str, PAGE_SIZES))}
            )
            per_page = PAGE_SIZES[0]
        page = self._int_param("page", default=1)
        if self._filtered():
            search = self._search()
            paginator = {
                "paginator_class": CappedCountPaginator,
                "one_pass": bool(search.words or search.client_id is not None),
                "first_pk": search.exact_id,
            }
        else:
            # The whole tab: its size is already known from the tab counts.
            paginator = {"paginator_class": KnownCountPaginator, "count": self.counts[self.tab]}
        paginator["per_page"] = per_page
        try:
            table.paginate(page=page, **paginator)
        except EmptyPage:
            # A capped count (CappedCountPaginator) does not know the last page: go to the first.
            capped = getattr(table.paginator, "capped", False)
            last = 1 if capped else max(table.paginator.num_pages, 1)
            self.notices.append(
                _("Page %(page)s does not exist; showing page %(last)s.")
                % {"page": page, "last": last}
            )
            table.paginate(page=last, **paginator)
        return table

    def _search(self) -> SearchQuery:
        """The valid search of the page (SearchQuery() when there is none)."""
        if not self.filterset.is_valid():
            return SearchQuery()
        return parse_query(self.filterset.form.cleaned_data.get("q") or "")

    def _other_tab_matches(self) -> dict | None:
        """How many customers of the other tab the same search and filters find, for the
        "N matches in Leads" link (searches only; counted up to OTHER_TAB_CAP + 1)."""
        search = self._search()
        if not (search.words or search.client_id is not None):
            return None
        other = OTHER_TAB[self.tab]
        count = customer_match_count(tab=other, filterset=self.filterset, cap=OTHER_TAB_CAP)
        if not count:
            return None
        params = self.request.GET.copy()
        for key in ("page", "sort"):
            params.pop(key, None)
        return {
            "tab": other,
            "count": count,
            "capped": count > OTHER_TAB_CAP,
            "cap": OTHER_TAB_CAP,
            "url": reverse(TAB_URLS[other]) + "?" + params.urlencode(),
        }

    def _filtered(self) -> bool:
        return self.filterset.is_bound and (not self.filterset.is_valid() or self.filterset.active)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        filterset = self.filterset
        if filterset.is_bound and not filterset.is_valid():
            self.notices.append(
                _("Some filters were ignored: %(errors)s") % {"errors": filterset.errors_text()}
            )
        context.update(
            tab=self.tab,
            counts=self.counts,
            notices=self.notices,
            filters_active=filterset.is_valid() and filterset.active,
            page_sizes=PAGE_SIZES,
            known_sources=KNOWN_SOURCES,
            known_mediums=KNOWN_MEDIUMS,
            can_send_push=self.request.user.has_perm(PUSH_PERMISSION),
            query=self._filter_query(),
            other_tab=self._other_tab_matches(),
            selection_ids=self.selection,
            max_selected=MAX_SELECTED,
        )
        return context

    def _sort(self) -> str:
        sort = self.request.GET.get("sort", "")
        if sort and sort.removeprefix("-") in SORT_KEYS:
            return sort
        if sort:
            self.notices.append(
                _("Unknown sort “%(sort)s”; showing the default order.") % {"sort": sort[:50]}
            )
        return self.default_sort

    def _int_param(self, name: str, *, default: int) -> int:
        raw = self.request.GET.get(name, "")
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            self.notices.append(
                _("“%(value)s” is not a valid %(name)s.")
                % {"value": raw[:20], "name": PARAM_NAMES.get(name, name)}
            )
            return default
        return value

    def _filter_query(self) -> str:
        """The search and filters of the current page as a query string (no sort or page)."""
        params = self.request.GET.copy()
        for key in ("sort", "page", "per_page"):
            params.pop(key, None)
        return params.urlencode()


class LeadListView(CustomerListView):
    tab = "leads"
    default_sort = "-created_at"
