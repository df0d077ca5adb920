""" "Send a test to a customer": one push to a chosen customer's newest device, through the
push client the campaigns use, before the campaign; Admin only, audited."""

import json

import pytest
from django.urls import reverse

from clients.models import AuditEntry
from notifications.models import Campaign, Delivery
from tests.factories import CustomerFactory
from tests.notifications.fixtures_push import subscribe, vapid_settings  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vapid_settings")]

TEST = reverse("notifications:campaign-test")
MESSAGE = {
    "tab": "leads",
    "audience": "all",
    "title": "Spring sale",
    "body": "20% off everything",
    "link": "https://shop.example/sale",
    "when": "now",
    "ttl": "86400",
    "urgency": "normal",
}


def test_a_test_reaches_the_customers_newest_device_and_nothing_else(
    admin_client_role, push_service
):
    older = subscribe(push_service)
    newest = subscribe(push_service, customer=older.customer)
    subscribe(push_service)  # another customer of the audience: not sent to
    response = admin_client_role.post(TEST, {**MESSAGE, "test_customer": older.customer.pk})
    assert response.status_code == 200
    assert "Test sent to" in response.text
    # The form comes back as it was, ready to send the campaign.
    assert 'value="Spring sale"' in response.text
    [message] = push_service.received
    assert message.endpoint == newest.endpoint
    payload = json.loads(message.payload)
    assert (payload["title"], payload["url"]) == ("Spring sale", "https://shop.example/sale")
    # No campaign, no delivery row: a test is not a campaign.
    assert not Campaign.objects.exists() and not Delivery.objects.exists()
    entry = AuditEntry.objects.get(customer=older.customer, action="push_test")
    assert entry.changes == {"title": [None, "Spring sale"], "outcome": [None, "201 delivered"]}
    page = admin_client_role.get(reverse("clients:client-detail", args=[older.customer.pk]))
    assert "Test notification sent" in page.text


def test_a_refused_test_says_why(admin_client_role, push_service):
    subscription = subscribe(push_service)
    push_service.respond(subscription.endpoint, status=410)
    response = admin_client_role.post(TEST, {**MESSAGE, "test_customer": subscription.customer.pk})
    assert response.status_code == 200
    assert "was not delivered" in response.text and "410" in response.text


@pytest.mark.parametrize("who", ["no device", "unknown", "empty", "huge"])
def test_nobody_to_send_the_test_to(admin_client_role, push_service, who):
    subscribe(push_service)
    customer = {
        "no device": lambda: CustomerFactory().pk,
        "unknown": lambda: 999_999,
        "empty": lambda: "",
        "huge": lambda: 2**70,
    }[who]()
    response = admin_client_role.post(TEST, {**MESSAGE, "test_customer": customer})
    assert response.status_code == 400
    assert push_service.received == []
    assert not AuditEntry.objects.filter(action="push_test").exists()


def test_an_invalid_message_is_not_sent_as_a_test(admin_client_role, push_service):
    subscription = subscribe(push_service)
    data = {**MESSAGE, "title": "", "test_customer": subscription.customer.pk}
    response = admin_client_role.post(TEST, data)
    assert response.status_code == 400
    assert push_service.received == []


@pytest.mark.parametrize("fixture", ["viewer_client", "staff_client"])
def test_only_admins_send_tests(request, fixture, push_service):
    subscription = subscribe(push_service)
    client = request.getfixturevalue(fixture)
    response = client.post(TEST, {**MESSAGE, "test_customer": subscription.customer.pk})
    assert response.status_code == 403
    assert push_service.received == []
