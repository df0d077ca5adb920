"""Saved segments: a tab's search and filters under a name, evaluated each time it is used."""

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

SEGMENT_NAME_MAX_LENGTH = 100
# The longest definition (a list's filter query string) a segment may hold.
SEGMENT_QUERY_MAX_LENGTH = 2000


class Segment(models.Model):
    """A named search and filters of the Clients or Leads tab, shared by the shop's users.

    `query` is the definition, the filter query string of the list (clients.listing.
    filter_query): the customers are whoever it finds when the segment is opened, counted or
    sent a push, never a frozen list.
    """

    name = models.CharField(_("name"), max_length=SEGMENT_NAME_MAX_LENGTH)
    tab = models.CharField(max_length=10)
    query = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("name"), "tab", name="segment_name_unique_ci"),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        """The tab with the segment's search and filters: a normal, bookmarkable list URL."""
        tab_url = reverse("clients:lead-list" if self.tab == "leads" else "clients:client-list")
        return f"{tab_url}?{self.query}"
