"""The side panel of the Clients and Leads tabs: the tab's saved segments with their counts,
saving the current search and filters, and the bulk tag actions. CustomerList builds one
(`listing.panel`); the template's partials templates/segments/panel.html and
templates/tags/bulk_form.html read it."""

import hashlib
from functools import cached_property
from urllib.parse import urlencode

from django.urls import reverse

from segments.selectors import panel_rows, segment_counts

SEGMENT_PERMISSION = "segments.add_segment"
TAG_PERMISSION = "tags.add_customertag"
PUSH_PERMISSION = "notifications.send_campaign"


class SegmentPanel:
    def __init__(self, listing):
        self.listing = listing
        user = listing.request.user
        self.can_save = user.has_perm(SEGMENT_PERMISSION)
        self.can_tag = user.has_perm(TAG_PERMISSION)
        self.can_push = user.has_perm(PUSH_PERMISSION)

    @cached_property
    def _rows(self):
        return panel_rows(tab=self.listing.tab)

    @property
    def tags(self) -> list[tuple[int, str]]:
        """Every tag (id, name), for the tag filters and the bulk form's suggestions."""
        return self._rows[1]

    @cached_property
    def tags_version(self) -> str:
        """Changes when a tag is created, renamed or deleted: part of the filter form's cache
        key, since the form names the tags."""
        return hashlib.blake2b(repr(self.tags).encode(), digest_size=8).hexdigest()

    @cached_property
    def segments(self) -> list[dict]:
        segments = self._rows[0]
        counts = segment_counts(segments)
        current = self.listing.filter_query
        push_url = reverse("notifications:campaign-create") if self.can_push else ""
        return [
            {
                "segment": segment,
                "url": segment.get_absolute_url(),
                "count": counts[segment.pk][0],
                "cap": counts[segment.pk][1],
                "current": _same_query(segment.query, current),
                "push_url": (
                    push_url
                    + "?"
                    + urlencode(
                        {"tab": segment.tab, "audience": "filtered", "query": segment.query}
                    )
                    if push_url
                    else ""
                ),
            }
            for segment in segments
        ]

    @property
    def current_segment(self):
        return next((row["segment"] for row in self.segments if row["current"]), None)


def _same_query(a: str, b: str) -> bool:
    from django.http import QueryDict

    def normal(query):
        params = QueryDict(query)
        return sorted((k, v) for k, vs in params.lists() for v in vs if v != "")

    return normal(a) == normal(b)
