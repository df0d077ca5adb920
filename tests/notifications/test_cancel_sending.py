"""Cancelling a campaign while it is sending: what has not been sent is not sent, the
counters stay equal to the rows, and the page follows the status without a reload."""

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from notifications.delivery import batch_send
from notifications.forms import send_token_new
from notifications.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from notifications.services import (
    CANCELLED_ERROR,
    campaign_cancel,
    campaign_finish_if_done,
    campaign_start,
)
from tests.factories import UserFactory
from tests.notifications.fixtures_push import new_campaign, subscribe, vapid_settings  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vapid_settings")]


@pytest.fixture
def sending(push_service, django_capture_on_commit_callbacks):
    """A campaign to 5 devices that has started: one delivered, one on the wire, 3 pending."""
    for _ in range(5):
        subscribe(push_service)
    with django_capture_on_commit_callbacks(execute=False):
        campaign = new_campaign()
    assert campaign_start(campaign_id=campaign.pk) == [0]
    rows = list(Delivery.objects.filter(campaign=campaign).order_by("pk"))
    Delivery.objects.filter(pk=rows[0].pk).update(
        status=DeliveryStatus.SENT, last_status_code=201, sent_at=timezone.now()
    )
    Campaign.objects.filter(pk=campaign.pk).update(delivered=1)
    Delivery.objects.filter(pk=rows[1].pk).update(
        status=DeliveryStatus.SENDING, claim="w1", attempts=1
    )
    campaign.refresh_from_db()
    return campaign, rows


def _statuses(campaign) -> dict:
    return dict(
        Delivery.objects.filter(campaign=campaign).values_list("pk", "status").order_by("pk")
    )


def test_cancel_while_sending_fails_only_what_was_not_sent(sending, push_service):
    campaign, rows = sending
    admin = UserFactory(role="Admin")
    campaign_cancel(campaign=campaign, actor=admin)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.CANCELLED
    assert campaign.cancelled_by == admin
    statuses = _statuses(campaign)
    assert statuses[rows[0].pk] == DeliveryStatus.SENT
    assert statuses[rows[1].pk] == DeliveryStatus.SENDING  # on the wire: its worker records it
    assert [statuses[r.pk] for r in rows[2:]] == [DeliveryStatus.FAILED] * 3
    assert set(
        Delivery.objects.filter(status=DeliveryStatus.FAILED).values_list("error", flat=True)
    ) == {CANCELLED_ERROR}
    assert (campaign.delivered, campaign.failed) == (1, 3)
    # A worker picking the batch up now sends nothing.
    assert batch_send(campaign_id=campaign.pk, batch=0).outcome == "skipped"
    assert push_service.received == []

    # The request on the wire came back to be retried: it is not sent again either.
    Delivery.objects.filter(pk=rows[1].pk).update(status=DeliveryStatus.PENDING, claim="")
    campaign_finish_if_done(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    assert _statuses(campaign)[rows[1].pk] == DeliveryStatus.FAILED
    assert campaign.failed == 4
    assert campaign.status == CampaignStatus.CANCELLED
    call_command("rebuild_push_stats", "--check")  # exits 1 on drift


def test_a_finished_campaign_cannot_be_cancelled(sending):
    campaign, _ = sending
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SENT)
    with pytest.raises(ValueError, match="too late"):
        campaign_cancel(campaign=campaign, actor=None)


def test_the_page_offers_cancel_while_sending_and_says_what_happened(sending, admin_client_role):
    campaign, _ = sending
    page = admin_client_role.get(campaign.get_absolute_url())
    assert "Cancel this campaign" in page.text
    response = admin_client_role.post(reverse("notifications:campaign-cancel", args=[campaign.pk]))
    assert response.status_code == 302
    page = admin_client_role.get(campaign.get_absolute_url())
    assert "what had not been sent will not be sent" in page.text
    assert "while sending; what had not been sent was not sent" in page.text
    assert "Cancel this campaign" not in page.text


def test_the_progress_poll_drops_cancel_and_the_sending_message_once_sent(
    sending, admin_client_role
):
    campaign, _ = sending
    poll = {"headers": {"hx-request": "true"}}
    while_sending = admin_client_role.get(campaign.get_absolute_url(), **poll).text
    assert 'id="campaign-progress"' in while_sending
    assert 'id="campaign-actions" hx-swap-oob="true"' in while_sending
    assert "Cancel this campaign" in while_sending
    assert "campaign-sending-message" not in while_sending
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SENT)
    once_sent = admin_client_role.get(campaign.get_absolute_url(), **poll).text
    assert 'id="campaign-actions" hx-swap-oob="true"' in once_sent
    assert "Cancel this campaign" not in once_sent
    assert '<div id="campaign-sending-message" hx-swap-oob="delete"></div>' in once_sent
    assert "hx-trigger" not in once_sent  # the poll stops


def test_the_being_sent_message_can_be_found_by_the_poll(admin_client_role, push_service):
    subscribe(push_service)
    data = {
        "tab": "leads",
        "audience": "all",
        "title": "Hi",
        "body": "There",
        "link": "",
        "when": "now",
        "ttl": "86400",
        "urgency": "normal",
        "send_token": send_token_new(),
    }
    response = admin_client_role.post(reverse("notifications:campaign-create"), data, follow=True)
    assert 'id="campaign-sending-message"' in response.text
