"""What each push earned, on the pages: /push/, the campaign page, the client and order pages."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orders.models import Order, OrderStatus
from orders.services import order_refund
from tests.factories import (
    CustomerFactory,
    UserFactory,
    make_campaign,
    make_click,
    make_order,
)
from tests.notifications.fixtures_push import send_campaign, subscribe, vapid_settings  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vapid_settings")]

LIST = reverse("notifications:campaign-list")


def test_a_campaign_followed_by_clicks_and_orders_earns_what_the_orders_add_up_to(
    admin_client_role, viewer_client, push_service, django_capture_on_commit_callbacks
):
    """The issue's check: send, click, order, and compare the figures with the orders."""
    ann, bob, cleo = (subscribe(push_service) for _ in range(3))
    campaign = send_campaign(django_capture_on_commit_callbacks, link="https://shop.example/sale")
    assert (campaign.customers_count, campaign.delivered) == (3, 3)
    browser = Client()  # the customers' browser, not logged in
    for subscription in (ann, bob):
        url = push_service.messages_for(subscription.endpoint)[0].json()["url"]
        response = browser.get(url.removeprefix("https://backoffice.example"))
        assert response["Location"] == (
            "https://shop.example/sale?utm_source=backoffice&utm_medium=push"
            f"&utm_campaign=push-{campaign.pk}"
        )
    later = timezone.now() + timedelta(minutes=5)
    make_order(ann.customer, total="120.00", placed_at=later, number="A1")
    make_order(bob.customer, total="80.00", placed_at=later, number="B1")
    order_refund(order=Order.objects.get(number="B1"), amount="20.00")
    make_order(bob.customer, total="9.99", placed_at=later, number="B2", status="cancelled")
    make_order(cleo.customer, total="500.00", placed_at=later, number="C1")  # never clicked
    # By hand: A1 120.00 + B1 (80.00 - 20.00) = 180.00 from 2 orders; 2 clicks; 3 customers.
    credited = Order.objects.filter(push_campaign=campaign, status__in=["paid", "refunded"])
    assert sorted(credited.values_list("number", flat=True)) == ["A1", "B1"]
    assert sum(o.total - o.refunded_amount for o in credited) == 180

    page = viewer_client.get(campaign.get_absolute_url())
    earnings = page.context["earnings"]
    assert (earnings.orders, str(earnings.revenue), earnings.clicks) == (2, "180.00", 2)
    html = page.content.decode()
    assert "€180.00" in html and "100.0 %" in html and "€60,000.00" in html
    # The numbers as link texts: a bare "C1" can be part of the page's random CSRF token.
    shown = set(re.findall(r">([A-C][12])</a>", html))
    assert {"A1", "B1", "B2"} <= shown and "C1" not in shown
    row = next(r for r in viewer_client.get(LIST).context["rows"] if r[0].pk == campaign.pk)
    assert row[1] == earnings
    # In French, with the language's own number format.
    french = viewer_client.get(campaign.get_absolute_url(), headers={"accept-language": "fr"})
    assert "180,00\xa0€" in french.text and "Commandes créditées (payées)" in french.text

    # The client page's order history says where the order came from.
    ann_page = viewer_client.get(ann.customer.get_absolute_url()).content.decode()
    assert f'Push: <a href="{campaign.get_absolute_url()}">Spring sale</a>' in ann_page
    assert "Push:" not in viewer_client.get(cleo.customer.get_absolute_url()).content.decode()
    order_page = viewer_client.get(reverse("orders:order-detail", args=["A1"])).content.decode()
    assert f'href="{campaign.get_absolute_url()}">Spring sale</a>' in order_page


def test_a_campaign_without_a_link_earns_nothing_and_says_why(viewer_client):
    campaign = make_campaign(link="")
    html = viewer_client.get(campaign.get_absolute_url()).content.decode()
    assert "This campaign has no link" in html
    assert (
        "Orders credited (paid)"
        not in html.split('id="campaign-earnings"')[1].split("</section>")[0]
    )


def test_pages_query_counts_do_not_grow_with_campaigns_and_orders(
    viewer_client, django_assert_max_num_queries
):
    def campaign_with_orders(n):
        campaign = make_campaign(customers_count=100, clicks=n)
        for _ in range(n):
            customer = CustomerFactory()
            make_click(customer, campaign, at=timezone.now() - timedelta(hours=1))
            make_order(customer)
        return campaign

    small = campaign_with_orders(1)
    viewer_client.get(LIST)
    with django_assert_max_num_queries(8) as list_few:
        viewer_client.get(LIST)
    with django_assert_max_num_queries(12) as detail_few:
        viewer_client.get(small.get_absolute_url())
    customer = Order.objects.get(push_campaign=small).customer
    with django_assert_max_num_queries(40) as client_few:
        viewer_client.get(customer.get_absolute_url())

    big = campaign_with_orders(25)
    for _ in range(4):
        campaign_with_orders(2)
    for _ in range(5):
        make_click(customer, big, at=timezone.now() - timedelta(minutes=30))
        make_order(customer)
    with django_assert_max_num_queries(len(list_few.captured_queries)):
        response = viewer_client.get(LIST)
    assert len(response.context["rows"]) == 6
    with django_assert_max_num_queries(len(detail_few.captured_queries)):
        response = viewer_client.get(big.get_absolute_url())
    assert response.context["earnings"].orders == 30 and response.context["more_credited"]
    assert len(response.context["credited_orders"]) == 20
    with django_assert_max_num_queries(len(client_few.captured_queries)):
        response = viewer_client.get(customer.get_absolute_url())
    assert sum(1 for row in response.context["order_rows"] if row["campaign"]) == 6


def test_the_campaign_link_is_shown_only_to_those_who_may_read_campaigns(db):
    campaign, customer = make_campaign(title="Soldes"), CustomerFactory()
    make_click(customer, campaign, at=timezone.now() - timedelta(hours=1))
    order = make_order(customer)
    user = UserFactory()
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_customer", "view_order"])
    )
    client = Client()
    client.force_login(user)
    html = client.get(customer.get_absolute_url()).content.decode()
    assert "Push: Soldes" in html and campaign.get_absolute_url() not in html
    html = client.get(order.get_absolute_url()).content.decode()
    assert "Soldes" in html and campaign.get_absolute_url() not in html
    assert client.get(campaign.get_absolute_url()).status_code == 403
    assert client.get(LIST).status_code == 403


@pytest.mark.parametrize(
    "title", ["<script>alert(1)</script>", "{{ 7|add:1 }}", "Soldes & « promos »"]
)
def test_hostile_titles_and_links_are_shown_as_text(viewer_client, title):
    link = 'https://shop.example/?q="><script>x</script>#"'
    campaign, customer = make_campaign(title=title, link=link), CustomerFactory()
    make_click(customer, campaign, at=timezone.now() - timedelta(hours=1))
    make_order(customer, status=OrderStatus.PAID)
    for url in (campaign.get_absolute_url(), LIST, customer.get_absolute_url()):
        html = viewer_client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in html and "<script>x</script>" not in html
