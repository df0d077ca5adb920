"""Log-in throttling, password hashing, production security settings and the CSP."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.hashers import check_password, identify_hasher
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse

import backoffice.settings as production_settings
from backoffice.client_ip import client_ip_address
from notifications.models import PushSubscription
from notifications.tokens import storefront_token_issue
from tests.factories import CustomerFactory, UserFactory
from tests.routes import configure_push

BASE_DIR = Path(settings.BASE_DIR)
PASSWORD = "secret-pass-123"


def _login(client: Client, username: str, password: str, address: str = "10.1.1.1"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


# --- Passwords ------------------------------------------------------------------------


def test_production_settings_hash_passwords_with_argon2_first():
    assert production_settings.PASSWORD_HASHERS[0] == (
        "django.contrib.auth.hashers.Argon2PasswordHasher"
    )


@pytest.mark.django_db
def test_argon2_hashes_and_verifies_a_password():
    with override_settings(PASSWORD_HASHERS=production_settings.PASSWORD_HASHERS):
        user = UserFactory()
        user.set_password("correct horse battery staple")
        user.save()
        user.refresh_from_db()
        assert identify_hasher(user.password).algorithm == "argon2"
        assert user.check_password("correct horse battery staple")
        assert not user.check_password("correct horse battery stapl")


@pytest.mark.django_db
def test_an_older_pbkdf2_hash_is_upgraded_to_argon2_at_log_in():
    user = UserFactory(username="legacy")
    with override_settings(PASSWORD_HASHERS=production_settings.PASSWORD_HASHERS[1:]):
        user.set_password(PASSWORD)
        user.save()
        assert identify_hasher(user.password).algorithm == "pbkdf2_sha256"
    with override_settings(PASSWORD_HASHERS=production_settings.PASSWORD_HASHERS):
        response = _login(Client(), "legacy", PASSWORD)
        assert response.status_code == 302
        user.refresh_from_db()
        assert identify_hasher(user.password).algorithm == "argon2"
        assert check_password(PASSWORD, user.password)


@pytest.mark.parametrize("password", ["short1!", "password123", "12345678901234", "maryjones2024"])
def test_weak_passwords_are_refused(password):
    user = User(username="maryjones", first_name="Mary", last_name="Jones")
    with pytest.raises(ValidationError):
        validate_password(password, user)


def test_a_strong_password_is_accepted():
    validate_password("plum-ferry-tangent-47", User(username="maryjones"))


# --- Log-in throttling (django-axes) --------------------------------------------------------


@pytest.mark.django_db
def test_repeated_failures_for_one_user_lock_the_account_with_a_clear_page():
    UserFactory(username="alice")
    client = Client()
    limit = settings.AXES_FAILURE_LIMIT
    for attempt in range(limit - 1):
        # Each failure from a different address: the per-user limit applies regardless.
        response = _login(client, "alice", "wrong", address=f"10.0.0.{attempt + 1}")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.text
    response = _login(client, "alice", "wrong", address="10.0.0.99")
    assert response.status_code == 429
    page = response.text
    assert "Too many failed log-in attempts" in page
    assert "“alice”" in page
    assert f"for {settings.AXES_COOLOFF_TIME.seconds // 60} minutes" in page
    assert "css/app.css" in page  # the back office's look, not a bare text page
    # While locked, even the right password is refused, from any address.
    response = _login(client, "alice", PASSWORD, address="10.9.9.9")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_repeated_failures_from_one_address_lock_that_address():
    UserFactory(username="bob")
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        response = _login(client, f"guess{n}", "wrong", address="10.2.2.2")
    assert response.status_code == 429
    assert _login(client, "bob", PASSWORD, address="10.2.2.2").status_code == 429
    # Another address is not affected.
    assert _login(client, "bob", PASSWORD, address="10.3.3.3").status_code == 302


@pytest.mark.django_db
def test_a_successful_log_in_before_the_limit_clears_the_failures():
    UserFactory(username="carol")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "carol", "wrong")
    assert _login(client, "carol", PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "carol", "wrong").status_code == 200
    assert _login(client, "carol", PASSWORD).status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize(
    "command", [("axes_reset",), ("axes_reset_username", "dave"), ("axes_reset_ip", "10.4.4.4")]
)
def test_an_administrator_unlocks_with_axes_reset(command):
    UserFactory(username="dave")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = _login(client, "dave", "wrong", address="10.4.4.4")
    assert response.status_code == 429
    call_command(*command, stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert _login(client, "dave", PASSWORD, address="10.4.4.4").status_code == 302


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "127.0.0.1"),  # no proxy trusted: the header is ignored
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a forged left-hand entry is ignored
        (2, "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (2, "203.0.113.9", "127.0.0.1"),  # fewer entries than proxies: not believed
    ],
)
def test_client_address_behind_trusted_proxies(proxies, forwarded, expected):
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
    with override_settings(TRUSTED_PROXY_COUNT=proxies):
        assert client_ip_address(request) == expected


# --- Production settings ---------------------------------------------------------------


def _production_env(**extra) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SECURE_", "SESSION_", "CSRF_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="backoffice.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="shop.example.com",
        **extra,
    )
    return env


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=_production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = _production_env()
    del env["SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


# --- Content Security Policy ---------------------------------------------------------------

# A source may only be our own origin, nothing, a nonce, or data: images.
_ALLOWED_SOURCE = re.compile(r"^('self'|'none'|'nonce-[A-Za-z0-9+/=_-]+'|data:)$")


@pytest.mark.django_db
def test_csp_header_allows_only_our_origin_and_nonced_scripts(viewer_client):
    for client, url in [
        (Client(), reverse("login")),
        (viewer_client, reverse("clients:client-list")),
    ]:
        response = client.get(url)
        assert response.status_code == 200
        policy = response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        directives = dict(
            (part.split()[0], part.split()[1:]) for part in policy.split(";") if part.strip()
        )
        assert directives["default-src"] == ["'self'"]
        assert directives["object-src"] == ["'none'"]
        assert directives["frame-ancestors"] == ["'none'"]
        for name, sources in directives.items():
            for source in sources:
                assert _ALLOWED_SOURCE.match(source), f"{name} allows {source}"
        nonce = re.search(r"'nonce-([^']+)'", directives["script-src"][-1]).group(1)
        scripts = re.findall(r"<script\b[^>]*>", response.text)
        assert scripts
        assert all(f'nonce="{nonce}"' in tag for tag in scripts)


def _template_files() -> list[Path]:
    return sorted((BASE_DIR / "templates").rglob("*.html"))


# What the policy blocks in a page: an inline script without the nonce, any inline style
# (style="" attributes and <style> elements), and inline event handlers or javascript: URLs.
_SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.IGNORECASE)
_FORBIDDEN = {
    "a <style> element": re.compile(r"<style\b", re.IGNORECASE),
    'a style="" attribute': re.compile(r"\sstyle\s*=", re.IGNORECASE),
    "an inline event handler": re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),
    "an hx-on handler (needs eval)": re.compile(r"\shx-on", re.IGNORECASE),
    "a javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
}


def test_templates_exist_to_scan():
    assert len(_template_files()) >= 5


@pytest.mark.parametrize("path", _template_files(), ids=lambda p: str(p.relative_to(BASE_DIR)))
def test_template_has_nothing_the_csp_would_block(path):
    text = path.read_text()
    problems = [
        f"{what} at line {text.count(chr(10), 0, match.start()) + 1}"
        for what, pattern in _FORBIDDEN.items()
        for match in pattern.finditer(text)
    ]
    problems += [
        f"a <script> without the nonce at line {text.count(chr(10), 0, match.start()) + 1}"
        for match in _SCRIPT_TAG.finditer(text)
        if 'nonce="{{ csp_nonce }}"' not in match.group(0)
    ]
    assert not problems, f"{path.name}: {', '.join(problems)}"


# --- Forged tokens and redirects -------------------------------------------------------------


@pytest.mark.django_db
def test_the_subscription_endpoint_refuses_forged_customer_tokens(settings):
    configure_push(settings)
    alice, bob = CustomerFactory(), CustomerFactory()
    customer_id, issued, mac = storefront_token_issue(customer_id=alice.pk).split(".")
    forged = [
        f"{bob.pk}.{issued}.{mac}",  # alice's signature moved to bob
        f"{customer_id}.{issued}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}",
        f"{customer_id}.{int(issued) + 1}.{mac}",
        f"{customer_id}.{issued}.",
        "",
    ]
    subscription = {
        "endpoint": "https://fcm.googleapis.com/fcm/send/abc",
        "keys": {"p256dh": "B" + "A" * 86, "auth": "QUFBQUFBQUFBQUFBQUFBQQ"},
    }
    for token in forged:
        response = Client().post(
            reverse("notifications:storefront-subscribe"),
            {"token": token, "subscription": subscription},
            content_type="application/json",
        )
        assert response.status_code == 403, token
    assert not PushSubscription.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("next_url", ["https://evil.example.com/", "//evil.example.com/x"])
def test_logging_in_never_redirects_to_another_site(next_url):
    UserFactory(username="erin")
    response = Client().post(
        reverse("login"), {"username": "erin", "password": PASSWORD, "next": next_url}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse(settings.LOGIN_REDIRECT_URL)
