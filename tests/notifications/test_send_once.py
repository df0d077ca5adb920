"""The compose form's one-time token: the same form posted twice (Back then Send, a replayed
request) creates and sends one campaign."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from notifications.forms import SEND_TOKEN_RE, send_token_new
from notifications.models import Campaign
from notifications.services import Audience, CampaignAlreadyCreated, Message, campaign_create
from tests.factories import UserFactory
from tests.notifications.fixtures_push import subscribe, vapid_settings  # noqa: F401

pytestmark = [pytest.mark.usefixtures("vapid_settings")]

CREATE = reverse("notifications:campaign-create")
TEST = reverse("notifications:campaign-test")
FORM = {
    "tab": "leads",
    "audience": "all",
    "query": "",
    "title": "BackBtn",
    "body": "Only once",
    "link": "https://shop.example/sale",
    "icon": "",
    "image": "",
    "when": "now",
    "send_at": "",
    "ttl": "86400",
    "urgency": "normal",
}
ALREADY = "This form was already sent"
EXPIRED = "This form has expired or is incomplete"


def _token_on_page(html: str) -> str:
    [token] = re.findall(r'<input type="hidden" name="send_token" value="([^"]*)"', html)
    return token


@pytest.mark.django_db
def test_each_compose_page_carries_a_new_token(admin_client_role, push_service):
    subscribe(push_service)
    first = _token_on_page(admin_client_role.get(CREATE, {"tab": "leads", "audience": "all"}).text)
    second = _token_on_page(admin_client_role.get(CREATE, {"tab": "leads", "audience": "all"}).text)
    assert SEND_TOKEN_RE.fullmatch(first) and SEND_TOKEN_RE.fullmatch(second)
    assert first != second


@pytest.mark.django_db
def test_the_same_form_sent_twice_sends_one_campaign(
    admin_client_role, push_service, django_capture_on_commit_callbacks
):
    for _ in range(3):
        subscribe(push_service)
    token = _token_on_page(admin_client_role.get(CREATE, {"tab": "leads", "audience": "all"}).text)
    data = {**FORM, "send_token": token}
    with django_capture_on_commit_callbacks(execute=True):
        first = admin_client_role.post(CREATE, data)
    campaign = Campaign.objects.get()
    assert first.status_code == 302 and first.url == campaign.get_absolute_url()
    assert campaign.send_token == token
    assert len(push_service.received) == 3
    list(get_messages(first.wsgi_request))  # read the first message

    # Back, then Send again (or the same request replayed): nothing new is created or sent.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        second = admin_client_role.post(CREATE, data)
    assert callbacks == []
    assert second.status_code == 302 and second.url == campaign.get_absolute_url()
    assert Campaign.objects.get() == campaign
    assert len(push_service.received) == 3
    page = admin_client_role.get(second.url)
    assert ALREADY in page.text and "Nothing was sent again" in page.text


@pytest.mark.django_db
def test_a_scheduled_campaign_sent_twice_is_scheduled_once(
    admin_client_role, push_service, deferred_tasks, django_capture_on_commit_callbacks
):
    subscribe(push_service)
    when = timezone.localtime() + timedelta(days=1)
    data = {
        **FORM,
        "when": "later",
        "send_at": when.strftime("%Y-%m-%dT%H:%M"),
        "send_token": send_token_new(),
    }
    with django_capture_on_commit_callbacks(execute=True):
        first = admin_client_role.post(CREATE, data)
        second = admin_client_role.post(CREATE, data, follow=True)
    campaign = Campaign.objects.get()
    assert first.url == campaign.get_absolute_url()
    assert second.redirect_chain == [(campaign.get_absolute_url(), 302)]
    assert ALREADY in second.text
    assert len(deferred_tasks.results) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "short",
        "x" * 33,
        "x" * 31 + "!",
        "x" * 31 + "é",
        "<script>alert(1)</script>" + "x" * 7,
        "x" * 10_000,
        "\x00" * 32,
    ],
)
def test_a_post_without_a_valid_token_creates_nothing(
    admin_client_role, push_service, deferred_tasks, token
):
    subscribe(push_service)
    data = {**FORM} if token is None else {**FORM, "send_token": token}
    response = admin_client_role.post(CREATE, data)
    assert response.status_code == 400
    assert response.context["form"].errors["send_token"]
    assert not Campaign.objects.exists()
    assert deferred_tasks.results == []
    if token != "\x00" * 32:
        assert EXPIRED in response.text
        # The page shown again has a fresh token: sending it then is a deliberate choice.
        fresh = _token_on_page(response.text)
        assert SEND_TOKEN_RE.fullmatch(fresh) and fresh != token
        assert admin_client_role.post(CREATE, {**FORM, "send_token": fresh}).status_code == 302
        assert Campaign.objects.count() == 1


@pytest.mark.django_db
def test_the_same_message_from_a_reloaded_form_asks_before_going_again(
    admin_client_role, push_service, deferred_tasks
):
    # QA: Back reloaded the form from the server (a new token) and the browser refilled the
    # fields: Send made a second campaign. The same message to the same audience within the
    # hour now asks first; "Send it again" sends it.
    subscribe(push_service)
    tokens = [
        _token_on_page(admin_client_role.get(CREATE, {"tab": "leads", "audience": "all"}).text)
        for _ in range(2)
    ]
    first = admin_client_role.post(CREATE, {**FORM, "send_token": tokens[0]})
    assert first.status_code == 302
    campaign = Campaign.objects.get()
    again = admin_client_role.post(CREATE, {**FORM, "send_token": tokens[1]})
    assert again.status_code == 400
    assert "This message already went to this audience at" in again.text
    assert f'href="{campaign.get_absolute_url()}"' in again.text
    assert 'name="send_again"' in again.text
    assert Campaign.objects.count() == 1
    # Another message, or another audience, is no twin.
    other = {**FORM, "title": "Another title", "send_token": send_token_new()}
    assert admin_client_role.post(CREATE, other).status_code == 302
    confirmed = {**FORM, "send_token": tokens[1], "send_again": "on"}
    assert admin_client_role.post(CREATE, confirmed).status_code == 302
    assert Campaign.objects.count() == 3


@pytest.mark.django_db
def test_a_test_send_keeps_the_pages_token(admin_client_role, push_service, deferred_tasks):
    customer = subscribe(push_service).customer
    token = send_token_new()
    data = {**FORM, "send_token": token, "test_customer": customer.pk}
    response = admin_client_role.post(TEST, data)
    assert response.status_code == 200
    assert _token_on_page(response.text) == token
    assert not Campaign.objects.exists()
    # A test send from a page without a token still works, and the page gets one.
    response = admin_client_role.post(TEST, {**FORM, "test_customer": customer.pk})
    assert response.status_code == 200
    assert SEND_TOKEN_RE.fullmatch(_token_on_page(response.text))


@pytest.mark.django_db
def test_the_service_refuses_a_used_token_but_not_an_empty_one(push_service):
    subscribe(push_service)
    actor = UserFactory(role="Admin")
    fields = {
        "actor": actor,
        "audience": Audience(tab="leads", kind="all"),
        "message": Message(title="Hi", body="There", link=""),
        "send_at": None,
        "public_base_url": "http://testserver/",
    }
    token = send_token_new()
    first = campaign_create(**fields, send_token=token)
    with pytest.raises(CampaignAlreadyCreated) as raised:
        campaign_create(**fields, send_token=token)
    assert raised.value.campaign == first
    # Campaigns created without a token (before it existed, or by scripts) stay valid.
    campaign_create(**fields)
    campaign_create(**fields)
    assert Campaign.objects.count() == 3


@pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="needs PostgreSQL: SQLite serializes every write transaction, so nothing races",
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_identical_posts_at_the_same_moment_create_one_campaign(push_service, deferred_tasks):
    subscribe(push_service)
    user = UserFactory(role="Admin")
    data = {**FORM, "send_token": send_token_new()}
    posts = 8
    barrier = threading.Barrier(posts)

    def post():
        # Each thread has its own tasks backend (task_backends is thread-local): count there.
        from django.tasks import default_task_backend

        client = Client()
        client.force_login(user)
        try:
            barrier.wait(timeout=60)
            response = client.post(CREATE, data)
            return response, len(default_task_backend.results)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=posts) as pool:
        done = [f.result(timeout=120) for f in [pool.submit(post) for _ in range(posts)]]
    campaign = Campaign.objects.get()
    responses = [response for response, _queued in done]
    assert {(r.status_code, r.url) for r in responses} == {(302, campaign.get_absolute_url())}
    assert sum(queued for _response, queued in done) == 1
