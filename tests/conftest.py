import os

import factory.random
import pytest
from django.test import Client
from django.utils import translation

from tests.factories import UserFactory

# In parallel runs (pytest-xdist, `-n 2 --dist loadgroup`: README, "Tests"), the tests below run
# one after the other on one xdist worker, beside the rest of the suite on the other:
# - "processes": they start real `db_worker`s, gunicorn or wrk and give them seconds to act,
#   a timing meant for one such test at a time;
# - "connections": each holds 20 to 50 database connections at once, and two of them at once
#   (or twice each suite's own) could exceed PostgreSQL's max_connections (100) on a shared server.
XDIST_GROUPS = {
    "tests/notifications/test_push_faults.py": "processes",
    "tests/notifications/test_push_outage.py": "processes",
    "tests/notifications/test_worker_kill.py": "processes",
    "tests/notifications/test_recovery.py::test_real_workers": "processes",
    "tests/bench/test_bench_push_faults.py": "processes",
    "tests/bench/test_bench_load.py": "processes",
    "tests/storefront/test_import_kill.py": "processes",
    "tests/test_concurrency.py": "connections",
    "tests/storefront/test_orders_concurrency.py": "connections",
    "tests/storefront/test_pipeline.py": "connections",
}

# The tests that exercise what STOCK_DJANGO=1 swaps (README, "Deviations from stock Django":
# the session read, the permission loading): sessions, logins, every route's refusals per
# role, the session-kept selection, and the query-count tests (each page's count includes the
# session and permission reads). CI runs these on stock Django: `-m deviations`.
DEVIATION_TESTS = (
    "tests/test_sessions.py",
    "tests/test_auth_backend.py",
    "tests/test_permissions.py",
    "tests/test_private_pages.py",
    "tests/test_login_hostile.py",
    "tests/test_security.py",
    "tests/clients/test_selection.py",
    "tests/clients/test_lists.py",
    "tests/clients/test_client_page.py",
    "tests/orders/test_order_page.py",
    "tests/notifications/test_views.py",
    "tests/notifications/test_send_test.py",
    "tests/storefront/test_apikey_page.py",
    "tests/notifications/test_attribution_pages.py",
)


def pytest_collection_modifyitems(config, items):
    in_xdist_worker = "PYTEST_XDIST_WORKER" in os.environ
    for item in items:
        for prefix, group in XDIST_GROUPS.items():
            if item.nodeid.startswith(prefix):
                item.add_marker(pytest.mark.xdist_group(group))
        if item.nodeid.startswith(DEVIATION_TESTS):
            item.add_marker(pytest.mark.deviations)
        # A transactional test flushes the database after it, and without serialized_rollback
        # the flush recreates the content types and permissions under new ids: the next test
        # on that worker that restores the serialized data (serialized_rollback=True) then
        # failed on a duplicate content type (CI, four errors in tests/test_concurrency.py).
        marker = item.get_closest_marker("django_db")
        if (
            marker
            and marker.kwargs.get("transaction")
            and not marker.kwargs.get("serialized_rollback")
        ):
            raise pytest.UsageError(
                f"{item.nodeid}: django_db(transaction=True) needs serialized_rollback=True"
            )
        # A test that restarts PostgreSQL would break the tests running beside it: it runs in
        # a run of its own (CI: `-m serial` after the parallel run), or in a plain `make test`.
        if in_xdist_worker and item.get_closest_marker("serial"):
            item.add_marker(
                pytest.mark.skip(reason="restarts PostgreSQL: run it without -n (`-m serial`)")
            )


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


@pytest.fixture(scope="session", autouse=True)
def _process_caches_filled(django_db_setup, django_db_blocker):
    """The permissions' names, read once per process by the back office's auth backend
    (backoffice/auth.py), read before any test: a test counting one request's queries
    counted that read when it ran first on its worker, and another order of the tests (xdist
    distributes them) made it fail."""
    from backoffice.auth import _permission_names

    with django_db_blocker.unblock():
        _permission_names("default")


@pytest.fixture(autouse=True)
def _reproducible_factories(request):
    """The factories' Faker values (names, emails, phones) drawn from a seed of the test's
    own id: a test sees the same data whatever ran before it on its worker, so a value that
    collides with one the test wrote (Faker's first name "Robert" where the test imports
    "Robert", once in about a thousand runs) fails every run, not one CI in a thousand."""
    factory.random.reseed_random(request.node.nodeid)


@pytest.fixture(autouse=True)
def _default_language_after_each_test():
    """A request in French leaves French active in the test's thread (LocaleMiddleware
    activates the request's language and nothing deactivates it): a later test on the same
    worker then read French labels (CI saw "Export clients Shopify" for "Shopify customer
    export", depending on which tests ran before)."""
    yield
    translation.deactivate()
