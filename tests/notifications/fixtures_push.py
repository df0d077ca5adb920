"""Helpers for the push tests: subscribed customers on the local push service, campaigns."""

import pytest

from notifications.services import Audience, Message, subscription_save
from notifications.tasks import campaign_submit
from tests.factories import CustomerFactory, UserFactory


@pytest.fixture
def vapid_settings(settings, vapid_keys):
    """Point the app at the key pair the push service's subscriptions were made for."""
    settings.VAPID_PRIVATE_KEY = vapid_keys.private_key
    settings.VAPID_PUBLIC_KEY = vapid_keys.public_key
    settings.VAPID_SUBJECT = "mailto:shop@example.com"
    return settings


def subscribe(push_service, customer=None, **kwargs):
    """A real subscription of the push service, stored for a (new) customer."""
    customer = customer or CustomerFactory()
    info = push_service.new_subscription()
    return subscription_save(
        customer=customer,
        endpoint=info["endpoint"],
        p256dh=info["keys"]["p256dh"],
        auth=info["keys"]["auth"],
        **kwargs,
    )


def new_campaign(*, audience=None, send_at=None, actor=None, **message):
    """A campaign created as the back office creates it, to the whole Leads tab unless told;
    what starts it is up to the test's tasks backend."""
    fields = {
        "title": "Spring sale",
        "body": "20% off everything",
        "link": "https://shop.example/sale",
    }
    fields.update(message)
    return campaign_submit(
        actor=actor,
        audience=audience or Audience(tab="leads", kind="all"),
        message=Message(**fields),
        send_at=send_at,
        public_base_url="https://backoffice.example",
    )


def send_campaign(capture, *, audience=None, send_at=None, actor=None, **message):
    """Create a campaign as an admin would and run what the worker runs (the tests' tasks
    backend runs tasks immediately when the transaction commits)."""
    with capture(execute=True):
        campaign = new_campaign(
            audience=audience,
            send_at=send_at,
            actor=actor or UserFactory(role="Admin"),
            **message,
        )
    campaign.refresh_from_db()
    return campaign
