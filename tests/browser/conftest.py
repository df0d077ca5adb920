"""Browser tests: Playwright driving Debian's Chromium against pytest-django's live_server.

The tests are skipped, with the reason printed in the summary, when no Chromium is found;
with REQUIRE_BROWSER=1 (CI) a missing browser fails them instead.
"""

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.factories import UserFactory

PASSWORD = "secret-pass-123"
BROWSER_DIR = Path(__file__).parent
DESKTOP = {"width": 1440, "height": 900}
MOBILE = {"width": 390, "height": 844}
# Playwright waits this long for an element before failing a step.
expect.set_options(timeout=10_000)


def chromium_path() -> str | None:
    """The Chromium to drive: $CHROMIUM if set, else Debian's /usr/bin/chromium or one on PATH."""
    if chosen := os.environ.get("CHROMIUM"):
        return chosen if os.access(chosen, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_collection_modifyitems(config, items):
    # Browser tests run last: they use transactional databases, which are emptied after each
    # test, and Playwright's event loop stays open until the end of the session.
    browser_items = [item for item in items if BROWSER_DIR in Path(item.path).parents]
    for item in browser_items:
        item.add_marker(pytest.mark.browser)
        # The live server sees only committed data, so the tests are transactional; the
        # flush after each one removes what data migrations created (roles, permissions),
        # which _restore_migrations_data puts back from the serialized copy this asks for.
        item.add_marker(pytest.mark.django_db(transaction=True, serialized_rollback=True))
    others = [item for item in items if item not in browser_items]
    items[:] = others + browser_items


@pytest.fixture(scope="session")
def _migrations_data(django_db_setup, django_db_blocker) -> str:
    """The test database's content right after migrating, as Django serialized it."""
    from django.db import connection

    with django_db_blocker.unblock():
        return connection._test_serialized_contents


@pytest.fixture
def _fresh_database(transactional_db, _migrations_data) -> None:
    """The database as migrations left it: empty but for roles, permissions, content types.

    Django's serialized rollback would do this, but while Playwright's event loop runs Django
    keeps its connections per event-loop context, so the connection the test uses is not the
    one that holds the serialized copy; and the previous test may have left rows behind.
    """
    from django.core.management import call_command
    from django.db import connection

    call_command("flush", interactive=False, inhibit_post_migrate=True, verbosity=0)
    connection.creation.deserialize_db_from_string(_migrations_data)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict, _migrations_data) -> dict:
    # Depending on _migrations_data creates the test database before Playwright starts its
    # event loop (Django refuses database work in a thread that runs one).
    path = chromium_path()
    if path is None:
        message = (
            "No Chromium found ($CHROMIUM, /usr/bin/chromium or on PATH): browser tests not run. "
            "Install it with `apt-get install chromium`."
        )
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message + " REQUIRE_BROWSER=1 makes this a failure.", pytrace=False)
        pytest.skip(message)
    # From here on, the tests use the ORM while Playwright's sync API keeps its event loop
    # open in the same thread; Django would refuse that as "async unsafe", though no coroutine
    # runs. Only browser tests remain in the session (they run last), so this is theirs.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    return {
        **browser_type_launch_args,
        "executable_path": path,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture
def new_page(browser: Browser, live_server, _fresh_database) -> Iterator[Callable[..., Page]]:
    """Open a page in a fresh browser context (own cookies), in a language and a size."""
    contexts: list[BrowserContext] = []

    def open_page(*, lang: str = "en", viewport: dict | None = None) -> Page:
        context = browser.new_context(
            base_url=live_server.url,
            locale="fr-FR" if lang == "fr" else "en-US",
            viewport=viewport or DESKTOP,
            timezone_id="Europe/Paris",
            reduced_motion="reduce",
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: errors.append(msg.text) if msg.type == "error" else None,
        )
        page.js_errors = errors
        return page

    yield open_page
    for context in contexts:
        context.close()


def log_in(page: Page, username: str, password: str = PASSWORD) -> None:
    """Log in through the real login form."""
    page.goto("/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(password)
    page.locator("form[action$='/login/'] button[type=submit]").click()
    page.wait_for_url("**/clients/**")


@pytest.fixture
def page_as(new_page) -> Callable[..., Page]:
    """A page logged in, through the login form, as a new user of `role`."""

    def open_as(role: str, *, lang: str = "en", viewport: dict | None = None) -> Page:
        user = UserFactory(role=role)
        page = new_page(lang=lang, viewport=viewport)
        log_in(page, user.username)
        page.user = user
        return page

    return open_as
