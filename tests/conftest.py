import pytest
from django.test import Client

from tests.factories import UserFactory


def _client_as(role: str) -> Client:
    client = Client()
    client.force_login(UserFactory(role=role))
    return client


@pytest.fixture
def viewer_client(db):
    return _client_as("Viewer")


@pytest.fixture
def staff_client(db):
    return _client_as("Staff")


@pytest.fixture
def admin_client_role(db):
    """A logged-in user of the Admin role (pytest-django's admin_client is a superuser)."""
    return _client_as("Admin")
