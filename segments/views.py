"""Saving, renaming and deleting segments from the Clients and Leads tabs (POST only, each
checked against its permission: Staff and Admin; Viewers open and use segments), and a
segment's permanent link."""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from segments import services
from segments.models import Segment

TAB_URLS = {"clients": "clients:client-list", "leads": "clients:lead-list"}


def _tab_url(tab: str, query: str = "") -> str:
    url = reverse(TAB_URLS.get(tab, "clients:client-list"))
    return f"{url}?{query}" if query else url


@require_POST
@permission_required("segments.add_segment", raise_exception=True)
def segment_create(request):
    tab, query = request.POST.get("tab", ""), request.POST.get("query", "")
    try:
        segment = services.segment_create(
            actor=request.user, name=request.POST.get("name", ""), tab=tab, query=query
        )
    except services.SegmentError as exc:
        messages.error(request, str(exc))
        return redirect(_tab_url(tab if tab in TAB_URLS else "clients", query[:2000]))
    messages.success(request, _("Segment “%(name)s” saved.") % {"name": segment.name})
    return redirect(segment.get_absolute_url())


@require_GET
@permission_required("clients.view_customer", raise_exception=True)
def segment_detail(request, pk: int):
    """The segment's tab with its search and filters (a link that survives renames)."""
    return redirect(get_object_or_404(Segment, pk=pk).get_absolute_url())


@require_POST
@permission_required("segments.change_segment", raise_exception=True)
def segment_rename(request, pk: int):
    segment = get_object_or_404(Segment, pk=pk)
    try:
        services.segment_update(segment=segment, name=request.POST.get("name", ""))
    except services.SegmentError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Segment renamed to “%(name)s”.") % {"name": segment.name})
    return redirect(segment.get_absolute_url())


@require_POST
@permission_required("segments.delete_segment", raise_exception=True)
def segment_delete(request, pk: int):
    segment = get_object_or_404(Segment, pk=pk)
    services.segment_delete(segment=segment)
    messages.success(request, _("Segment “%(name)s” deleted.") % {"name": segment.name})
    return redirect(_tab_url(segment.tab))
