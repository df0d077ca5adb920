"""What a new user tripped over (issue 17), in Chromium, in both languages and at both sizes:
no sideways scrolling on a phone, the campaign page following the live progress (Cancel and
the "being sent" message gone once sent, without a reload), cancelling while sending, the test
push, htmx polls that lost their session, the 404 page with DEBUG on, links in text."""

import re

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse
from playwright.sync_api import Page, expect

from notifications.delivery import batch_send
from notifications.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from notifications.services import Audience, Message, campaign_create, campaign_start
from tests.browser.conftest import DESKTOP, MOBILE
from tests.browser.shop import build_shop
from tests.browser.test_push import push_service, subscribe  # noqa: F401
from tests.factories import CustomerFactory, UserFactory

LANGS = ["en", "fr"]
VIEWPORTS = {"desktop": DESKTOP, "mobile": MOBILE}
TEXT = {
    "en": {
        "logout": "Log out",
        "cancel": "Cancel this campaign",
        "sent": "Sent",
        "sending_message": "The campaign is being sent.",
        "send_test": "Send the test",
        "test_sent": "Test sent to",
        "not_found": "This page does not exist.",
        "cancelled": "what had not been sent will not be sent",
    },
    "fr": {
        "logout": "Se déconnecter",
        "cancel": "Annuler cette campagne",
        "sent": "Envoyée",
        "sending_message": "La campagne est en cours d’envoi.",
        "send_test": "Envoyer le test",
        "test_sent": "Test envoyé à",
        "not_found": "Cette page n’existe pas.",
        "cancelled": "ce qui n’avait pas été envoyé ne le sera pas",
    },
}


def assert_no_sideways_scroll(page: Page, where: str) -> None:
    widths = page.evaluate(
        """() => ({
            page: document.documentElement.scrollWidth,
            view: window.innerWidth,
            tables: [...document.querySelectorAll('#orders .table-wrap, #history .table-wrap')]
                .map(w => w.scrollWidth - w.clientWidth),
        })"""
    )
    assert widths["page"] <= widths["view"], (where, widths)
    assert all(extra <= 1 for extra in widths["tables"]), (where, widths)


@pytest.mark.parametrize("size", VIEWPORTS)
@pytest.mark.parametrize("lang", LANGS)
def test_no_page_scrolls_sideways(page_as, lang, size):
    shop = build_shop(clients=12, leads=3)
    admin = UserFactory(role="Admin")
    note_author = UserFactory(role="Staff")
    from clients.services import note_save

    note_save(customer=shop.star, actor=note_author, text="x" * 300, based_on=None)
    campaign = campaign_create(
        actor=admin,
        audience=Audience(tab="clients", kind="all"),
        message=Message(title="Winter sale", body="20% off", link="https://shop.example/s"),
        send_at=None,
        public_base_url="http://localhost",
    )
    page = page_as("Admin", lang=lang, viewport=VIEWPORTS[size])
    pages = [
        "/clients/",
        "/clients/leads/",
        shop.star.get_absolute_url(),
        shop.star_order.get_absolute_url(),
        reverse("notifications:campaign-list"),
        reverse("notifications:campaign-create") + "?tab=clients&audience=all",
        Campaign.objects.get(pk=campaign.pk).get_absolute_url(),
    ]
    for url in pages:
        page.goto(url)
        assert_no_sideways_scroll(page, url)
        # The whole "Log out" button is on screen (the French header cut it).
        logout = page.get_by_role("button", name=TEXT[lang]["logout"])
        box = logout.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORTS[size]["width"], url
    assert page.js_errors == []


@pytest.fixture
def sending_setup(settings, push_service):  # noqa: F811
    """Leads on the push service, and a task backend that runs nothing by itself: the test
    plays the worker, so the page can be watched while the campaign is sending."""
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    for _ in range(3):
        subscribe(push_service, CustomerFactory())
    return push_service


def _compose_and_send(page: Page, lang: str) -> Campaign:
    page.goto(reverse("notifications:campaign-create") + "?tab=leads&audience=all")
    page.locator("#id_title").fill("Soldes" if lang == "fr" else "Sale")
    page.locator("#id_body").fill("-20 %")
    page.locator(".form-actions button[type=submit]").click()
    page.wait_for_url(re.compile(r"/push/\d+/$"))
    return Campaign.objects.get()


