"""The push selection of the Clients and Leads tabs (clients/selection.py): read as JSON,
changed by POST, from the list's script or, without JavaScript, from its forms."""

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View

from clients.selection import parse_ids, selected_ids, selection_change
from clients.selectors import MAX_SELECTED, TABS

TAB_URLS = {"clients": "clients:client-list", "leads": "clients:lead-list"}


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


class SelectionView(PermissionRequiredMixin, View):
    permission_required = ("clients.view_customer", "notifications.send_campaign")
    raise_exception = True

    def get(self, request):
        tab = request.GET.get("tab", "")
        if tab not in TABS:
            return JsonResponse({"error": "Unknown tab: choose clients or leads."}, status=400)
        ids = selected_ids(request.session, tab)
        return JsonResponse({"tab": tab, "ids": ids, "count": len(ids), "max": MAX_SELECTED})

    def post(self, request):
        tab = request.POST.get("tab", "")
        try:
            state = selection_change(
                request.session,
                tab=tab,
                action=request.POST.get("action", ""),
                ids=parse_ids(request.POST.getlist("ids")[: MAX_SELECTED + 1]),
            )
        except ValueError as exc:
            if _wants_json(request):
                return JsonResponse({"error": str(exc)}, status=400)
            messages.error(request, str(exc))
            return self._back(tab)
        if _wants_json(request):
            return JsonResponse(state)
        if state["message"]:
            messages.warning(request, state["message"])
        return self._back(tab)

    def _back(self, tab: str):
        """To the list the form was on (its `next`), else to the tab."""
        target = self.request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(
            target, allowed_hosts={self.request.get_host()}, require_https=self.request.is_secure()
        ) or not target.startswith("/"):
            target = reverse(TAB_URLS.get(tab, "clients:client-list"))
        return redirect(target)
