"""Back-office pages of push campaigns, and the click redirect.

Permissions: every back-office role may read the campaign history and results
(notifications.view_campaign, granted to Viewer, Staff and Admin by the app's migration);
composing, scheduling, sending and cancelling need notifications.send_campaign (Admin only),
checked on every request that acts, including forged POSTs.
"""

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clients.selection import selected_ids
from notifications import selectors, services, tasks
from notifications.attribution import link_with_utm
from notifications.forms import AudienceForm, ComposeForm, TestPushForm
from notifications.models import CampaignStatus, DeliveryStatus
from notifications.payload import payload_size
from notifications.tokens import click_token_read
from notifications.webpush import MAX_PLAINTEXT_SIZE, vapid_configured

SEND = "notifications.send_campaign"
# The campaign page lists its latest credited orders, to check its figures against.
CREDITED_SHOWN = 20
VIEW = "notifications.view_campaign"


def _base_url(request) -> str:
    return settings.PUSH_PUBLIC_URL or request.build_absolute_uri("/")


@require_GET
@permission_required(VIEW, raise_exception=True)
def campaign_list(request):
    page = Paginator(selectors.campaign_list(), 25).get_page(request.GET.get("page"))
    earnings = selectors.campaign_earnings(page.object_list)
    rows = [(campaign, earnings[campaign.pk]) for campaign in page.object_list]
    return render(
        request,
        "notifications/campaign_list.html",
        {
            "page": page,
            "rows": rows,
            "can_send": request.user.has_perm(SEND),
            "attribution_days": settings.PUSH_ATTRIBUTION_DAYS,
        },
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
        # The progress poll: the progress card, and the parts of the page that depend on the
        # status (the Cancel button, the "being sent" message) swapped out of band.
        return render(request, "notifications/campaign_detail.html#poll", context)
    credited = list(selectors.campaign_orders(campaign_id=campaign.pk, limit=CREDITED_SHOWN + 1))
    context.update(
        earnings=selectors.campaign_earnings([campaign])[campaign.pk],
        credited_orders=credited[:CREDITED_SHOWN],
        more_credited=len(credited) > CREDITED_SHOWN,
        attribution_days=settings.PUSH_ATTRIBUTION_DAYS,
        link_opened=link_with_utm(campaign.link, campaign_id=campaign.pk),
    )
    return render(request, "notifications/campaign_detail.html", context)


def _with_list_selection(request):
    """The query, with the customers ticked on the list's other pages (kept in the session,
    clients/selection.py) added to the ticks sent from the current page, when the list's
    "the selected" button asks for them (selection=session)."""
    if request.GET.get("selection") != "session" or request.GET.get("audience") != "selected":
        return request.GET
    data = request.GET.copy()
    ticked = [str(pk) for pk in selected_ids(request.session, data.get("tab", ""))]
    data.setlist("ids", list(dict.fromkeys([*data.getlist("ids"), *ticked])))
    return data


@require_http_methods(["GET", "POST"])
@permission_required(SEND, raise_exception=True)
def campaign_create(request):
    """Compose a campaign for an audience chosen on the Clients or Leads tab, then send it."""
    data = request.POST if request.method == "POST" else _with_list_selection(request)
    audience_form = AudienceForm(data)
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
    twin = None
    if request.method == "POST" and form.is_valid():
        twin = _twin_unconfirmed(request, audience, form)
    if request.method == "POST" and form.is_valid() and twin is None:
        try:
            if not counts["devices"]:
                raise ValueError(_("No device of this audience accepts notifications."))
            campaign = tasks.campaign_submit(
                actor=request.user,
                audience=audience,
                message=form.message(),
                send_at=form.send_at_value(),
                public_base_url=base_url,
                send_token=form.send_token_value(),
            )
        except services.CampaignAlreadyCreated as exc:
            messages.warning(
                request,
                _(
                    "This form was already sent: here is the campaign it created. Nothing was "
                    "sent again. To send another campaign, open “Send a push” again."
                ),
            )
            return redirect(exc.campaign)
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            if campaign.send_at > campaign.created_at:
                messages.success(request, _("The campaign is scheduled."))
            else:
                messages.success(
                    request, _("The campaign is being sent."), extra_tags="campaign-sending"
                )
            return redirect(campaign)
    status = 400 if request.method == "POST" else 200
    return _compose_page(request, audience_form, form, TestPushForm(), counts, status=status)


# How long the same message to the same audience asks to be confirmed before going again.
TWIN_WINDOW = timedelta(hours=1)
SEND_AGAIN = "send_again"


def _twin_unconfirmed(request, audience, form):
    """The campaign this form would repeat (the same message to the same audience from the
    same user within TWIN_WINDOW), unless the user ticked "Send it again": then the form
    gets the error and the checkbox, and nothing is sent."""
    if request.POST.get(SEND_AGAIN) == "on":
        return None
    if selectors.campaign_with_send_token(form.send_token_value()) is not None:
        return None  # this very form, sent again: the token leads to its campaign
    twin = selectors.campaign_twin(
        actor=request.user,
        audience=audience,
        message=form.message(),
        since=timezone.now() - TWIN_WINDOW,
    )
    if twin is not None:
        form.add_error(
            None,
            format_html(
                _(
                    'This message already went to this audience at {time} (<a href="{url}">'
                    "campaign {number}</a>), so nothing was sent. To send it again all the "
                    "same, tick “Send it again” and send."
                ),
                time=date_format(timezone.localtime(twin.created_at), "TIME_FORMAT"),
                url=twin.get_absolute_url(),
                number=twin.pk,
            ),
        )
        form.fields[SEND_AGAIN] = forms.BooleanField(
            label=_("Send it again"), required=False, initial=False
        )
    return twin


@require_POST
@permission_required(SEND, raise_exception=True)
def campaign_test(request):
    """Send the message being composed once to one customer's device, then show the form
    again as it was, with the outcome."""
    audience_form = AudienceForm(request.POST)
    if not audience_form.is_valid():
        return render(
            request,
            "notifications/campaign_audience_error.html",
            {"errors": audience_form.errors},
            status=400,
        )
    try:
        counts = selectors.audience_counts(audience_form.to_audience())
    except ValueError as exc:
        return render(
            request, "notifications/campaign_audience_error.html", {"message": str(exc)}, status=400
        )
    form = ComposeForm(request.POST, base_url=_base_url(request), token_required=False)
    test_form = TestPushForm(request.POST)
    if not (form.is_valid() and test_form.is_valid()):
        return _compose_page(request, audience_form, form, test_form, counts, status=400)
    customer_id = test_form.cleaned_data["test_customer"]
    try:
        outcome = services.campaign_send_test(
            actor=request.user, message=form.message(), customer_id=customer_id
        )
    except ValueError:
        test_form.add_error(
            "test_customer",
            _("Client %(id)s has no device that accepts notifications.") % {"id": customer_id},
        )
        return _compose_page(request, audience_form, form, test_form, counts, status=400)
    if outcome.delivered:
        messages.success(
            request,
            _("Test sent to %(name)s (client %(id)s): the push service accepted it.")
            % {"name": outcome.customer, "id": customer_id},
        )
    else:
        messages.error(
            request,
            _("The test to %(name)s (client %(id)s) was not delivered: %(error)s")
            % {"name": outcome.customer, "id": customer_id, "error": outcome.error},
        )
    return _compose_page(request, audience_form, form, test_form, counts, status=200)


def _compose_page(request, audience_form, form, test_form, counts, *, status: int):
    audience = audience_form.to_audience()
    base_url = _base_url(request)
    empty_size = payload_size(title="", body="", icon="", image="", base_url=base_url)
    return render(
        request,
        "notifications/campaign_form.html",
        {
            "form": form,
            "test_form": test_form,
            "audience_form": audience_form,
            "audience": audience,
            "counts": counts,
            "max_bytes": MAX_PLAINTEXT_SIZE,
            "empty_bytes": empty_size,
            "vapid_ready": vapid_configured(),
            "back_url": _audience_list_url(audience),
        },
        status=status,
    )


def _audience_list_url(audience) -> str:
    """The tab the audience was chosen on, with its search and filters: where Cancel goes."""
    url = reverse("clients:lead-list" if audience.tab == "leads" else "clients:client-list")
    return f"{url}?{audience.query}" if audience.query else url


@require_POST
def campaign_cancel(request, pk: int):
    if not request.user.has_perm(SEND):
        raise PermissionDenied
    campaign = get_object_or_404(selectors.campaign_detail(), pk=pk)
    was_sending = campaign.status == CampaignStatus.SENDING
    try:
        services.campaign_cancel(campaign=campaign, actor=request.user)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        if was_sending:
            messages.success(
                request, _("The campaign is cancelled; what had not been sent will not be sent.")
            )
        else:
            messages.success(request, _("The campaign is cancelled; nothing was sent."))
    return redirect(campaign)


@login_not_required
@never_cache
@require_GET
def click(request, token: str):
    """A notification was clicked: count it and go to the campaign's own link, nowhere else,
    with the campaign's UTM parameters (notifications/attribution.py)."""
    ids = click_token_read(token)
    if ids is None:
        raise Http404(_("This link is not valid."))
    campaign = services.click_record(campaign_id=ids[0], subscription_id=ids[1])
    if campaign is None:
        raise Http404(_("This campaign no longer exists."))
    if not campaign.link:
        raise Http404(_("This campaign has no link."))
    return HttpResponseRedirect(link_with_utm(campaign.link, campaign_id=campaign.pk))
