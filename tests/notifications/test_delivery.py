import pytest

from notifications.models import CampaignStatus, Delivery, DeliveryStatus
from tests.notifications.fixtures_push import send_campaign, subscribe, vapid_settings  # noqa: F401

pytestmark = pytest.mark.usefixtures("vapid_settings")


@pytest.mark.django_db
def test_campaign_reaches_every_subscription_once(push_service, django_capture_on_commit_callbacks):
    subscriptions = [subscribe(push_service) for _ in range(12)]
    campaign = send_campaign(django_capture_on_commit_callbacks)
    assert campaign.status == CampaignStatus.SENT
    assert (campaign.recipients, campaign.delivered, campaign.failed) == (12, 12, 0)
    for subscription in subscriptions:
        received = push_service.messages_for(subscription.endpoint)
        assert len(received) == 1
        data = received[0].json()
        assert data["title"] == "Spring sale"
        assert data["url"].startswith("https://backoffice.example/push/c/")
