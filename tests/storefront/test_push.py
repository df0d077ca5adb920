"""Push subscriptions under the API: customer token from the browser, or push:write."""

import pytest

from clients.models import Customer
from notifications.models import PushSubscription, SubscriptionStatus
from notifications.tokens import storefront_token_issue
from storefront.models import Scope
from tests.factories import CustomerFactory
from tests.notifications.conftest import push_service, vapid_keys  # noqa: F401
from tests.notifications.fixtures_push import vapid_settings  # noqa: F401
from tests.storefront.conftest import Api, assert_problem

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vapid_settings")]


def browser(customer):
    api = Api(None)
    token = storefront_token_issue(customer_id=customer.pk)
    api.client.defaults["HTTP_X_CUSTOMER_TOKEN"] = token
    return api


def test_key(vapid_keys):  # noqa: F811
    response = Api(None).get("/push/key")
    assert response.json() == {"public_key": vapid_keys.public_key}


def test_subscribe_and_unsubscribe_from_the_browser(push_service):  # noqa: F811
    customer = CustomerFactory()
    sub = push_service.new_subscription()
    api = browser(customer)
    response = api.post("/push/subscriptions", {"subscription": sub})
    assert response.status_code == 201, response.content
    assert PushSubscription.objects.get().customer == customer
    assert Customer.objects.get(pk=customer.pk).push_opt_in
    response = api.post("/push/subscriptions/remove", {"endpoint": sub["endpoint"]})
    assert response.json() == {"unsubscribed": True}
    assert PushSubscription.objects.get().status != SubscriptionStatus.ACTIVE
    assert not Customer.objects.get(pk=customer.pk).push_opt_in


def test_subscribe_with_a_key_needs_push_write_and_a_customer(push_service, api_as):  # noqa: F811
    customer = CustomerFactory()
    sub = push_service.new_subscription()
    assert_problem(
        api_as(Scope.READ).post("/push/subscriptions", {"subscription": sub}), 403, "forbidden"
    )
    writer = api_as(Scope.PUSH_WRITE)
    document = assert_problem(
        writer.post("/push/subscriptions", {"subscription": sub}), 422, "validation"
    )
    assert document["errors"][0]["field"] == "customer_id"
    response = writer.post("/push/subscriptions", {"subscription": sub, "customer_id": customer.pk})
    assert response.status_code == 201
    assert PushSubscription.objects.get().customer == customer


def test_a_token_cannot_subscribe_someone_else(push_service):  # noqa: F811
    customer, other = CustomerFactory(), CustomerFactory()
    sub = push_service.new_subscription()
    response = browser(customer).post(
        "/push/subscriptions", {"subscription": sub, "customer_id": other.pk}
    )
    assert_problem(response, 403, "forbidden")
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize(
    "subscription",
    [
        {"endpoint": "https://evil.example.com/x", "keys": {"p256dh": "x", "auth": "y"}},
        {"endpoint": "http://127.0.0.1:1/x", "keys": {"p256dh": "AAAA", "auth": "BBBB"}},
        {"endpoint": "http://127.0.0.1:1/x"},
        {"endpoint": "http://127.0.0.1:1/x", "keys": {}, "extra": 1},
    ],
)
def test_invalid_subscriptions_are_refused(subscription):
    response = browser(CustomerFactory()).post(
        "/push/subscriptions", {"subscription": subscription}
    )
    assert_problem(response, 422, "validation")
    assert not PushSubscription.objects.exists()


def test_resubscribe_from_the_service_worker(push_service):  # noqa: F811
    customer = CustomerFactory()
    old = push_service.new_subscription()
    browser(customer).post("/push/subscriptions", {"subscription": old})
    new = push_service.new_subscription()
    anonymous = Api(None)
    wrong = {
        "old_endpoint": old["endpoint"],
        "old_auth": "AAAAAAAAAAAAAAAAAAAAAA",
        "subscription": new,
    }
    assert_problem(anonymous.post("/push/subscriptions/replace", wrong), 403, "forbidden")
    right = {**wrong, "old_auth": old["keys"]["auth"]}
    assert anonymous.post("/push/subscriptions/replace", right).status_code == 201
    active = PushSubscription.objects.get(status=SubscriptionStatus.ACTIVE)
    assert (active.endpoint, active.customer) == (new["endpoint"], customer)


def test_cors_preflight_for_the_shops_origin(settings):
    settings.STOREFRONT_API_BROWSER_ORIGINS = ["https://shop.example"]
    client = Api(None).client
    response = client.options(
        "/api/v1/push/subscriptions",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "X-Customer-Token" in response["Access-Control-Allow-Headers"]
    other = client.options("/api/v1/push/subscriptions", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other


def test_the_old_push_urls_still_work_and_say_they_are_deprecated(push_service):  # noqa: F811
    import json

    from django.test import Client

    customer = CustomerFactory()
    sub = push_service.new_subscription()
    response = Client().post(
        "/push/storefront/subscribe",
        json.dumps({"token": storefront_token_issue(customer_id=customer.pk), "subscription": sub}),
        content_type="application/json",
    )
    assert response.status_code == 201
    assert response["Deprecation"] == "true"
    assert response["Link"] == '</api/v1/push/subscriptions>; rel="successor-version"'
    assert PushSubscription.objects.get().customer == customer
    key = Client().get("/push/storefront/key")
    assert key["Link"] == '</api/v1/push/key>; rel="successor-version"'
