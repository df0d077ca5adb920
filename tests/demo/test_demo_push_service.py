"""The demo push service `make run` starts (demo/push_service.py): a demo shop's
campaign goes through the real delivery code to it, with the keys seed_demo gave the subscriptions,
and comes back delivered, or expired for the fixed 3% of endpoints it answers 410 Gone."""

import pytest
from django.core.management import CommandError, call_command

from clients.models import Customer
from clients.selectors import TABS
from demo.push_service import DemoPushService, demo_endpoint_gone
from notifications.models import Delivery, DeliveryStatus, PushSubscription, SubscriptionStatus
from notifications.services import Audience, subscription_save
from tests.notifications.fixtures_push import send_campaign, vapid_settings  # noqa: F401
from tests.push_service import PushService

# seed_demo commits from a second connection on PostgreSQL, so the test needs real transactions
# (as tests/demo/test_seed_demo.py; serialized_rollback restores the migrations' rows).
pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("vapid_settings"),
]


@pytest.fixture
def demo_service(settings):
    lines = []
    with DemoPushService(report=lines.append) as service:
        settings.PUSH_DEMO_SERVICE_PORT = int(service.origin.rpartition(":")[2])
        service.lines = lines
        yield service


def _endpoint_id(subscription):
    return subscription.endpoint.rpartition("/")[2]


def test_a_demo_shop_campaign_is_delivered_and_the_gone_endpoints_expire(
    demo_service, django_capture_on_commit_callbacks
):
    call_command("seed_demo", "--customers", "1000", verbosity=0)
    active = PushSubscription.objects.filter(status=SubscriptionStatus.ACTIVE)
    assert all(s.endpoint.startswith(demo_service.origin + "/push/demo-") for s in active)
    # A few customers of one tab: one whose device the service answers 410, four others.
    gone = next(s for s in active.order_by("pk") if demo_endpoint_gone(_endpoint_id(s)))
    tab = next(name for name, q in TABS.items() if Customer.objects.filter(q, pk=gone.customer_id))
    others = [
        customer.pk
        for customer in Customer.objects.filter(TABS[tab], push_opt_in=True).order_by("pk")
        if not any(demo_endpoint_gone(_endpoint_id(s)) for s in customer.push_subscriptions.all())
        and customer.push_subscriptions.filter(status=SubscriptionStatus.ACTIVE).count() == 1
    ][:4]
    assert len(others) == 4
    # One more device of the same kind of customer, on the demo service but with keys it does
    # not hold: a real push service cannot read bodies either, so it is still delivered.
    stranger = subscription_save(
        customer=Customer.objects.get(pk=others[0]),
        endpoint=f"{demo_service.origin}/push/not-a-demo-device",
        **_browser_keys(),
    )

    campaign = send_campaign(
        django_capture_on_commit_callbacks,
        audience=Audience(tab=tab, kind="selected", ids=(gone.customer_id, *others)),
        title="Demo sale",
    )

    devices = PushSubscription.objects.filter(customer__in=(gone.customer_id, *others))
    devices = devices.filter(status__in=(SubscriptionStatus.ACTIVE, SubscriptionStatus.EXPIRED))
    expected_gone = {s.pk for s in devices if demo_endpoint_gone(_endpoint_id(s))}
    assert gone.pk in expected_gone
    outcomes = dict(
        Delivery.objects.filter(campaign=campaign).values_list("subscription", "status")
    )
    assert set(outcomes) == {s.pk for s in devices}
    assert {pk for pk, status in outcomes.items() if status == DeliveryStatus.EXPIRED} == (
        expected_gone
    )
    assert {pk for pk, status in outcomes.items() if status == DeliveryStatus.SENT} == (
        {s.pk for s in devices} - expected_gone
    )
    assert (campaign.delivered, campaign.expired, campaign.failed) == (
        len(devices) - len(expected_gone),
        len(expected_gone),
        0,
    )
    gone.refresh_from_db()
    assert gone.status == SubscriptionStatus.EXPIRED
    # The campaign page's errors say what a real push service says, not a test's wording.
    errors = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.EXPIRED)
    assert all("unsubscribed or expired" in e for e in errors.values_list("error", flat=True))
    # The service decrypted every demo device's message with the demo keys, and said so.
    decrypted = [line for line in demo_service.lines if "title='Demo sale'" in line]
    assert len(decrypted) == len(devices) - len(expected_gone) - 1
    assert sum(line.startswith("410 ") for line in demo_service.lines) == len(expected_gone)
    assert any(
        "cannot decrypt" in line and stranger.endpoint in line for line in demo_service.lines
    )
    assert {m.json()["title"] for m in demo_service.received if m.payload} == {"Demo sale"}


def _browser_keys():
    with PushService() as other:
        keys = other.new_subscription()["keys"]
    return {"p256dh": keys["p256dh"], "auth": keys["auth"]}


def test_the_demo_push_service_command_refuses_to_run_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="only runs with DEBUG"):
        call_command("run_demo_push_service", "--port", "0")
