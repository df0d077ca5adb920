"""The retention sweep: exactly the customers without contact since the cutoff."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from clients.models import AuditAction, AuditOrigin, Customer
from clients.services import audit_record
from notifications.models import Campaign, Delivery, DeliveryStatus, PushSubscription
from orders.models import OrderStatus
from privacy import tasks
from privacy.models import AccessLogEntry
from privacy.services import (
    PrivacyError,
    retention_candidates,
    retention_cutoff,
    retention_preview,
    retention_sweep,
)
from storefront.models import Launch, Platform
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db

SECOND = timedelta(seconds=1)


def _launch(customer, at):
    Launch.objects.create(customer=customer, occurred_at=at, received_at=at, platform=Platform.WEB)


def _subscription(customer, at, endpoint):
    return PushSubscription.objects.create(
        customer=customer, endpoint=endpoint, p256dh="k", auth="a", created_at=at
    )


@pytest.fixture
def population():
    """Customers on both sides of every boundary; returns (cutoff, {name: (customer, swept)})."""
    now = timezone.now()
    cutoff = retention_cutoff(now=now)
    old = cutoff - timedelta(days=400)
    c = {}

    def make(name, swept, created=old):
        c[name] = (CustomerFactory(created_at=created), swept)
        return c[name][0]

    make("lead created just before", True, created=cutoff - SECOND)
    make("lead created at the cutoff", False, created=cutoff)
    make("lead created just after", False, created=cutoff + SECOND)
    _launch(make("lead launched just before", True), cutoff - SECOND)
    _launch(make("lead launched at the cutoff", False), cutoff)
    make_order(
        make("lead with a pending order after", False),
        status=OrderStatus.PENDING,
        placed_at=cutoff + SECOND,
    )
    make_order(
        make("lead with a cancelled order before", True),
        status=OrderStatus.CANCELLED,
        placed_at=cutoff - SECOND,
    )
    make_order(make("client who bought just before", True), placed_at=cutoff - SECOND)
    make_order(make("client who bought just after", False), placed_at=cutoff + SECOND)
    _subscription(make("lead subscribed after", False), cutoff + SECOND, "http://127.0.0.1:9/s1")
    clicker = make("lead who clicked after", False)
    subscription = _subscription(clicker, old, "http://127.0.0.1:9/s2")
    campaign = Campaign.objects.create(
        title="t",
        body="b",
        audience_tab="leads",
        audience_kind="all",
        public_base_url="http://testserver",
        created_at=old,
        send_at=old,
    )
    Delivery.objects.create(
        campaign=campaign,
        subscription=subscription,
        batch=0,
        status=DeliveryStatus.SENT,
        sent_at=cutoff + SECOND,
        clicked_at=cutoff + SECOND,
    )
    changed = make("lead who changed details from the shop after", False)
    audit_record(
        customer=changed,
        actor=None,
        action=AuditAction.CUSTOMER_UPDATE,
        changes={},
        origin=AuditOrigin.CUSTOMER,
    )
    staff_only = make("lead only staff touched after", True)
    audit_record(customer=staff_only, actor=None, action=AuditAction.NOTE_SAVE, changes={})
    return cutoff, c


def test_the_sweep_selects_exactly_the_customers_past_the_period(population):
    cutoff, customers = population
    selected = set(retention_candidates(cutoff=cutoff).values_list("pk", flat=True))
    expected = {customer.pk for customer, swept in customers.values() if swept}
    names = {customer.pk: name for name, (customer, _) in customers.items()}
    assert {names[pk] for pk in selected} == {names[pk] for pk in expected}
    preview = retention_preview(cutoff=cutoff)
    assert (preview["leads"], preview["clients"]) == (len(expected) - 1, 1)
    assert retention_sweep(cutoff=cutoff) == len(expected)
    erased = set(Customer.objects.exclude(erased_at=None).values_list("pk", flat=True))
    assert erased == expected
    # Already erased: a second sweep finds nobody.
    assert retention_preview(cutoff=cutoff)["leads"] == 0
    assert retention_sweep(cutoff=cutoff) == 0


def test_a_sweep_cannot_reach_inside_the_period():
    with pytest.raises(PrivacyError):
        retention_sweep(cutoff=retention_cutoff() + timedelta(days=1))


@override_settings(PRIVACY_RETENTION_DAYS=30)
def test_the_period_is_a_setting():
    kept = CustomerFactory(created_at=timezone.now() - timedelta(days=29))
    swept = CustomerFactory(created_at=timezone.now() - timedelta(days=31))
    assert list(retention_candidates(cutoff=retention_cutoff()).values_list("pk", flat=True)) == [
        swept.pk
    ]
    assert kept.pk != swept.pk


def test_admin_previews_and_confirms(
    population, admin_client_role, django_capture_on_commit_callbacks
):
    cutoff, _ = population
    page = admin_client_role.get(reverse("privacy:overview"))
    assert page.status_code == 200
    previewed = page.context["retention"]
    # The page's cutoff is a moment later than the fixture's: what it counts is what it erases.
    expected = set(retention_candidates(cutoff=previewed["cutoff"]).values_list("pk", flat=True))
    assert previewed["leads"] + previewed["clients"] == len(expected) >= 5
    assert f'data-testid="retention-leads">{previewed["leads"]}<' in page.content.decode()
    assert 'name="confirm"' in page.content.decode()
    confirmed = {
        "cutoff": previewed["cutoff"].isoformat(),
        "leads": previewed["leads"],
        "clients": previewed["clients"],
        "confirm": "on",
    }
    for bad in (
        {},
        {**confirmed, "cutoff": "yesterday"},
        {**confirmed, "cutoff": timezone.now().isoformat()},
        {**confirmed, "cutoff": (cutoff - timedelta(days=3)).isoformat()},
    ):
        assert admin_client_role.post(reverse("privacy:overview"), bad).status_code == 400
    assert not Customer.objects.exclude(erased_at=None).exists()
    with django_capture_on_commit_callbacks(execute=True):
        done = admin_client_role.post(reverse("privacy:overview"), confirmed)
    assert done.status_code == 302
    assert set(Customer.objects.exclude(erased_at=None).values_list("pk", flat=True)) == expected
    assert AccessLogEntry.objects.filter(action="retention_sweep").get().detail == {
        "leads": previewed["leads"],
        "clients": previewed["clients"],
    }


def _confirmation(admin_client):
    """What the overview's form posts once the Admin ticks the box."""
    previewed = admin_client.get(reverse("privacy:overview")).context["retention"]
    return {
        "cutoff": previewed["cutoff"].isoformat(),
        "leads": previewed["leads"],
        "clients": previewed["clients"],
        "confirm": "on",
    }


