"""The compose form: an optional link, labels without colons, Cancel back to the tab."""

import json

import pytest
from django.urls import reverse

from notifications.forms import send_token_new
from notifications.models import Campaign
from notifications.payload import campaign_payload
from tests.notifications.fixtures_push import subscribe, vapid_settings  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vapid_settings")]

CREATE = reverse("notifications:campaign-create")


def test_labels_have_no_trailing_colon(admin_client_role, push_service):
    subscribe(push_service)
    html = admin_client_role.get(CREATE, {"tab": "leads", "audience": "all"}).text
    assert '<label for="id_title">Title</label>' in html
    assert ":</label>" not in html


@pytest.mark.parametrize(
    ("params", "back"),
    [
        ({"tab": "leads", "audience": "all"}, "/clients/leads/"),
        ({"tab": "clients", "audience": "selected", "ids": "1"}, "/clients/"),
        (
            {"tab": "clients", "audience": "filtered", "query": "q=martin&source=google"},
            "/clients/?q=martin&amp;source=google",
        ),
    ],
)
def test_cancel_returns_to_the_tab_the_audience_came_from(admin_client_role, params, back):
    html = admin_client_role.get(CREATE, params).text
    assert f'<a class="button" href="{back}">Cancel</a>' in html


def test_a_campaign_without_a_link_is_sent_and_opens_the_shops_home(
    admin_client_role, push_service, django_capture_on_commit_callbacks
):
    subscription = subscribe(push_service)
    data = {
        "tab": "leads",
        "audience": "all",
        "title": "Hello",
        "body": "No link this time",
        "link": "",
        "when": "now",
        "ttl": "86400",
        "urgency": "normal",
        "send_token": send_token_new(),
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_role.post(CREATE, data)
    assert response.status_code == 302
    campaign = Campaign.objects.get()
    assert campaign.link == ""
    payload = json.loads(campaign_payload(campaign).for_subscription(subscription.pk))
    assert payload["url"] == ""  # the service worker opens "/" of the shop
    assert len(push_service.received) == 1
    page = admin_client_role.get(campaign.get_absolute_url()).text
    assert "None: a click opens the shop’s home page." in page
