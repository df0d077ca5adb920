"""Tags that staff put on customers, and the bulk tagging jobs that run in the background."""

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

# The longest tag name; a longer one is refused with a message (tags.services.clean_tag_name).
TAG_MAX_LENGTH = 50


class Tag(models.Model):
    """A label of the tag library ("VIP", "wholesale"): names are unique ignoring case."""

    name = models.CharField(_("name"), max_length=TAG_MAX_LENGTH)
    created_at = models.DateTimeField()
    # When the tag was created or renamed: part of the cache key of the lists' filter form,
    # which shows the tags by name.
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(Lower("name"), name="tag_name_unique_ci")]

    def __str__(self):
        return self.name


class CustomerTag(models.Model):
    """A tag on a customer.

    The unique (tag, customer) index serves "which customers carry this tag" and the
    (customer, tag) index the per-customer lookups: the tag filters of the lists are EXISTS
    semi-joins on one of them, never a scan of the whole table.
    """

    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="+", db_index=False)
    customer = models.ForeignKey(
        "clients.Customer", on_delete=models.CASCADE, related_name="+", db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tag", "customer"], name="customer_tag_once"),
        ]
        indexes = [models.Index(fields=["customer", "tag"], name="customer_tag_by_customer")]

    def __str__(self):
        return f"{self.customer_id}: {self.tag_id}"


class TagJobAction(models.TextChoices):
    ADD = "add", _("Add tags")
    REMOVE = "remove", _("Remove tags")


class TagJobStatus(models.TextChoices):
    QUEUED = "queued", _("Waiting")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class TagJob(models.Model):
    """Tags added to or removed from customers of a tab chosen on the list: the ticked ones
    (`ids`) or every one the search and filters find (`query`, the list's filter query).

    The customers are resolved again when the job runs (as a push audience is), in chunks;
    `done` counts the customers handled so far, for the progress bar.
    """

    action = models.CharField(max_length=10, choices=TagJobAction.choices)
    tags = models.ManyToManyField(Tag, related_name="+")
    # The names as chosen, kept for the job page if a tag is later deleted.
    tag_names = models.JSONField(default=list)
    tab = models.CharField(max_length=10)
    ids = models.JSONField(default=list, blank=True)
    query = models.TextField(blank=True)
    status = models.CharField(
        max_length=10, choices=TagJobStatus.choices, default=TagJobStatus.QUEUED
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    # Customers whose tags changed (a customer who already had the tag does not count).
    changed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.action} {', '.join(self.tag_names)} ({self.status})"

    def get_absolute_url(self):
        return reverse("tags:job-detail", args=[self.pk])

    @property
    def progress_percent(self) -> int:
        if self.status == TagJobStatus.DONE:
            return 100
        return min(100, self.done * 100 // self.total) if self.total else 0

    @property
    def finished(self) -> bool:
        return self.status in (TagJobStatus.DONE, TagJobStatus.FAILED)