@pytest.mark.parametrize("confirm", [None, "", "false", "0", "no", "off"])
def test_the_sweep_erases_nobody_without_the_confirmation(
    population, admin_client_role, django_capture_on_commit_callbacks, confirm
):
    posted = _confirmation(admin_client_role)
    if confirm is None:
        del posted["confirm"]
    else:
        posted["confirm"] = confirm
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client_role.post(reverse("privacy:overview"), posted)
    assert response.status_code == 400
    assert response.context["form"].errors["confirm"] == [
        "Tick the box to confirm: the erasure cannot be undone."
    ]
    page = response.content.decode()
    assert "Tick the box to confirm" in page
    assert f"(leads: {posted['leads']}, inactive clients: {posted['clients']})" in page
    assert not callbacks
    assert not Customer.objects.exclude(erased_at=None).exists()
    assert not AccessLogEntry.objects.filter(action="retention_sweep").exists()


@pytest.mark.parametrize("field", ["leads", "clients"])
def test_the_sweep_erases_nobody_when_the_confirmed_counts_are_not_the_real_ones(
    population, admin_client_role, django_capture_on_commit_callbacks, field
):
    for forged in (1, 1000, -1, "many"):
        posted = _confirmation(admin_client_role)
        posted[field] = posted[field] + forged if isinstance(forged, int) else forged
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = admin_client_role.post(reverse("privacy:overview"), posted)
        assert response.status_code == 400
        assert not callbacks
    assert not Customer.objects.exclude(erased_at=None).exists()


def test_with_nobody_to_erase_there_is_no_button_and_the_post_says_so(
    admin_client_role, django_capture_on_commit_callbacks
):
    page = admin_client_role.get(reverse("privacy:overview"))
    assert (page.context["retention"]["leads"], page.context["retention"]["clients"]) == (0, 0)
    assert "Erase them now" not in page.content.decode()
    posted = {**_confirmation(admin_client_role), "leads": 0, "clients": 0}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client_role.post(reverse("privacy:overview"), posted)
    assert response.status_code == 400
    assert "there is nothing to erase" in response.content.decode()
    assert not callbacks
    assert not AccessLogEntry.objects.filter(action="retention_sweep").exists()


def test_the_daily_run_sweeps_only_when_the_shop_turned_it_on(population):
    _, customers = population
    # A moment later than the fixture, those exactly at its cutoff are past the period too.
    expected = {c.pk for name, (c, swept) in customers.items() if swept or "at the cutoff" in name}
    assert tasks.daily_run()["retention"] == 0
    assert not Customer.objects.exclude(erased_at=None).exists()
    with override_settings(PRIVACY_RETENTION_AUTO=True):
        assert tasks.daily_run()["retention"] == len(expected)
    assert set(Customer.objects.exclude(erased_at=None).values_list("pk", flat=True)) == expected


def test_the_daily_run_carries_out_due_erasures_and_prunes():
    from privacy.services import erasure_request

    customer = CustomerFactory()
    request = erasure_request(customer=customer, actor=None, reason="Asked by email")
    ErasureRequestModel = type(request)
    ErasureRequestModel.objects.filter(pk=request.pk).update(due_at=timezone.now() - SECOND)
    AccessLogEntry.objects.create(at=timezone.now() - timedelta(days=400), action="client_view")
    result = tasks.privacy_daily.enqueue().return_value
    assert result["erased"] == 1 and result["access_log_pruned"] == 1
    assert Customer.objects.get(pk=customer.pk).erased_at is not None
