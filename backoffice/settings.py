"""Settings for the back office.

Every value a deployment changes comes from the environment, with defaults that make
`make run` work on a fresh machine (SQLite file, DEBUG on, a development secret key).
"""

import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from backoffice.env import env_bool, env_list, parse_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)

_DEV_SECRET_KEY = "dev-only-insecure-key-never-use-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY") or (_DEV_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_filters",
    "django_tables2",
    "django_tasks_db",
    "axes",
    "clients",
    "orders",
    "notifications",
    "storefront",
    "exports",
    "privacy",
    "lifecycle",
    "tags",
    "segments",
    "imports",
]
# The demo shop (seed_demo, demo users, the demo push service and storefront) and the
# benchmark commands live in their own apps; a production deployment can leave them out with
# DEV_APPS=0 (the product apps never import them).
DEV_APPS = env_bool("DEV_APPS", default=True)
if DEV_APPS:
    INSTALLED_APPS += ["demo", "bench"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Pages compressed (whitenoise serves static files compressed already, before this runs).
    # Safe against BREACH: the CSRF token is masked afresh in every response and
    # GZipMiddleware pads each response with random bytes (README, "Security").
    "django.middleware.gzip.GZipMiddleware",
    # Under /api/: every error as problem+json, CORS for the browser-facing endpoints.
    "storefront.middleware.ApiMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the one picked in the menu (a cookie), else the browser's Accept-Language.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Cache-Control: private, no-store for logged-in pages; HX-Redirect to log in for htmx.
    "backoffice.middleware.PrivatePagesMiddleware",
    # The back office's own 404 page with DEBUG on as well.
    "backoffice.middleware.NotFoundPageMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "backoffice.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "backoffice.context_processors.backoffice",
            ],
            "builtins": ["backoffice.templatetags.formatting", "backoffice.templatetags.languages"],
        },
    },
]

WSGI_APPLICATION = "backoffice.wsgi.application"

DATABASES = {
    "default": parse_database_url(
        os.environ.get("DATABASE_URL", ""), default_sqlite=BASE_DIR / "db.sqlite3"
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Argon2 for new and re-hashed passwords; the others only verify (and upgrade) older hashes.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
# STOCK_DJANGO=1 swaps this project's faster readers of sessions, users and permissions for
# Django's own (README: "Deviations from stock Django"): CI runs the tests marked `deviations`
# that way too, so the back office is known to work on stock Django and the deviations stay
# optional.
STOCK_DJANGO = env_bool("STOCK_DJANGO", default=False)
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out login before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    # ModelBackend, with a user's own and group permissions read in one query.
    "django.contrib.auth.backends.ModelBackend"
    if STOCK_DJANGO
    else "backoffice.auth.PermissionsInOneQueryBackend",
]

# Login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins for one username, or
# from one address, further attempts are refused for AXES_COOLOFF_TIME with the lockout page.
# Unlock sooner with `manage.py axes_reset_username <username>`, `axes_reset_ip <address>`
# or `axes_reset` (everyone).
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("AXES_COOLOFF_MINUTES", 15)))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
# Behind a reverse proxy every request comes from the proxy's address: set TRUSTED_PROXY_COUNT
# to the number of proxies that append to X-Forwarded-For, so the client's address is used.
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", 0))
AXES_CLIENT_IP_CALLABLE = "backoffice.client_ip.client_ip_address"
AXES_USERNAME_CALLABLE = "backoffice.client_ip.login_username"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "clients:client-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# SHORT_DATE_FORMAT and SHORT_DATETIME_FORMAT as each language writes them.
FORMAT_MODULE_PATH = ["backoffice.formats"]
USE_I18N = True
USE_TZ = True
# The shop's own time zone: dates are shown and scheduled in it.
TIME_ZONE = os.environ.get("SHOP_TIME_ZONE", "Europe/Paris")
# ISO 4217 code of the shop's currency; orders carry their own currency too.
SHOP_CURRENCY = os.environ.get("SHOP_CURRENCY", "EUR")
SHOP_NAME = os.environ.get("SHOP_NAME", "Demo shop")
# Where the shop is: phone numbers typed without a country code are read as this country's.
SHOP_COUNTRY = os.environ.get("SHOP_COUNTRY", "FR")

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "backoffice.staticfiles.ManifestStaticFilesStorage"
        )
    },
}

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# --- Customer exports (exports app) ----------------------------------------------------------
# XLSX exports are built by the task worker into this storage and kept this many hours for the
# user who asked (then deleted by a task, or `manage.py delete_expired_exports`). The worker
# and the web servers must share it: with several machines, point it at a shared backend.
EXPORT_RETENTION_HOURS = int(os.environ.get("EXPORT_RETENTION_HOURS", 24))
STORAGES["exports"] = {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": os.environ.get("EXPORT_STORAGE_ROOT", BASE_DIR / "var" / "exports")},
}
# Uploaded files (imports) go through the "default" storage: local files under MEDIA_ROOT by
# default; set STORAGES["default"] to a shared backend when workers run on other machines.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
MEDIA_URL = "media/"
# Imports (imports app): the largest file accepted, in bytes (default 200 MB).
IMPORT_MAX_BYTES = int(os.environ.get("IMPORT_MAX_BYTES", 200 * 1024 * 1024))
# An applied import keeps its checked rows (each row's values, normalized: personal data) for
# its page this many days after it was applied; the daily privacy task then deletes them.
IMPORT_RETENTION_DAYS = int(os.environ.get("IMPORT_RETENTION_DAYS", 30))
if not 0 <= IMPORT_RETENTION_DAYS <= 3650:
    raise ImproperlyConfigured("IMPORT_RETENTION_DAYS must be a number of days from 0 to 3650.")
