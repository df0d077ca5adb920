"""An admin sends a push campaign from the Clients tab, through a real local push service."""

import re

import pytest
from playwright.sync_api import expect

from notifications.services import subscription_save
from tests.browser.shop import build_shop
from tests.notifications.conftest import make_vapid_keys
from tests.push_service import PushService


@pytest.fixture
def push_service(settings):
    keys = make_vapid_keys()
    # The live server runs in this process: it sends with these settings.
    settings.VAPID_PRIVATE_KEY = keys.private_key
    settings.VAPID_PUBLIC_KEY = keys.public_key
    settings.VAPID_SUBJECT = "mailto:shop@example.com"
    with PushService(vapid_public_key=keys.public_key) as service:
        yield service


def subscribe(service, customer):
    info = service.new_subscription()
    return subscription_save(
        customer=customer,
        endpoint=info["endpoint"],
        p256dh=info["keys"]["p256dh"],
        auth=info["keys"]["auth"],
    )


def test_admin_sends_a_push_to_selected_clients_and_reads_the_results(page_as, push_service):
    shop = build_shop(clients=6, leads=1)
    accepting = [shop.star, *shop.clients[:2]]
    subscriptions = {c.pk: subscribe(push_service, c) for c in accepting}
    second_device = subscribe(push_service, shop.star)

    page = page_as("Admin")
    rows = page.locator("table.data tbody tr")
    expect(rows).to_have_count(7)
    # Only customers who accept notifications can be ticked.
    checkboxes = page.locator("input.row-select")
    expect(checkboxes).to_have_count(3)
    send_selected = page.get_by_role("button", name=re.compile("the selected"))
    expect(send_selected).to_be_disabled()
    page.get_by_label(f"Select client {shop.star.pk}").check()
    page.get_by_label(f"Select client {accepting[1].pk}").check()
    expect(send_selected).to_be_enabled()
    expect(send_selected).to_contain_text("(2)")
    send_selected.click()

    # The compose page counts customers and their devices.
    expect(page.get_by_role("heading", level=1)).to_have_text("Send a push")
    expect(page.locator(".push-audience")).to_contain_text("2 customers on 3 devices")
    page.get_by_label("Title").fill("Winter sale")
    page.get_by_label("Message").fill("20% off everything until Sunday")
    page.get_by_label("Link opened on click").fill("https://shop.example/sale")
    expect(page.locator(".push-preview [data-preview-title]")).to_have_text("Winter sale")
    page.get_by_role("button", name="Send to 3 devices").click()

    # The campaign page: the progress bar reaches the end, then the results.
    expect(page.get_by_role("heading", level=1)).to_have_text("Winter sale")
    progress = page.locator("progress.push-progress")
    expect(progress).to_have_attribute("value", "100", timeout=30_000)
    expect(page.locator("#campaign-progress .badge")).to_have_text("Sent")
    stats = page.locator(".push-stats")
    expect(stats.locator("div").filter(has_text="Devices")).to_contain_text("3")
    expect(stats.locator("div").filter(has_text="Delivered")).to_contain_text("3")
    expect(stats.locator("div").filter(has=page.locator("dt", has_text="Failed"))).to_contain_text(
        "0"
    )

    # What the push service received, decrypted as a browser would.
    reached = [s.endpoint for s in (subscriptions[shop.star.pk], second_device)]
    reached.append(subscriptions[accepting[1].pk].endpoint)
    for endpoint in reached:
        [message] = push_service.messages_for(endpoint)
        assert message.json()["title"] == "Winter sale"
        assert message.json()["body"] == "20% off everything until Sunday"
    assert push_service.messages_for(subscriptions[accepting[2].pk].endpoint) == []
    assert page.js_errors == []
