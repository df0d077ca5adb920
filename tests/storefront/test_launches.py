"""Launches through the API, attribution, and what the client page shows of them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.tokens import storefront_token_issue
from storefront.models import Launch, Scope
from storefront.selectors import launch_attributing_order
from tests.factories import CustomerFactory
from tests.storefront.conftest import Api, assert_problem

pytestmark = pytest.mark.django_db


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def test_launch_with_utm_fields_for_a_customer(api):
    customer = CustomerFactory()
    response = api.post(
        "/launches",
        {
            "platform": "ios",
            "customer_id": customer.pk,
            "source": "google",
            "medium": "cpc",
            "campaign": "winter",
            "device": "iPhone 15",
        },
    )
    assert response.status_code == 201, response.content
    launch = Launch.objects.get()
    assert (launch.customer, launch.source, launch.medium, launch.campaign) == (
        customer,
        "google",
        "cpc",
        "winter",
    )
    assert response.json()["platform"] == "ios"


def test_utm_parameters_from_the_landing_url_or_the_referrer_site(api):
    api.post(
        "/launches",
        {"platform": "web", "url": "https://shop.example/p?utm_source=newsletter&utm_medium=email"},
    )
    api.post("/launches", {"platform": "web", "referrer": "https://www.instagram.com/p/x"})
    first, second = Launch.objects.order_by("pk")
    assert (first.source, first.medium) == ("newsletter", "email")
    assert (second.source, second.medium) == ("instagram.com", "referral")


def test_anonymous_launches_are_linked_at_sign_up_and_at_login(api):
    api.post("/launches", {"platform": "android", "visitor_id": "v-1", "source": "facebook"})
    api.post("/launches", {"platform": "android", "visitor_id": "v-2", "source": "tiktok"})
    response = api.post("/customers", {"email": "new@example.com", "visitor_id": "v-1"})
    customer_id = response.json()["id"]
    assert list(
        Launch.objects.filter(customer_id=customer_id).values_list("source", flat=True)
    ) == ["facebook"]
    other = CustomerFactory()
    api.post("/launches", {"platform": "android", "visitor_id": "v-2", "customer_id": other.pk})
    assert Launch.objects.filter(customer=other).count() == 2


def test_invalid_launches_change_nothing(api):
    document = assert_problem(
        api.post(
            "/launches",
            {
                "platform": "fax",
                "customer_id": 0,
                "occurred_at": "yesterday",
                "source": "x" * 101,
                "utm_source": "google",
            },
        ),
        422,
        "validation",
    )
    assert {e["field"] for e in document["errors"]} == {
        "platform",
        "customer_id",
        "occurred_at",
        "source",
        "utm_source",
    }
    far = iso(timezone.now() + timedelta(days=1))
    assert_problem(
        api.post("/launches", {"platform": "web", "occurred_at": far}), 422, "validation"
    )
    missing = assert_problem(
        api.post("/launches", {"platform": "web", "customer_id": 999999}), 422, "validation"
    )
    assert missing["errors"][0]["field"] == "customer_id"
    assert not Launch.objects.exists()


def test_customer_token_from_the_browser(db):
    customer = CustomerFactory()
    browser = Api(None)
    token = {"X-Customer-Token": storefront_token_issue(customer_id=customer.pk)}
    response = browser.post("/launches", {"platform": "web", "source": "bing"}, headers=token)
    assert response.status_code == 201, response.content
    assert Launch.objects.get().customer == customer
    other = CustomerFactory()
    assert_problem(
        browser.post("/launches", {"platform": "web", "customer_id": other.pk}, headers=token),
        403,
        "forbidden",
    )
    bad = {"X-Customer-Token": "1.2.3"}
    assert_problem(
        browser.post("/launches", {"platform": "web"}, headers=bad), 401, "unauthenticated"
    )
    # A customer token reads nothing.
    assert_problem(browser.get(f"/customers/{customer.pk}", headers=token), 401, "unauthenticated")


def test_launch_needs_customers_write(api_as):
    assert_problem(api_as(Scope.READ).post("/launches", {"platform": "web"}), 403, "forbidden")


def test_attribution_takes_the_latest_launch_with_a_source_within_30_days(db):
    customer = CustomerFactory()
    now = timezone.now()

    def launch(days_ago, source):
        return Launch.objects.create(
            customer=customer,
            occurred_at=now - timedelta(days=days_ago),
            received_at=now,
            platform="web",
            source=source,
            medium="cpc" if source else "",
        )

    launch(40, "old-ad")
    assert launch_attributing_order(customer_id=customer.pk, placed_at=now) is None
    ad = launch(3, "google")
    launch(1, "")  # typed the address: does not erase the ad
    launch(-1, "after")  # after the order
    assert launch_attributing_order(customer_id=customer.pk, placed_at=now) == ad


def test_client_page_shows_origin_launches_and_changes_by_the_customer(api, viewer_client):
    customer_id = api.post("/customers", {"email": "ori@example.com"}).json()["id"]
    api.post(
        "/launches",
        {
            "platform": "ios",
            "customer_id": customer_id,
            "source": "google",
            "medium": "cpc",
            "occurred_at": iso(timezone.now() - timedelta(days=2)),
        },
    )
    api.post(
        "/launches",
        {
            "platform": "web",
            "customer_id": customer_id,
            "source": "newsletter",
            "medium": "email",
            "device": "Firefox",
        },
    )
    api.patch(f"/customers/{customer_id}", {"first_name": "Oriane"})
    page = viewer_client.get(f"/clients/{customer_id}/")
    text = page.text
    assert "Where the customer comes from" in text
    first = text.index("First visit's source")
    assert "google / cpc" in text[first : first + 300]
    last = text.index("Latest visit's source")
    assert "newsletter / email" in text[last : last + 300]
    # The tabs' "Last source" is the last order's: the page says which of its sources that is.
    assert "Last source" not in text.replace("the tabs' “Last source”", "")
    assert "Firefox" in text
    assert text.count("by the customer") >= 2  # sign-up and the change of name
    assert "Details changed" in text and "Oriane" in text


def test_customer_launch_list(api):
    customer = CustomerFactory()
    for source in ("a", "b", "c"):
        api.post("/launches", {"platform": "web", "customer_id": customer.pk, "source": source})
    response = api.get(f"/customers/{customer.pk}/launches?limit=2")
    assert [launch["source"] for launch in response.json()] == ["c", "b"]


def test_client_page_query_count_does_not_grow_with_launches(api, viewer_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    customer = CustomerFactory()

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert viewer_client.get(f"/clients/{customer.pk}/").status_code == 200
        return len(queries)

    without = count()
    api.post("/launches", {"platform": "web", "customer_id": customer.pk, "source": "a"})
    with_one = count()
    for i in range(15):
        api.post("/launches", {"platform": "web", "customer_id": customer.pk, "source": f"s{i}"})
    assert count() == with_one <= without + 2
