"""The main pages in both languages: axe-core finds no serious or critical accessibility
violation, and each page is saved as a screenshot at desktop and mobile widths.

Screenshots go to test-results/screenshots/ (ignored by git), or to $SCREENSHOT_DIR:
`SCREENSHOT_DIR=docs/screenshots make test` refreshes the ones the README shows.
"""

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect

from clients.models import Customer
from notifications.models import Campaign, CampaignStatus
from notifications.services import Audience, Message, campaign_create
from segments.services import segment_create
from tags.models import Tag
from tags.services import customer_set_tags, tag_job_create, tag_job_run
from tests.browser.conftest import DESKTOP, MOBILE, log_in
from tests.browser.shop import build_shop
from tests.factories import UserFactory, make_click, make_order

AXE = Path(settings.BASE_DIR) / "static" / "vendor" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(
    os.environ.get("SCREENSHOT_DIR") or Path(settings.BASE_DIR) / "test-results" / "screenshots"
)
BLOCKING = {"serious", "critical"}


def axe_violations(page: Page) -> list[dict]:
    """Run axe-core on the page as it is now (WCAG 2.1 A and AA, and best practices)."""
    # Evaluated through the DevTools protocol: the page's CSP does not apply to it, so the
    # pages are checked with their real policy in force.
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        """() => axe.run(document, {
            runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                            "best-practice"]},
            resultTypes: ["violations"],
        })"""
    )
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"][:5]],
        }
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]


def check_and_capture(page: Page, name: str, lang: str) -> list[dict]:
    """axe on the page at desktop width, then screenshots at both widths."""
    expect(page.locator("html")).to_have_attribute("lang", lang)
    violations = axe_violations(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, viewport in (("desktop", DESKTOP), ("mobile", MOBILE)):
        page.set_viewport_size(viewport)
        page.screenshot(path=SCREENSHOTS / f"{name}-{lang}-{width}.png", full_page=True)
    page.set_viewport_size(DESKTOP)
    return [{"page": name, **v} for v in violations]


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_main_pages_have_no_serious_accessibility_violation(new_page, lang):
    shop = build_shop(clients=30, leads=6)
    admin = UserFactory(role="Admin")
    campaign = campaign_create(
        actor=admin,
        audience=Audience(tab="clients", kind="all"),
        message=Message(
            title="Soldes d’hiver" if lang == "fr" else "Winter sale",
            body="-20 % sur tout" if lang == "fr" else "20% off everything",
            link="https://shop.example/sale",
        ),
        send_at=None,
        public_base_url="http://localhost",
    )
    # The star clicked it and ordered: the campaign page shows what it earned.
    sent = timezone.now() - timedelta(hours=3)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.SENT,
        send_at=sent,
        started_at=sent,
        finished_at=sent,
        customers_count=1,
        recipients=1,
        delivered=1,
        clicks=1,
    )
    make_click(shop.star, campaign, at=timezone.now() - timedelta(hours=2))
    make_order(shop.star, total="89.90", placed_at=timezone.now() - timedelta(hours=1))
    found = []
    page = new_page(lang=lang)
    page.goto("/login/")
    found += check_and_capture(page, "login", lang)
    log_in(page, admin.username)
    pages = [
        ("clients", "/clients/"),
        ("leads", "/clients/leads/"),
        ("client", shop.star.get_absolute_url()),
        ("order", shop.star_order.get_absolute_url()),
        ("push-compose", reverse("notifications:campaign-create") + "?tab=clients&audience=all"),
        ("campaign", Campaign.objects.get(pk=campaign.pk).get_absolute_url()),
        ("push-history", reverse("notifications:campaign-list")),
        ("api-keys", reverse("storefront:apikey-list")),
        ("lifecycle", reverse("lifecycle:dashboard")),
        ("overdue", reverse("lifecycle:overdue")),
    ]
    # Tags, a saved segment and a bulk tag job (issue 14).
    for customer in Customer.objects.filter(orders_count__gt=0).order_by("pk")[:8]:
        customer_set_tags(customer=customer, actor=admin, names=["VIP", "Newsletter"])
    vip = Tag.objects.get(name="VIP")
    segment = segment_create(
        actor=admin,
        name="VIP fidèles" if lang == "fr" else "Loyal VIPs",
        tab="clients",
        query=f"tags_any={vip.pk}&recent_orders_min=2&recent_orders_days=365",
    )
    job = tag_job_create(
        actor=admin, action="add", names=["Summer"], tab="clients", ids=[], query=segment.query
    )
    tag_job_run(job_id=job.pk)
    pages += [
        ("tags", reverse("tags:tag-list")),
        ("segment", segment.get_absolute_url()),
        ("tag-job", job.get_absolute_url()),
    ]
    for name, url in pages:
        page.goto(url)
        found += check_and_capture(page, name, lang)
    # The segment's list with the bulk tagging form open.
    page.goto(segment.get_absolute_url())
    page.locator("details.bulk-tags summary").click()
    found += check_and_capture(page, "bulk-tags", lang)
    # The client page with an editor open, as staff see it.
    page.goto(shop.star.get_absolute_url())
    page.locator("#contact a[href$='/contact/']").click()
    expect(page.locator("#contact form")).to_be_visible()
    found += [{"page": "contact-editor", **v} for v in axe_violations(page)]
    assert found == [], json.dumps(found, indent=1, ensure_ascii=False)
    assert page.js_errors == []