@pytest.mark.parametrize("size", VIEWPORTS)
@pytest.mark.parametrize("lang", LANGS)
def test_cancel_and_the_sending_message_go_once_sent_without_a_reload(
    page_as, sending_setup, lang, size
):
    page = page_as("Admin", lang=lang, viewport=VIEWPORTS[size])
    campaign = _compose_and_send(page, lang)
    text = TEXT[lang]
    expect(page.locator("#campaign-sending-message")).to_have_text(text["sending_message"])
    expect(page.get_by_role("button", name=text["cancel"])).to_be_visible()
    page.evaluate("window.notReloaded = true")
    # The worker starts the campaign and sends it.
    [batch] = campaign_start(campaign_id=campaign.pk)
    batch_send(campaign_id=campaign.pk, batch=batch)
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT
    expect(page.locator("#campaign-progress .badge")).to_have_text(text["sent"], timeout=15_000)
    expect(page.get_by_role("button", name=text["cancel"])).to_have_count(0)
    expect(page.locator("#campaign-sending-message")).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True
    assert_no_sideways_scroll(page, "campaign")
    assert page.js_errors == []


@pytest.mark.parametrize("lang", LANGS)
def test_a_sending_campaign_is_cancelled_and_the_rest_is_not_sent(page_as, sending_setup, lang):
    page = page_as("Admin", lang=lang, viewport=MOBILE if lang == "fr" else DESKTOP)
    campaign = _compose_and_send(page, lang)
    campaign_start(campaign_id=campaign.pk)
    page.get_by_role("button", name=TEXT[lang]["cancel"]).click()
    expect(page.locator(".messages")).to_contain_text(TEXT[lang]["cancelled"])
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.CANCELLED
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.FAILED}
    assert sending_setup.received == []


@pytest.mark.parametrize("size", VIEWPORTS)
@pytest.mark.parametrize("lang", LANGS)
def test_send_a_test_to_a_customer(page_as, push_service, lang, size):  # noqa: F811
    customer = CustomerFactory()
    subscribe(push_service, customer)
    page = page_as("Admin", lang=lang, viewport=VIEWPORTS[size])
    page.goto(reverse("notifications:campaign-create") + "?tab=leads&audience=all")
    page.locator("#id_title").fill("Test")
    page.locator("#id_body").fill("Hello")
    page.locator("#id_test_customer").fill(str(customer.pk))
    page.get_by_role("button", name=TEXT[lang]["send_test"]).click()
    expect(page.locator(".messages")).to_contain_text(TEXT[lang]["test_sent"])
    # The form is kept as typed, ready to send the campaign.
    expect(page.locator("#id_title")).to_have_value("Test")
    assert len(push_service.received) == 1
    assert not Campaign.objects.exists()
    assert_no_sideways_scroll(page, "compose")


@pytest.mark.parametrize("lang", LANGS)
def test_a_poll_that_lost_its_session_goes_to_the_login_page(page_as, sending_setup, lang):
    page = page_as("Admin", lang=lang)
    campaign = _compose_and_send(page, lang)
    Session.objects.all().delete()
    page.wait_for_url(re.compile(r"/login/\?next=/push/\d+/"), timeout=15_000)
    # The login page as a page, not swapped into the progress card.
    expect(page.locator("#campaign-progress")).to_have_count(0)
    expect(page.locator("#id_username")).to_be_visible()
    assert campaign.pk


@pytest.mark.parametrize("lang", LANGS)
def test_the_apps_404_page_with_debug_on(page_as, settings, lang):
    settings.DEBUG = True
    page = page_as("Viewer", lang=lang, viewport=MOBILE)
    response = page.goto("/no-such-page/")
    assert response.status == 404
    expect(page.locator("main")).to_contain_text(TEXT[lang]["not_found"])
    assert "URLconf" not in page.content()


@pytest.mark.parametrize("lang", LANGS)
def test_links_in_the_push_pages_text_are_underlined(page_as, lang):
    page = page_as("Admin", lang=lang)
    page.goto(reverse("notifications:campaign-list"))
    links = page.locator(".page-header p a")
    expect(links).to_have_count(2)
    for index in range(2):
        style = links.nth(index).evaluate("a => getComputedStyle(a).textDecorationLine")
        assert "underline" in style