# An import left waiting (checked but neither applied nor cancelled, columns never chosen) is
# cancelled by the daily privacy task this many days after it was last touched: its uploaded
# file and checked rows (personal data) are deleted.
IMPORT_ABANDONED_DAYS = int(os.environ.get("IMPORT_ABANDONED_DAYS", 14))
if not 1 <= IMPORT_ABANDONED_DAYS <= 3650:
    raise ImproperlyConfigured("IMPORT_ABANDONED_DAYS must be a number of days from 1 to 3650.")

# --- Web push (notifications app) ------------------------------------------------------------
# The VAPID key pair identifies the shop to push services (`manage.py generate_vapid_keys`
# makes one; `make run` keeps a development pair in .local/vapid.env). The private key is the
# base64url raw key or a PEM, inline or in a file; the public key is derived from it.
VAPID_PRIVATE_KEY = os.environ.get("VAPID_PRIVATE_KEY", "")
VAPID_PRIVATE_KEY_FILE = os.environ.get("VAPID_PRIVATE_KEY_FILE", "")
VAPID_PUBLIC_KEY = os.environ.get("VAPID_PUBLIC_KEY", "")
VAPID_SUBJECT = os.environ.get("VAPID_SUBJECT", "mailto:webmaster@localhost")
# Where customers' browsers reach the back office (click links); default: the admin's request.
PUSH_PUBLIC_URL = os.environ.get("PUSH_PUBLIC_URL", "")
# Storefront origins allowed to call the subscription endpoints from their pages (CORS).
PUSH_STOREFRONT_ORIGINS = env_list("PUSH_STOREFRONT_ORIGINS", default=[])
# Shared with the storefront to sign customer tokens (notifications/tokens.py explains them).
PUSH_STOREFRONT_SECRET = os.environ.get("PUSH_STOREFRONT_SECRET", "")
# Subscriptions may only point at these push services (an endpoint is a URL the workers POST
# to, so it must not reach into the shop's network). A leading dot allows subdomains.
PUSH_ENDPOINT_HOSTS = env_list(
    "PUSH_ENDPOINT_HOSTS",
    default=[
        "fcm.googleapis.com",
        "updates.push.services.mozilla.com",
        ".push.apple.com",
        ".notify.windows.com",
    ],
)
# Plain-HTTP loopback endpoints (local push services in development and tests).
PUSH_ALLOW_LOOPBACK_ENDPOINTS = env_bool("PUSH_ALLOW_LOOPBACK_ENDPOINTS", default=DEBUG)
# Port of the demo push service on 127.0.0.1 (`manage.py run_demo_push_service`, started by
# `make run`); the demo shop's subscriptions (seed_demo) point at it.
PUSH_DEMO_SERVICE_PORT = int(os.environ.get("PUSH_DEMO_SERVICE_PORT", "8765"))
# A PEM file of CA certificates the workers trust for push services, in addition to the
# system's (hostnames are still checked); empty: the system's only.
PUSH_CA_FILE = os.environ.get("PUSH_CA_FILE", "")
# An order is credited to the push campaign whose notification the customer last clicked at
# most this many days before placing it (notifications/attribution.py).
PUSH_ATTRIBUTION_DAYS = int(os.environ.get("PUSH_ATTRIBUTION_DAYS", 7))
if not 1 <= PUSH_ATTRIBUTION_DAYS <= 90:
    raise ImproperlyConfigured("PUSH_ATTRIBUTION_DAYS must be a number of days from 1 to 90.")

# --- Storefront API (storefront app, /api/v1/) -------------------------------------------------
# Largest request body accepted (413 above), in bytes.
STOREFRONT_API_MAX_BODY = int(os.environ.get("STOREFRONT_API_MAX_BODY", 64 * 1024))
# Rate limits, shared by every worker and machine: calls per API key, and per customer token,
# in each window of STOREFRONT_API_RATE_WINDOW seconds. Counted in the cache
# STOREFRONT_API_RATE_LIMIT_CACHE names (Redis: REDIS_URL), else in the database.
STOREFRONT_API_RATE_LIMIT = int(os.environ.get("STOREFRONT_API_RATE_LIMIT", 3000))
STOREFRONT_API_CUSTOMER_RATE_LIMIT = int(os.environ.get("STOREFRONT_API_CUSTOMER_RATE_LIMIT", 60))
STOREFRONT_API_RATE_WINDOW = int(os.environ.get("STOREFRONT_API_RATE_WINDOW", 10))
# Redis, optional (redis://host:6379/0): the API's rate-limit counters then cost one Redis
# round trip per call instead of a database write. The cache's keys are prefixed with
# REDIS_KEY_PREFIX (by default the database's name), so databases sharing a Redis do not mix.
REDIS_URL = os.environ.get("REDIS_URL", "")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if REDIS_URL:
    CACHES["api"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("REDIS_KEY_PREFIX", str(DATABASES["default"]["NAME"])),
        "OPTIONS": {"socket_timeout": 1, "socket_connect_timeout": 1},
    }
