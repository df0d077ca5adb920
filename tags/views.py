"""The tag library (/tags/: counts, rename, merge, delete), a customer's tags from the client
page, and bulk tagging from the Clients and Leads tabs with its progress page.

Viewers read the library and the jobs; Staff and Admin tag customers and manage the library
(tags.add_customertag, tags.change_tag, tags.delete_tag, granted by the app's migration),
checked on every POST.
"""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from clients.models import Customer
from clients.selection import selected_ids
from clients.selectors import TABS
from tags import selectors, services, tasks
from tags.models import Tag

VIEW = "tags.view_tag"
TAG_CUSTOMERS = "tags.add_customertag"
TAB_URLS = {"clients": "clients:client-list", "leads": "clients:lead-list"}


def _back(request, fallback: str):
    """To the page the form was on (its `next`, a local path), else `fallback`."""
    target = request.POST.get("next", "")
    if target.startswith("/") and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(fallback)


@require_GET
@permission_required(VIEW, raise_exception=True)
def tag_list(request):
    user = request.user
    tags = list(selectors.tag_library())
    return render(
        request,
        "tags/tag_list.html",
        {
            "tags": tags,
            "jobs": list(selectors.tag_jobs()[:10]),
            "can_rename": user.has_perm("tags.change_tag"),
            "can_delete": user.has_perm("tags.delete_tag"),
        },
    )


@require_POST
@permission_required("tags.change_tag", raise_exception=True)
def tag_rename(request, pk: int):
    tag = get_object_or_404(Tag, pk=pk)
    try:
        services.tag_rename(tag=tag, name=request.POST.get("name", ""))
    except services.TagError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Tag renamed to “%(name)s”.") % {"name": tag.name})
    return redirect("tags:tag-list")


@require_POST
@permission_required(("tags.change_tag", "tags.delete_tag"), raise_exception=True)
def tag_merge(request, pk: int):
    source = get_object_or_404(Tag, pk=pk)
    target_id = request.POST.get("into", "")
    target = (
        Tag.objects.filter(pk=int(target_id)).first()
        if target_id.isascii() and target_id.isdigit() and len(target_id) < 19
        else None
    )
    if target is None:
        messages.error(request, _("Choose the tag to merge into."))
        return redirect("tags:tag-list")
    try:
        moved = services.tag_merge(source=source, target=target, actor=request.user)
    except services.TagError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            ngettext(
                "“%(source)s” merged into “%(target)s” (%(count)s customer).",
                "“%(source)s” merged into “%(target)s” (%(count)s customers).",
                moved,
            )
            % {"source": source.name, "target": target.name, "count": moved},
        )
    return redirect("tags:tag-list")


@require_POST
@permission_required("tags.delete_tag", raise_exception=True)
def tag_delete(request, pk: int):
    tag = get_object_or_404(Tag, pk=pk)
    count = services.tag_delete(tag=tag, actor=request.user)
    messages.success(
        request,
        ngettext(
            "Tag “%(name)s” deleted (taken off %(count)s customer).",
            "Tag “%(name)s” deleted (taken off %(count)s customers).",
            count,
        )
        % {"name": tag.name, "count": count},
    )
    return redirect("tags:tag-list")


@require_POST
@permission_required(TAG_CUSTOMERS, raise_exception=True)
def customer_tags_update(request, pk: int):
    customer = get_object_or_404(Customer, pk=pk)
    try:
        if "tags" not in request.POST:  # a forged form: clearing needs the (empty) field
            raise services.TagError(_("Name at least one tag."))
        names = services.parse_tag_names(request.POST["tags"])
        services.customer_set_tags(customer=customer, actor=request.user, names=names)
    except services.TagError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Tags saved."))
    return redirect(customer)


@require_POST
@permission_required(TAG_CUSTOMERS, raise_exception=True)
def bulk_tag(request):
    """Add or remove tags for the ticked customers or every customer the list's search and
    filters find; the customers are resolved again on the server."""
    tab = request.POST.get("tab", "")
    fallback = reverse(TAB_URLS.get(tab, "clients:client-list"))
    target = request.POST.get("target", "")
    try:
        if tab not in TABS:
            raise services.TagError(_("Unknown tab: choose Clients or Leads."))
        if target == "selected":
            ids, query = selected_ids(request.session, tab), ""
            if not ids:
                raise services.TagError(_("No customer is selected."))
        elif target == "matching":
            ids, query = [], request.POST.get("query", "")[:4000]
        else:
            raise services.TagError(_("Choose the selected customers or all matching ones."))
        job = tasks.tag_job_submit(
            actor=request.user,
            action=request.POST.get("action", ""),
            names=services.parse_tag_names(request.POST.get("tags", "")),
            tab=tab,
            ids=ids,
            query=query,
        )
    except services.TagError as exc:
        messages.error(request, str(exc))
        return _back(request, fallback)
    if job.finished:
        messages.success(request, services.job_message(job))
        return _back(request, fallback)
    return redirect(job)


@require_GET
@permission_required(VIEW, raise_exception=True)
def job_detail(request, pk: int):
    job = get_object_or_404(selectors.tag_jobs(), pk=pk)
    return render(request, "tags/job_detail.html", {"job": job})
