"""The demo tests use the web push fixtures of the notifications tests."""

from tests.notifications.conftest import push_service, vapid_keys  # noqa: F401
