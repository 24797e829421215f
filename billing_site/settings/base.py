"""Settings shared by every environment; values come from the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

from .env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = env_bool("DEBUG", True)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "polymorphic",
    "djmoney",
    "django_tasks",
    "axes",
    "csp",
    "simple_history",
    "django_countries",
    "catalog",
    "provisioning",
    "storefront",
    "subscriptions",
    # After subscriptions, whose `db_worker` (the worker plus the job sweeper) overrides it.
    "django_tasks_db",
    "payments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "billing_site.middleware.RejectNulBytesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Names the staff user on each catalog history record (django-simple-history).
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes requires: turns a lockout into its response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "billing_site.urls"

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
                "storefront.context_processors.store",
            ],
        },
    },
]

WSGI_APPLICATION = "billing_site.wsgi.application"

# SQLite is the embedded default; DATABASE_URL selects PostgreSQL in production.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=60,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, db_worker and the billing run write to one file at once.
    # WAL lets readers run beside a writer; IMMEDIATE takes the write lock when
    # a transaction starts, so a transaction that read first never fails to
    # upgrade its lock ("database is locked"), it waits up to the timeout
    # instead. synchronous=NORMAL is safe under WAL and spares an fsync per commit.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env_int("SQLITE_BUSY_TIMEOUT_SECONDS", 20),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        **DATABASES["default"].get("OPTIONS", {}),
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "DATABASE_PREPARED_STATEMENTS", True
):
    # Server-side prepared statements: a checkout sends the same few statements on every
    # order, and PostgreSQL parsed and planned each one again. psycopg prepares a
    # statement on its second use per connection; that needs server-side binding
    # (a client-side-binding cursor never prepares). PgBouncer in transaction mode
    # cannot keep a connection's prepared statements: DATABASE_PREPARED_STATEMENTS=false.
    DATABASES["default"]["OPTIONS"] = {
        "server_side_binding": True,
        "prepare_threshold": 1,
        **DATABASES["default"].get("OPTIONS", {}),
    }

# Several web servers share cached storefront pages (and the sign-up throttle's counts)
# through Redis; one server keeps them in its own memory. The page cache stays right
# either way: pages are found under the catalog version read from the database.
REDIS_URL = env_str("REDIS_URL")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("fr", "Français")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))

# The store sells in these currencies; every paid pricing option carries an
# explicit amount in each of them (no conversion). The first is the default
# store currency, which every paid option must always be priced in.
BILLING_CURRENCIES = env_list("BILLING_CURRENCIES", "USD,EUR")
BILLING_DEFAULT_CURRENCY = BILLING_CURRENCIES[0]
CURRENCIES = BILLING_CURRENCIES
DEFAULT_CURRENCY = BILLING_DEFAULT_CURRENCY

# Icons are small pictures: bounded in bytes and in pixels.
ICON_MAX_BYTES = 512 * 1024
ICON_MAX_PIXELS = 1024

# Background jobs: Django's task API with the database backend, so a job is
# committed in the same transaction as the order that needs it.
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default"],
    }
}

# Customers sign in with their email address; staff may still use a username.
AUTHENTICATION_BACKENDS = [
    # First: refuses any login attempt while its account or address is locked out.
    "axes.backends.AxesStandaloneBackend",
    "subscriptions.backends.EmailBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Django's database sessions, their read written as SQL once (billing_site/sessions.py).
SESSION_ENGINE = "billing_site.sessions"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "subscriptions:account"
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "store@localhost")

# Provider calls: attempts before a job needs staff, and the first retry delay
# (doubled on each attempt).
PROVISIONING_MAX_ATTEMPTS = env_int("PROVISIONING_MAX_ATTEMPTS", 5)
PROVISIONING_RETRY_BASE_SECONDS = env_int("PROVISIONING_RETRY_BASE_SECONDS", 30)
# A worker holds a running job this long (longer if the plugin's timeout is):
# a job whose worker died is queued again once it runs out, by the next sweep of
# any live worker, every quarter lease (at most 15 s). The default retries a
# lost job within 75 s.
PROVISIONING_LEASE_SECONDS = env_int("PROVISIONING_LEASE_SECONDS", 60)
# Other tasks (emails, saved-card charges, billing runs) have no lease: one still
# "running" this long after it started lost its worker, and the sweep queues it
# again. They are safe to run twice (charges carry idempotency keys, a billing run
# bills what is due); at worst an email arrives twice, never not at all.
TASKS_ABANDONED_AFTER_SECONDS = env_int("TASKS_ABANDONED_AFTER_SECONDS", 30 * 60)

# The billing run reminds customers this many days ahead of a trial's end and
# of a renewal (0 sends no reminders).
BILLING_REMINDER_DAYS = env_int("BILLING_REMINDER_DAYS", 3)
# A service suspended for an unpaid invoice is terminated this many days after its
# suspension (0: never), its customer warned BILLING_REMINDER_DAYS (at least one) before.
BILLING_TERMINATE_AFTER_DAYS = env_int("BILLING_TERMINATE_AFTER_DAYS", 30)
# On PostgreSQL, a billing run with many renewals due bills them in this many processes at
# once, which share the customers as two overlapping runs do (1: in the run's own only).
BILLING_PROCESSES = env_int("BILLING_PROCESSES", 2)
# When staff move existing services to a new price, each customer is emailed at
# least this many days before the renewal that first charges it.
BILLING_PRICE_CHANGE_NOTICE_DAYS = env_int("BILLING_PRICE_CHANGE_NOTICE_DAYS", 30)

# Login throttling (django-axes, attempts kept in the database so every server
# process and machine shares them). After LOGIN_FAILURE_LIMIT wrong passwords
# the login typed and, separately, the address are locked out for
# LOGIN_LOCKOUT_MINUTES. The lockout never looks the login up, so it answers
# the same for registered and unknown emails.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # every failure, for staff, in the admin
AXES_LOCKOUT_CALLABLE = "subscriptions.throttling.lockout_response"
AXES_USERNAME_CALLABLE = "subscriptions.throttling.login_username"
AXES_CLIENT_IP_CALLABLE = "subscriptions.throttling.client_ip_address"
# Reverse proxies in front of the site that append to X-Forwarded-For; 0 means
# visitors connect directly and REMOTE_ADDR is their address.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# Sign-up attempts one address may make per window (counted in Django's cache).
SIGNUP_THROTTLE_LIMIT = env_int("SIGNUP_THROTTLE_LIMIT", 10)
SIGNUP_THROTTLE_MINUTES = env_int("SIGNUP_THROTTLE_MINUTES", 60)

# Content-Security-Policy (django-csp): scripts, styles, fonts and images only
# from this site, no inline script or style anywhere (the storefront and the
# admin keep theirs in static files), nothing may frame the pages, and forms
# post only here. Uploaded icons are served from MEDIA_URL on this site too.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [SELF],
    }
}
# Invoices: numbered when issued, gapless per year, e.g. INV-2026-000123.
BILLING_INVOICE_PREFIX = env_str("BILLING_INVOICE_PREFIX", "INV")
# The seller printed on every invoice document.
BILLING_SELLER_NAME = env_str("BILLING_SELLER_NAME", "Example Hosting Ltd")
BILLING_SELLER_ADDRESS = env_str("BILLING_SELLER_ADDRESS", "1 Example Street\n12345 Example City")
BILLING_SELLER_TAX_ID = env_str("BILLING_SELLER_TAX_ID", "")
# A file path or URL of the logo printed on invoices (empty: none).
BILLING_SELLER_LOGO = env_str("BILLING_SELLER_LOGO", "")

# Renewals are invoiced this many days before they fall due (WHMCS's "invoice generation
# days"); 0 invoices them the moment they fall due.
BILLING_INVOICE_DAYS_BEFORE_DUE = env_int("BILLING_INVOICE_DAYS_BEFORE_DUE", 0)

# A declined automatic charge of a renewal is tried again this many days after each attempt.
BILLING_RETRY_DAYS = [int(days) for days in env_list("BILLING_RETRY_DAYS", "1,3,5")]

# Stripe's API address. Only the tests point it at a local stand-in server.
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "https://api.stripe.com")
