"""The back-office pages: compose from a tab's audience, history, progress, cancel, clicks."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from django.utils import timezone

from notifications.forms import send_token_new
from notifications.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from notifications.payload import payload_size
from notifications.tokens import click_token
from notifications.webpush import MAX_PLAINTEXT_SIZE
from tests.factories import CustomerFactory, make_order
from tests.notifications.fixtures_push import send_campaign, subscribe, vapid_settings  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vapid_settings")]

CREATE = reverse("notifications:campaign-create")
LIST = reverse("notifications:campaign-list")
MESSAGE = {
    "title": "Spring sale",
    "body": "20% off everything",
    "link": "https://shop.example/sale",
    "icon": "",
    "image": "",
    "when": "now",
    "send_at": "",
    "ttl": "86400",
    "urgency": "normal",
}


def _compose_url(**params):
    return f"{CREATE}?{urlencode(params, doseq=True)}"


@pytest.fixture
def leads(push_service):
    """Three leads accepting push (one with two devices) and one who does not."""
    subscriptions = [subscribe(push_service) for _ in range(3)]
    subscriptions.append(subscribe(push_service, customer=subscriptions[0].customer))
    return {"subscriptions": subscriptions, "refusing": CustomerFactory()}


def test_compose_shows_customers_and_devices_of_the_audience(admin_client_role, leads):
    response = admin_client_role.get(_compose_url(tab="leads", audience="all"))
    assert response.status_code == 200
    assert response.context["counts"] == {"customers": 3, "devices": 4}
    html = response.content.decode()
    assert "will receive it" in html and "Send to 4 devices" in html
    assert f'data-max-bytes="{MAX_PLAINTEXT_SIZE}"' in html


def test_selected_ids_are_filtered_again_on_the_server(admin_client_role, leads, push_service):
    chosen = leads["subscriptions"][1].customer
    client = CustomerFactory()
    make_order(client)
    subscribe(push_service, customer=client)  # a client, not a lead
    ids = [chosen.pk, leads["refusing"].pk, client.pk, 999999]
    response = admin_client_role.get(_compose_url(tab="leads", audience="selected", ids=ids))
    assert response.context["counts"] == {"customers": 1, "devices": 1}


def test_filtered_audience_uses_the_tab_query(admin_client_role, leads):
    email = leads["subscriptions"][2].customer.email
    query = urlencode({"q": email})
    response = admin_client_role.get(_compose_url(tab="leads", audience="filtered", query=query))
    assert response.context["counts"] == {"customers": 1, "devices": 1}


@pytest.mark.parametrize(
    "params",
    [
        {"tab": "orders", "audience": "all"},
        {"tab": "leads", "audience": "everyone"},
        {"tab": "leads", "audience": "selected"},
        {"tab": "leads", "audience": "selected", "ids": ["x"]},
        {"tab": "leads"},
    ],
)
def test_an_invalid_audience_is_a_400(admin_client_role, leads, params):
    response = admin_client_role.get(_compose_url(**params))
    assert response.status_code == 400
    response = admin_client_role.post(CREATE, {**params, **MESSAGE})
    assert response.status_code == 400
    assert not Campaign.objects.exists()


def test_sending_now_freezes_the_audience_and_delivers(
    admin_client_role, leads, push_service, django_capture_on_commit_callbacks
):
    chosen = [s.customer.pk for s in leads["subscriptions"][:2]]
    data = {"tab": "leads", "audience": "selected", "ids": chosen, "query": "", **MESSAGE}
    data["send_token"] = send_token_new()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_role.post(CREATE, data)
    campaign = Campaign.objects.get()
    assert response.status_code == 302 and response.url == campaign.get_absolute_url()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT
    assert campaign.audience_ids == sorted(chosen)
    # The first customer has two devices.
    assert (campaign.customers_count, campaign.recipients, campaign.delivered) == (2, 3, 3)
    assert len(push_service.received) == 3


def test_a_message_over_the_encrypted_size_limit_is_refused(admin_client_role, leads):
    base = "http://testserver/"
    fixed = payload_size(title="Sale", body="", icon="", image="", base_url=base)
    fits = "é" * ((MAX_PLAINTEXT_SIZE - fixed) // 2)
    data = {"tab": "leads", "audience": "all", **MESSAGE, "title": "Sale"}
    response = admin_client_role.post(CREATE, {**data, "body": fits + "éé"})
    assert response.status_code == 400
    assert "too long" in response.content.decode()
    assert not Campaign.objects.exists()
    assert (
        payload_size(title="Sale", body=fits, icon="", image="", base_url=base)
        <= MAX_PLAINTEXT_SIZE
    )


def test_a_link_must_be_http(admin_client_role, leads):
    data = {"tab": "leads", "audience": "all", **MESSAGE, "link": "javascript:alert(1)"}
    response = admin_client_role.post(CREATE, data)
    assert response.status_code == 400
    assert not Campaign.objects.exists()


def test_scheduling_and_cancelling(
    admin_client_role, leads, deferred_tasks, django_capture_on_commit_callbacks
):
    when = timezone.localtime() + timedelta(days=1)
    data = {
        "tab": "leads",
        "audience": "all",
        **MESSAGE,
        "when": "later",
        "send_at": when.strftime("%Y-%m-%dT%H:%M"),
        "send_token": send_token_new(),
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_role.post(CREATE, data)
    campaign = Campaign.objects.get()
    assert response.status_code == 302
    assert campaign.status == CampaignStatus.SCHEDULED
    assert abs((campaign.send_at - when).total_seconds()) < 60
    [result] = deferred_tasks.results
    assert result.task.run_after == campaign.send_at
    page = admin_client_role.get(campaign.get_absolute_url())
    assert "Cancel this campaign" in page.content.decode()

    response = admin_client_role.post(reverse("notifications:campaign-cancel", args=[campaign.pk]))
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.CANCELLED
    # The task runs at its time and finds nothing to do.
    from notifications.services import campaign_start

    assert campaign_start(campaign_id=campaign.pk) == []
    assert not Delivery.objects.exists()
    # Too late to cancel twice.
    admin_client_role.post(reverse("notifications:campaign-cancel", args=[campaign.pk]))
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.CANCELLED


def test_a_time_in_the_past_is_refused(admin_client_role, leads):
    data = {
        "tab": "leads",
        "audience": "all",
        **MESSAGE,
        "when": "later",
        "send_at": "2020-01-01T10:00",
    }
    response = admin_client_role.post(CREATE, data)
    assert response.status_code == 400
    assert not Campaign.objects.exists()


@pytest.mark.parametrize("fixture", ["viewer_client", "staff_client"])
def test_viewer_and_staff_may_read_but_not_act(
    request, fixture, leads, push_service, django_capture_on_commit_callbacks
):
    client = request.getfixturevalue(fixture)
    campaign = send_campaign(django_capture_on_commit_callbacks)
    assert client.get(LIST).status_code == 200
    assert client.get(campaign.get_absolute_url()).status_code == 200
    assert client.get(_compose_url(tab="leads", audience="all")).status_code == 403
    data = {"tab": "leads", "audience": "all", **MESSAGE}
    assert client.post(CREATE, data).status_code == 403
    scheduled = Campaign.objects.create(
        title="x",
        body="x",
        link="https://x.example",
        audience_tab="leads",
        audience_kind="all",
        public_base_url="https://b.example",
        created_at=timezone.now(),
        send_at=timezone.now() + timedelta(days=1),
    )
    assert (
        client.post(reverse("notifications:campaign-cancel", args=[scheduled.pk])).status_code
        == 403
    )
    scheduled.refresh_from_db()
    assert scheduled.status == CampaignStatus.SCHEDULED
    assert Campaign.objects.count() == 2
    assert "Cancel this campaign" not in client.get(scheduled.get_absolute_url()).content.decode()


def test_a_user_without_a_role_sees_nothing(client, leads):
    from tests.factories import UserFactory

    client.force_login(UserFactory())
    assert client.get(LIST).status_code == 403


def test_history_lists_campaigns_with_results(
    admin_client_role, leads, push_service, django_capture_on_commit_callbacks
):
    push_service.respond(leads["subscriptions"][1].endpoint, status=410)
    campaign = send_campaign(django_capture_on_commit_callbacks, title="Summer <b>sale</b>")
    response = admin_client_role.get(LIST)
    html = response.content.decode()
    assert "Summer &lt;b&gt;sale&lt;/b&gt;" in html
    assert campaign.get_absolute_url() in html
    row = response.context["page"].object_list[0]
    assert (row.recipients, row.delivered, row.expired) == (4, 3, 1)


def test_history_query_count_does_not_grow(
    admin_client_role,
    leads,
    push_service,
    django_capture_on_commit_callbacks,
    django_assert_max_num_queries,
):
    send_campaign(django_capture_on_commit_callbacks)
    admin_client_role.get(LIST)
    with django_assert_max_num_queries(8) as few:
        admin_client_role.get(LIST)
    for _ in range(5):
        send_campaign(django_capture_on_commit_callbacks)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = admin_client_role.get(LIST)
    assert len(response.context["page"].object_list) == 6


def test_detail_query_count_does_not_grow_with_deliveries(
    admin_client_role,
    push_service,
    django_capture_on_commit_callbacks,
    django_assert_max_num_queries,
):
    subscribe(push_service)
    small = send_campaign(django_capture_on_commit_callbacks)
    with django_assert_max_num_queries(10) as few:
        admin_client_role.get(small.get_absolute_url())
    for _ in range(6):
        subscribe(push_service)
    big = send_campaign(django_capture_on_commit_callbacks)
    assert big.recipients == 7
    with django_assert_max_num_queries(len(few.captured_queries)):
        admin_client_role.get(big.get_absolute_url())


def test_progress_partial_polls_while_sending(
    admin_client_role, push_service, django_capture_on_commit_callbacks
):
    subscribe(push_service)
    campaign = send_campaign(django_capture_on_commit_callbacks)
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SENDING, delivered=0)
    response = admin_client_role.get(campaign.get_absolute_url(), headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="campaign-progress"')
    assert 'hx-trigger="every 2s"' in html and "<html" not in html
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SENT, delivered=1)
    html = admin_client_role.get(
        campaign.get_absolute_url(), headers={"HX-Request": "true"}
    ).content.decode()
    assert "hx-trigger" not in html and 'value="100"' in html


def test_a_click_is_counted_once_and_goes_to_the_campaign_link(
    client, push_service, django_capture_on_commit_callbacks
):
    subscription = subscribe(push_service)
    campaign = send_campaign(
        django_capture_on_commit_callbacks, link="https://shop.example/sale?x=1"
    )
    url = push_service.messages_for(subscription.endpoint)[0].json()["url"]
    path = url.removeprefix("https://backoffice.example")
    for _ in range(2):
        response = client.get(path)  # anonymous: the customer's browser
        assert response.status_code == 302
        assert response["Location"] == (
            "https://shop.example/sale?x=1&utm_source=backoffice&utm_medium=push"
            f"&utm_campaign=push-{campaign.pk}"
        )
    campaign.refresh_from_db()
    assert campaign.clicks == 1
    assert Delivery.objects.get(campaign=campaign).clicked_at is not None
    assert campaign.click_rate == 1.0


@pytest.mark.parametrize(
    "token",
    [
        "nonsense",
        "1.2.AAAAAAAAAAAAAAAAAAAAAA",
        "https:..evil.example",
        "1.2",
        ".1.2.x",
        "1.2.\u00e9t\u00e9",  # non-ASCII: hmac.compare_digest raised TypeError (a 500)
        "1.2.\u4e2d",
    ],
)
def test_a_forged_click_link_is_a_404(client, token):
    response = client.get(reverse("notifications:click", args=[token]))
    assert response.status_code == 404


def test_a_click_token_cannot_be_moved_to_another_campaign(
    client, push_service, django_capture_on_commit_callbacks
):
    subscription = subscribe(push_service)
    campaign = send_campaign(django_capture_on_commit_callbacks)
    token = click_token(campaign_id=campaign.pk, subscription_id=subscription.pk)
    forged = token.replace(f"{campaign.pk}.", f"{campaign.pk + 1}.", 1)
    assert client.get(reverse("notifications:click", args=[forged])).status_code == 404
    assert Delivery.objects.get().status == DeliveryStatus.SENT
