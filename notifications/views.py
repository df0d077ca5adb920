"""Back-office pages of push campaigns, and the click redirect.

Permissions: every back-office role may read the campaign history and results
(notifications.view_campaign, granted to Viewer, Staff and Admin by the app's migration);
composing, scheduling, sending and cancelling need notifications.send_campaign (Admin only),
checked on every request that acts, including forged POSTs.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from notifications import selectors, services, tasks
from notifications.forms import AudienceForm, ComposeForm
from notifications.models import DeliveryStatus
from notifications.payload import payload_size
from notifications.tokens import click_token_read
from notifications.webpush import MAX_PLAINTEXT_SIZE, vapid_configured

SEND = "notifications.send_campaign"
VIEW = "notifications.view_campaign"


def _base_url(request) -> str:
    return settings.PUSH_PUBLIC_URL or request.build_absolute_uri("/")


@require_GET
@permission_required(VIEW, raise_exception=True)
def campaign_list(request):
    page = Paginator(selectors.campaign_list(), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "notifications/campaign_list.html",
        {"page": page, "can_send": request.user.has_perm(SEND)},
    )


@require_GET
@permission_required(VIEW, raise_exception=True)
def campaign_detail(request, pk: int):
    campaign = get_object_or_404(selectors.campaign_detail(), pk=pk)
    context = {
        "campaign": campaign,
        "can_send": request.user.has_perm(SEND),
        "answers": [
            {**row, "label": DeliveryStatus(row["status"]).label}
            for row in selectors.campaign_answers(campaign_id=campaign.pk)
        ],
        "errors": selectors.campaign_errors(campaign_id=campaign.pk),
    }
    if request.headers.get("HX-Request"):
        return render(request, "notifications/campaign_detail.html#progress", context)
    return render(request, "notifications/campaign_detail.html", context)


@require_http_methods(["GET", "POST"])
@permission_required(SEND, raise_exception=True)
def campaign_create(request):
    """Compose a campaign for an audience chosen on the Clients or Leads tab, then send it."""
    audience_form = AudienceForm(request.POST if request.method == "POST" else request.GET)
    if not audience_form.is_valid():
        return render(
            request,
            "notifications/campaign_audience_error.html",
            {"errors": audience_form.errors},
            status=400,
        )
    audience = audience_form.to_audience()
    try:
        counts = selectors.audience_counts(audience)
    except ValueError as exc:
        return render(
            request,
            "notifications/campaign_audience_error.html",
            {"message": str(exc)},
            status=400,
        )
    base_url = _base_url(request)
    form = ComposeForm(request.POST if request.method == "POST" else None, base_url=base_url)
    if request.method == "POST" and form.is_valid():
        try:
            if not counts["devices"]:
                raise ValueError(_("No device of this audience accepts notifications."))
            campaign = tasks.campaign_submit(
                actor=request.user,
                audience=audience,
                message=form.message(),
                send_at=form.send_at_value(),
                public_base_url=base_url,
            )
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            if campaign.send_at > campaign.created_at:
                messages.success(request, _("The campaign is scheduled."))
            else:
                messages.success(request, _("The campaign is being sent."))
            return redirect(campaign)
    empty_size = payload_size(title="", body="", icon="", image="", base_url=base_url)
    return render(
        request,
        "notifications/campaign_form.html",
        {
            "form": form,
            "audience_form": audience_form,
            "audience": audience,
            "counts": counts,
            "max_bytes": MAX_PLAINTEXT_SIZE,
            "empty_bytes": empty_size,
            "vapid_ready": vapid_configured(),
        },
        status=400 if request.method == "POST" else 200,
    )


@require_POST
def campaign_cancel(request, pk: int):
    if not request.user.has_perm(SEND):
        raise PermissionDenied
    campaign = get_object_or_404(selectors.campaign_detail(), pk=pk)
    try:
        services.campaign_cancel(campaign=campaign, actor=request.user)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("The campaign is cancelled; nothing was sent."))
    return redirect(campaign)


@login_not_required
@never_cache
@require_GET
def click(request, token: str):
    """A notification was clicked: count it and go to the campaign's own link, nowhere else."""
    ids = click_token_read(token)
    if ids is None:
        raise Http404(_("This link is not valid."))
    campaign = services.click_record(campaign_id=ids[0], subscription_id=ids[1])
    if campaign is None:
        raise Http404(_("This campaign no longer exists."))
    return HttpResponseRedirect(campaign.link)
