import logging

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules

logger = logging.getLogger(__name__)


def _schedule_daily(sender, **kwargs):
    """After migrate: make sure the daily privacy task waits in the queue (see tasks.py)."""
    from django.db import DatabaseError

    from privacy.tasks import daily_schedule

    try:
        daily_schedule()
    except DatabaseError:  # the task queue's table is not there (a partial migrate)
        logger.warning(
            "The daily privacy task could not be scheduled: run privacy_daily --schedule"
        )


class PrivacyConfig(AppConfig):
    name = "privacy"
    verbose_name = "Privacy"

    def ready(self):
        # Every app's privacy.py declares its personal data (privacy/registry.py).
        autodiscover_modules("privacy")
        post_migrate.connect(_schedule_daily, sender=self)
