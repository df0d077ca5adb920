from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class PrivacyConfig(AppConfig):
    name = "privacy"
    verbose_name = "Privacy"

    def ready(self):
        # Every app's privacy.py declares its personal data (privacy/registry.py).
        autodiscover_modules("privacy")
