"""Settings for the test suite: the real settings, with a throwaway key and a fast hasher."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")

from backoffice.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
# The test client speaks plain HTTP and static files are not collected for tests.
SECURE_SSL_REDIRECT = False
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Several suites may run against one PostgreSQL server at once (developers, CI, helpers):
# each run gets its own test database.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": f"test_backoffice_{os.getpid()}"}  # noqa: F405

# Push delivery in tests: the local push service listens on 127.0.0.1 over plain HTTP, and
# retries wait milliseconds instead of seconds.
PUSH_ALLOW_LOOPBACK_ENDPOINTS = True
PUSH_RETRY_BASE_DELAY = 0.01
PUSH_REQUEST_TIMEOUT = 3.0
