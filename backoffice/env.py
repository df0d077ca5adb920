"""Reading settings from the environment."""

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, *, default: bool) -> bool:
    """A boolean environment variable; anything but a clear yes/no is an error."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false).")


def env_list(name: str, *, default: list[str]) -> list[str]:
    """A comma-separated environment variable."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def parse_database_url(url: str, *, default_sqlite: Path) -> dict:
    """DATABASE_URL (sqlite:///path, postgres://user:pw@host:port/name) as a DATABASES entry."""
    if not url:
        return _sqlite(default_sqlite)
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        # sqlite:///relative.db and sqlite:////absolute/path.db, as dj-database-url reads them.
        name = path[1:] if path.startswith("/") else path
        return _sqlite(name or default_sqlite)
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        conn_max_age = int(options.pop("conn_max_age", 60))
        # Parameters bound by the server, and statements run five times on a connection
        # prepared: PostgreSQL then skips planning them (a client page's query took longer to
        # plan than to run). Behind a pooler that cannot keep prepared statements (PgBouncer
        # in transaction mode before 1.21), add ?prepare_threshold=none to DATABASE_URL.
        options["server_side_binding"] = _flag(options.get("server_side_binding", "true"))
        threshold = options.get("prepare_threshold", "5")
        try:
            options["prepare_threshold"] = None if threshold.lower() == "none" else int(threshold)
        except ValueError:
            raise ImproperlyConfigured(
                f"DATABASE_URL: prepare_threshold must be a number or none, not {threshold!r}."
            ) from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": conn_max_age,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parts.scheme!r} is not supported.")


def _flag(value: str) -> bool:
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"DATABASE_URL: {value!r} is not a yes/no value.")


def _sqlite(name) -> dict:
    # IMMEDIATE transactions take the write lock up front, so a service that reads then
    # writes (locking a customer, recomputing its statistics) cannot fail half-way with
    # "database is locked"; WAL lets pages read while a write is under way.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": name,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
