from django.apps import AppConfig
from django.db.models.signals import post_migrate


class LifecycleConfig(AppConfig):
    name = "lifecycle"
    verbose_name = "Lifecycle groups"

    def ready(self):
        from lifecycle import tasks

        # The daily recompute schedules itself once started; `migrate` starts the chain
        # (see lifecycle/tasks.py).
        post_migrate.connect(tasks.daily_ensure_after_migrate, sender=self)
