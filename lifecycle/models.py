"""What the lifecycle groups are decided by, and the daily counts the dashboard compares.

Each customer's group itself is a column of the customers table
(`clients.models.Customer.lifecycle_group`), written in the same statement as its statistics
(orders/services.py) and by the daily recompute (lifecycle/services.py).
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from lifecycle.rules import THRESHOLDS_TABLE, Group


class Thresholds(models.Model):
    """The shop's thresholds (one row, id 1), recomputed daily from its own distribution.

    The statistics statements read it with a scalar subquery and fall back to
    lifecycle.rules.FALLBACK when the row is missing.
    """

    recent_days = models.PositiveIntegerField()
    active_days = models.PositiveIntegerField()
    lost_days = models.PositiveIntegerField()
    top_orders = models.PositiveIntegerField()
    top_spent = models.DecimalField(max_digits=14, decimal_places=2)
    # How many clients the thresholds were derived from; below rules.MIN_CLIENTS they are
    # the fixed fallbacks.
    clients = models.PositiveIntegerField(default=0)
    from_quantiles = models.BooleanField(default=False)
    computed_at = models.DateTimeField()

    class Meta:
        db_table = THRESHOLDS_TABLE
        verbose_name_plural = _("thresholds")

    def __str__(self):
        return f"thresholds of {self.computed_at:%Y-%m-%d %H:%M}"


class GroupSnapshot(models.Model):
    """How many customers a group held on a day (written by the daily recompute), so that
    the dashboard can say how the groups moved since 30 days ago."""

    day = models.DateField()
    group = models.CharField(max_length=16, choices=Group.choices)
    customers = models.PositiveIntegerField()
    # Reconstructed afterwards from the order history (lifecycle.services.
    # snapshot_from_history), not counted on the day: the dashboard says so.
    from_history = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "group"], name="lifecycle_snapshot_day_group")
        ]

    def __str__(self):
        return f"{self.group} on {self.day}: {self.customers}"
