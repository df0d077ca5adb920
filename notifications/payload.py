"""What a notification carries: the JSON the service worker shows, within the size limit."""

import json
from dataclasses import dataclass

from django.urls import reverse

from notifications.tokens import click_token
from notifications.webpush import MAX_PLAINTEXT_SIZE

# Ids large enough that no real click token is longer than the one the limit is computed with.
_LARGEST_ID = 10**15


def payload_bytes(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def click_url_prefix(base_url: str) -> str:
    """The click URL up to the token (reversed once per campaign, not once per message)."""
    return base_url.rstrip("/") + reverse("notifications:click", args=["T"])[:-1]


def click_url(*, base_url: str, campaign_id: int, subscription_id: int) -> str:
    token = click_token(campaign_id=campaign_id, subscription_id=subscription_id)
    return click_url_prefix(base_url) + token


def payload_data(
    *, title: str, body: str, url: str, icon: str, image: str, tag: str
) -> dict[str, str]:
    return {"title": title, "body": body, "url": url, "icon": icon, "image": image, "tag": tag}


def payload_size(*, title: str, body: str, icon: str, image: str, base_url: str) -> int:
    """The largest plaintext size a campaign with these fields sends (the limit applies)."""
    url = click_url(base_url=base_url, campaign_id=_LARGEST_ID, subscription_id=_LARGEST_ID)
    data = payload_data(
        title=title, body=body, url=url, icon=icon, image=image, tag=f"campaign-{_LARGEST_ID}"
    )
    return len(payload_bytes(data))


def payload_fits(**fields) -> bool:
    return payload_size(**fields) <= MAX_PLAINTEXT_SIZE


@dataclass(frozen=True)
class CampaignPayload:
    """A campaign's notification, personalised per subscription only by its click link."""

    campaign_id: int
    url_prefix: str
    head: bytes  # the JSON up to the url value
    tail: bytes  # the JSON after it

    def for_subscription(self, subscription_id: int) -> bytes:
        if not self.url_prefix:
            # No link: the service worker opens the shop's home page (not counted as a click).
            return self.head + b'""' + self.tail
        token = click_token(campaign_id=self.campaign_id, subscription_id=subscription_id)
        return self.head + json.dumps(self.url_prefix + token).encode() + self.tail


def campaign_payload(campaign) -> CampaignPayload:
    marker = "\x00url\x00"
    data = payload_data(
        title=campaign.title,
        body=campaign.body,
        url=marker,
        icon=campaign.icon,
        image=campaign.image,
        tag=f"campaign-{campaign.pk}",
    )
    encoded = payload_bytes(data)
    head, tail = encoded.split(payload_bytes(marker), 1)
    return CampaignPayload(
        campaign_id=campaign.pk,
        url_prefix=click_url_prefix(campaign.public_base_url) if campaign.link else "",
        head=head,
        tail=tail,
    )