# The cache alias the rate limits count in; "" counts them in the database. Only a cache that
# every worker and machine shares (Redis, Memcached) keeps the limit across them.
STOREFRONT_API_RATE_LIMIT_CACHE = os.environ.get(
    "STOREFRONT_API_RATE_LIMIT_CACHE", "api" if REDIS_URL else ""
)
# Idempotency keys are kept this long (seconds; at least a day).
STOREFRONT_API_IDEMPOTENCY_TTL = max(
    86400, int(os.environ.get("STOREFRONT_API_IDEMPOTENCY_TTL", 86400))
)
# A streamed call (the bulk import) holds its Idempotency-Key while it runs, renewing it every
# sixth of this many seconds; a key its process stopped renewing (killed) is free again after
# it (a retry meanwhile gets 409 with Retry-After).
STOREFRONT_API_IDEMPOTENCY_LEASE = max(
    6.0, float(os.environ.get("STOREFRONT_API_IDEMPOTENCY_LEASE", 60))
)
# Each process keeps the API keys it read this many seconds (0: read on every call): a revoked
# key is refused at once by the process that revoked it, within this delay by the others.
STOREFRONT_API_KEY_CACHE_SECONDS = float(os.environ.get("STOREFRONT_API_KEY_CACHE_SECONDS", 5))
# Origins whose pages call the browser-facing endpoints (push, launches) with a customer
# token (CORS); by default the origins allowed for the older push endpoints.
STOREFRONT_API_BROWSER_ORIGINS = env_list(
    "STOREFRONT_API_BROWSER_ORIGINS", default=PUSH_STOREFRONT_ORIGINS
)
# An order is attributed to the customer's latest launch with a source at most this many days
# before it (storefront/selectors.py: launch_attributing_order).
STOREFRONT_ATTRIBUTION_DAYS = int(os.environ.get("STOREFRONT_ATTRIBUTION_DAYS", 30))

# --- Privacy (privacy app) ----------------------------------------------------------------------
# An erasure request is carried out this many days after it was made (cancellable meanwhile).
PRIVACY_ERASURE_GRACE_DAYS = int(os.environ.get("PRIVACY_ERASURE_GRACE_DAYS", 10))
# Finalized orders of an erased customer keep their billing address (what an invoice must show,
# kept 10 years under French law); 0 erases it too. Other addresses are always erased.
PRIVACY_KEEP_BILLING_SNAPSHOT = env_bool("PRIVACY_KEEP_BILLING_SNAPSHOT", default=True)
# A customer's data archive can be downloaded once, for this many hours after it is ready;
# customers with more than PRIVACY_ARCHIVE_BACKGROUND_ROWS orders and notes get theirs built
# by the task worker.
PRIVACY_ARCHIVE_HOURS = int(os.environ.get("PRIVACY_ARCHIVE_HOURS", 24))
PRIVACY_ARCHIVE_BACKGROUND_ROWS = int(os.environ.get("PRIVACY_ARCHIVE_BACKGROUND_ROWS", 200))
# Leads without contact, and clients without an order, for this many days are erased by the
# retention sweep (the CNIL's reference: 3 years); after an Admin confirms it, or by itself every
# day with PRIVACY_RETENTION_AUTO.
PRIVACY_RETENTION_DAYS = int(os.environ.get("PRIVACY_RETENTION_DAYS", 3 * 365))
PRIVACY_RETENTION_AUTO = env_bool("PRIVACY_RETENTION_AUTO", default=False)
# Access log entries older than this many days are deleted by the daily task.
PRIVACY_ACCESS_LOG_DAYS = int(os.environ.get("PRIVACY_ACCESS_LOG_DAYS", 365))
# --- Lifecycle groups (lifecycle app) ----------------------------------------------------------
# The hour (0-23, shop's time zone) at which the daily task recomputes the groups.
LIFECYCLE_RECOMPUTE_HOUR = int(os.environ.get("LIFECYCLE_RECOMPUTE_HOUR", 3))

# Content Security Policy: everything comes from our own origin; scripts need the nonce.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# Django's database sessions, read with plain SQL (backoffice/sessions.py).
SESSION_ENGINE = "django.contrib.sessions.backends.db" if STOCK_DJANGO else "backoffice.sessions"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 31536000))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"refused": {"()": "backoffice.log_filters.RefusedRequestsOnOneLine"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["refused"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-axes logs every login at INFO; failures and lockouts are WARNING and still shown.
    "loggers": {"axes": {"level": os.environ.get("AXES_LOG_LEVEL", "WARNING")}},
}
