"""The storefront's endpoints: public, JSON, refusing anything malformed or unsigned."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from clients.models import AuditEntry
from notifications.models import PushSubscription, SubscriptionStatus
from notifications.tokens import storefront_token_issue, storefront_token_read
from tests.factories import CustomerFactory
from tests.notifications.fixtures_push import vapid_settings  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vapid_settings")]

SUBSCRIBE = reverse("notifications:storefront-subscribe")
UNSUBSCRIBE = reverse("notifications:storefront-unsubscribe")
RESUBSCRIBE = reverse("notifications:storefront-resubscribe")


@pytest.fixture
def storefront():
    """An anonymous client that enforces CSRF like a storefront on another site would."""
    return Client(enforce_csrf_checks=True)


def _post(storefront, url, data, **extra):
    body = data if isinstance(data, (bytes, str)) else json.dumps(data)
    return storefront.post(url, body, content_type="application/json", **extra)


def test_the_public_key_is_served_to_anyone(storefront, vapid_keys):
    response = storefront.get(reverse("notifications:storefront-key"))
    assert response.status_code == 200
    assert response.json() == {"publicKey": vapid_keys.public_key}


def test_subscribing_stores_the_browser_and_opts_the_customer_in(storefront, push_service):
    customer = CustomerFactory()
    sub = push_service.new_subscription()
    token = storefront_token_issue(customer_id=customer.pk)
    response = _post(
        storefront, SUBSCRIBE, {"token": token, "subscription": sub}, HTTP_USER_AGENT="Firefox/140"
    )
    assert response.status_code == 201
    stored = PushSubscription.objects.get()
    assert (stored.customer, stored.endpoint, stored.user_agent) == (
        customer,
        sub["endpoint"],
        "Firefox/140",
    )
    customer.refresh_from_db()
    assert customer.push_opt_in is True
    assert AuditEntry.objects.filter(customer=customer, action="push_opt_in").count() == 1
    # The same storefront again: still one subscription.
    assert _post(storefront, SUBSCRIBE, {"token": token, "subscription": sub}).status_code == 201
    assert PushSubscription.objects.count() == 1

    response = _post(storefront, UNSUBSCRIBE, {"token": token, "endpoint": sub["endpoint"]})
    assert response.status_code == 200 and response.json() == {"unsubscribed": True}
    stored.refresh_from_db()
    customer.refresh_from_db()
    assert stored.status == SubscriptionStatus.UNSUBSCRIBED
    assert customer.push_opt_in is False


def test_another_customer_cannot_unsubscribe_a_browser(storefront, push_service):
    owner, other = CustomerFactory(), CustomerFactory()
    sub = push_service.new_subscription()
    _post(
        storefront,
        SUBSCRIBE,
        {"token": storefront_token_issue(customer_id=owner.pk), "subscription": sub},
    )
    response = _post(
        storefront,
        UNSUBSCRIBE,
        {"token": storefront_token_issue(customer_id=other.pk), "endpoint": sub["endpoint"]},
    )
    assert response.json() == {"unsubscribed": False}
    owner.refresh_from_db()
    assert owner.push_opt_in is True


def _valid(push_service):
    customer = CustomerFactory()
    return {
        "token": storefront_token_issue(customer_id=customer.pk),
        "subscription": push_service.new_subscription(),
    }


def _with(data, path, value):
    data = json.loads(json.dumps(data))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "status"),
    [
        (("token",), "1.1700000000.deadbeef", 403),
        (("token",), None, 403),
        (("token",), "", 403),
        (("subscription",), "nope", 400),
        (("subscription", "endpoint"), "https://internal.shop.local/admin", 400),
        (("subscription", "endpoint"), "http://fcm.googleapis.com/fcm/send/x", 400),
        (("subscription", "endpoint"), "ftp://127.0.0.1/x", 400),
        (("subscription", "endpoint"), 42, 400),
        (("subscription", "keys"), None, 400),
        (("subscription", "keys", "p256dh"), "AAAA", 400),
        (("subscription", "keys", "p256dh"), "B" * 87, 400),  # 65 bytes but not a point
        (("subscription", "keys", "auth"), "short", 400),
        (("subscription", "keys", "auth"), "!!!!!!!!!!!!!!!!!!!!!!", 400),
    ],
)
def test_bad_subscriptions_are_refused_and_store_nothing(
    storefront, push_service, path, value, status
):
    response = _post(storefront, SUBSCRIBE, _with(_valid(push_service), path, value))
    assert response.status_code == status
    assert "error" in response.json()
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
        ('{"token": "x"}', "text/plain"),
        ("x" * 5000, "application/json"),
        ("\udcff", "application/json"),
    ],
)
def test_malformed_or_oversized_bodies_are_a_400(storefront, body, content_type):
    response = storefront.post(
        SUBSCRIBE, body.encode("utf-8", "surrogatepass"), content_type=content_type
    )
    assert response.status_code == 400
    assert not PushSubscription.objects.exists()


DEEP = 3000  # within the 4 KB limit, deeper than Python's recursion limit


@pytest.mark.parametrize("url", [SUBSCRIBE, UNSUBSCRIBE, RESUBSCRIBE])
@pytest.mark.parametrize(
    "body",
    [
        "[" * DEEP + "]" * DEEP,
        '{"a":' * (DEEP // 5) + "1" + "}" * (DEEP // 5),
        '{"token": ' + "[" * DEEP + "]" * DEEP + "}",
        '{"subscription": {"keys": ' + "[" * DEEP,
        '{"token": NaN}',
        '{"token": Infinity, "endpoint": -Infinity}',
        '{"token": 1' + "0" * 4000 + "}",
        '{"token": "x", "token": "y"}',
        '"just a string"',
        "null",
        "",
        "\ufeff{}",
        r'{"endpoint": "\ud800", "token": "\udfff"}',  # lone surrogates, escaped in JSON
    ],
    ids=lambda b: b[:20],
)
def test_malformed_json_of_any_shape_depth_or_size_is_a_4xx(storefront, url, body):
    response = storefront.post(url, body.encode("utf-8"), content_type="application/json")
    assert 400 <= response.status_code < 500
    assert "error" in response.json()
    assert not PushSubscription.objects.exists()


@pytest.mark.parametrize("url", [UNSUBSCRIBE, RESUBSCRIBE])
@pytest.mark.parametrize(
    "bad", [r"x\u0000y", r"\ud800", r"\udfff\ud800", r"\u0000"], ids=["nul", "hi", "pair", "nul1"]
)
def test_strings_no_text_may_hold_are_a_400_not_a_database_error(
    storefront, push_service, url, bad
):
    data = _valid(push_service)
    assert _post(storefront, SUBSCRIBE, data).status_code == 201
    subscription = json.dumps(data["subscription"])
    body = (
        f'{{"token": "{data["token"]}", "endpoint": "{bad}", "oldEndpoint": "{bad}", '
        f'"oldAuth": "{bad}", "subscription": {subscription}}}'
    )
    response = storefront.post(url, body.encode(), content_type="application/json")
    assert response.status_code == 400
    assert PushSubscription.objects.get().status == SubscriptionStatus.ACTIVE


@pytest.mark.parametrize("token", [r"1.1700000000.\u00e9", r"\u0661.1700000000.ab", r"1.2.\u4e2d"])
def test_non_ascii_tokens_are_refused_not_a_500(storefront, push_service, token):
    data = _valid(push_service)
    subscription = json.dumps(data["subscription"])
    body = f'{{"token": "{token}", "subscription": {subscription}}}'
    response = storefront.post(SUBSCRIBE, body.encode(), content_type="application/json")
    assert response.status_code == 403
    assert not PushSubscription.objects.exists()


def test_an_expired_token_is_refused(storefront, push_service, settings):
    settings.PUSH_STOREFRONT_TOKEN_MAX_AGE = 60
    data = _valid(push_service)
    customer_id = storefront_token_read(data["token"])
    data["token"] = storefront_token_issue(customer_id=customer_id, now=1_000_000)
    assert _post(storefront, SUBSCRIBE, data).status_code == 403


def test_a_token_for_a_deleted_customer_is_refused(storefront, push_service):
    data = _valid(push_service)
    data["token"] = storefront_token_issue(customer_id=987654)
    assert _post(storefront, SUBSCRIBE, data).status_code == 403


def test_wrong_methods(storefront):
    assert storefront.get(SUBSCRIBE).status_code == 405
    assert storefront.post(reverse("notifications:storefront-key")).status_code == 405


def test_cors_only_for_the_configured_storefronts(storefront, push_service, settings):
    settings.PUSH_STOREFRONT_ORIGINS = ["https://shop.example"]
    preflight = storefront.options(SUBSCRIBE, HTTP_ORIGIN="https://shop.example")
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == "https://shop.example"
    response = _post(
        storefront, SUBSCRIBE, _valid(push_service), HTTP_ORIGIN="https://evil.example"
    )
    assert response.status_code == 201  # CORS is the storefront's business; the token is ours
    assert "Access-Control-Allow-Origin" not in response


def test_a_renewed_subscription_replaces_the_old_one(storefront, push_service):
    data = _valid(push_service)
    _post(storefront, SUBSCRIBE, data)
    old = data["subscription"]
    new = push_service.new_subscription()
    forged = _post(
        storefront,
        RESUBSCRIBE,
        {"oldEndpoint": old["endpoint"], "oldAuth": "AAAAAAAAAAAAAAAAAAAAAA", "subscription": new},
    )
    assert forged.status_code == 403
    response = _post(
        storefront,
        RESUBSCRIBE,
        {"oldEndpoint": old["endpoint"], "oldAuth": old["keys"]["auth"], "subscription": new},
    )
    assert response.status_code == 201
    statuses = dict(PushSubscription.objects.values_list("endpoint", "status"))
    assert statuses == {old["endpoint"]: "unsubscribed", new["endpoint"]: "active"}
    customer = PushSubscription.objects.get(endpoint=new["endpoint"]).customer
    assert customer.push_opt_in is True


def test_the_public_key_endpoint_says_when_push_is_not_configured(storefront, settings):
    settings.VAPID_PRIVATE_KEY = ""
    settings.VAPID_PRIVATE_KEY_FILE = ""
    response = storefront.get(reverse("notifications:storefront-key"))
    assert response.status_code == 503
    assert "not configured" in response.json()["error"]
