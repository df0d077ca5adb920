"""Subscriptions keep Customer.push_opt_in exact; campaigns freeze their audience at start."""

import concurrent.futures
import io
import threading

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from clients.models import AuditEntry, Customer
from notifications.models import CampaignStatus, Delivery, PushSubscription, SubscriptionStatus
from notifications.services import (
    Audience,
    Message,
    campaign_create,
    campaign_start,
    subscription_remove,
    subscription_save,
    subscriptions_expire,
)
from tests.factories import CustomerFactory, UserFactory
from tests.notifications.fixtures_push import (  # noqa: F401
    new_campaign,
    send_campaign,
    subscribe,
    vapid_settings,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vapid_settings")]


def _opt_in(customer) -> bool:
    return Customer.objects.values_list("push_opt_in", flat=True).get(pk=customer.pk)


def test_opt_in_follows_the_active_subscriptions(push_service):
    phone = subscribe(push_service)
    customer = phone.customer
    laptop = subscribe(push_service, customer=customer)
    assert _opt_in(customer) is True
    subscription_remove(endpoint=phone.endpoint)
    assert _opt_in(customer) is True
    subscriptions_expire(subscription_ids=[laptop.pk])
    assert _opt_in(customer) is False
    laptop.refresh_from_db()
    assert laptop.status == SubscriptionStatus.EXPIRED
    # The browser subscribes again: active again.
    subscription_save(
        customer=customer, endpoint=laptop.endpoint, p256dh=laptop.p256dh, auth=laptop.auth
    )
    assert _opt_in(customer) is True


def test_a_browser_moving_to_another_customer_moves_the_opt_in(push_service):
    subscription = subscribe(push_service)
    first = subscription.customer
    second = CustomerFactory()
    subscription_save(
        customer=second,
        endpoint=subscription.endpoint,
        p256dh=subscription.p256dh,
        auth=subscription.auth,
    )
    assert (_opt_in(first), _opt_in(second)) == (False, True)


def test_rebuild_reports_and_fixes_drift(push_service, django_capture_on_commit_callbacks):
    subscription = subscribe(push_service)
    campaign = send_campaign(django_capture_on_commit_callbacks)
    out = io.StringIO()
    call_command("rebuild_push_stats", "--check", stdout=out)
    assert "0 had drifted" in out.getvalue()
    # Someone wrote around the services.
    Customer.objects.filter(pk=subscription.customer_id).update(push_opt_in=False)
    lonely = CustomerFactory()
    Customer.objects.filter(pk=lonely.pk).update(push_opt_in=True)
    type(campaign).objects.filter(pk=campaign.pk).update(delivered=7, clicks=3)
    with pytest.raises(SystemExit):
        call_command("rebuild_push_stats", "--check", stdout=io.StringIO())
    assert _opt_in(lonely) is True  # --check changes nothing
    out = io.StringIO()
    call_command("rebuild_push_stats", stdout=out)
    assert "2 had drifted and were fixed; 1 campaigns checked, 1 had drifted" in out.getvalue()
    assert (_opt_in(subscription.customer), _opt_in(lonely)) == (True, False)
    campaign.refresh_from_db()
    assert (campaign.delivered, campaign.clicks) == (1, 0)


def test_the_audience_is_resolved_again_when_the_campaign_starts(push_service, settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    staying = subscribe(push_service)
    leaving = subscribe(push_service)
    campaign = campaign_create(
        actor=UserFactory(role="Admin"),
        audience=Audience(
            tab="leads", kind="selected", ids=(staying.customer_id, leaving.customer_id)
        ),
        message=Message(title="t", body="b", link="https://shop.example"),
        send_at=None,
        public_base_url="https://backoffice.example",
    )
    subscription_remove(endpoint=leaving.endpoint)  # before the worker picks it up
    late = subscribe(push_service, customer=staying.customer)  # a new device meanwhile
    assert campaign_start(campaign_id=campaign.pk) == [0]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING
    assert (campaign.customers_count, campaign.recipients) == (1, 2)
    assert set(Delivery.objects.values_list("subscription_id", flat=True)) == {staying.pk, late.pk}
    assert campaign_start(campaign_id=campaign.pk) == []  # a second start does nothing
    assert Delivery.objects.count() == 2


def test_an_audience_that_became_invalid_fails_the_campaign(push_service, settings):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    subscribe(push_service)
    campaign = new_campaign(title="t", body="b", link="https://shop.example")
    type(campaign).objects.filter(pk=campaign.pk).update(audience_tab="nope")
    assert campaign_start(campaign_id=campaign.pk) == []
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.FAILED and campaign.error


def test_an_invalid_audience_stores_nothing():
    with pytest.raises(ValueError):
        campaign_create(
            actor=None,
            audience=Audience(tab="leads", kind="selected", ids=()),
            message=Message(title="t", body="b", link="https://shop.example"),
            send_at=None,
            public_base_url="https://backoffice.example",
        )
    from notifications.models import Campaign

    assert not Campaign.objects.exists()


def test_subscribing_beyond_the_limit_replaces_the_oldest(push_service, settings):
    settings.PUSH_MAX_SUBSCRIPTIONS_PER_CUSTOMER = 3
    customer = CustomerFactory()
    first, second, third = (subscribe(push_service, customer=customer) for _ in range(3))
    fourth = subscribe(push_service, customer=customer)

    statuses = dict(PushSubscription.objects.values_list("pk", "status"))
    assert statuses == {
        first.pk: SubscriptionStatus.UNSUBSCRIBED,
        second.pk: SubscriptionStatus.ACTIVE,
        third.pk: SubscriptionStatus.ACTIVE,
        fourth.pk: SubscriptionStatus.ACTIVE,
    }
    [entry] = AuditEntry.objects.filter(action="push_subscription_replaced")
    assert entry.customer_id == customer.pk
    assert entry.changes["subscription"] == [first.pk, fourth.pk]
    assert _opt_in(customer) is True

    # Another customer's subscriptions do not count; re-saving an active one replaces nothing.
    subscribe(push_service)
    subscription_save(
        customer=customer, endpoint=second.endpoint, p256dh=second.p256dh, auth=second.auth
    )
    assert PushSubscription.objects.filter(customer=customer, status="active").count() == 3
    assert AuditEntry.objects.filter(action="push_subscription_replaced").count() == 1

    # Reactivating the oldest (replaced) one makes it the one kept: the oldest other goes.
    subscription_save(
        customer=customer, endpoint=first.endpoint, p256dh=first.p256dh, auth=first.auth
    )
    active = set(
        PushSubscription.objects.filter(customer=customer, status="active").values_list(
            "pk", flat=True
        )
    )
    assert active == {first.pk, third.pk, fourth.pk}
    out = io.StringIO()
    call_command("rebuild_push_stats", "--check", stdout=out)


def test_one_token_cannot_create_thousands_of_recipients(push_service, settings):
    """The default limit: 20 active subscriptions per customer, whatever the storefront sends."""
    customer = CustomerFactory()
    for _ in range(25):
        subscribe(push_service, customer=customer)
    assert PushSubscription.objects.filter(customer=customer, status="active").count() == 20
    campaign = new_campaign()
    campaign_start(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    assert campaign.recipients == Delivery.objects.filter(campaign=campaign).count() == 20


@pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="needs PostgreSQL: concurrent transactions",
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_subscribes_never_exceed_the_limit(push_service, settings):
    """Browsers of one customer subscribing at the same time: the customer's row is locked
    first, so the limit holds exactly and the opt-in stays exact."""
    settings.PUSH_MAX_SUBSCRIPTIONS_PER_CUSTOMER = 5
    customer = CustomerFactory()
    infos = [push_service.new_subscription() for _ in range(24)]
    start = threading.Barrier(4)

    def subscribe_some(chunk):
        start.wait()
        try:
            for info in chunk:
                subscription_save(
                    customer=customer,
                    endpoint=info["endpoint"],
                    p256dh=info["keys"]["p256dh"],
                    auth=info["keys"]["auth"],
                )
        finally:
            connection.close()

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(subscribe_some, [infos[i::4] for i in range(4)]))

    active = PushSubscription.objects.filter(customer=customer, status="active")
    assert active.count() == 5
    assert PushSubscription.objects.filter(customer=customer).count() == 24
    assert AuditEntry.objects.filter(action="push_subscription_replaced").count() == 19
    assert _opt_in(customer) is True
