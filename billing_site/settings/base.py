"""Settings shared by every environment; values come from the environment."""

from __future__ import annotations

from pathlib import Path

import dj_database_url

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
    "django_tasks_db",
    "catalog",
    "provisioning",
    "storefront",
    "subscriptions",
    "payments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
STATIC_ROOT = BASE_DIR / "staticfiles"
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
    "subscriptions.backends.EmailBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "subscriptions:account"
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "store@localhost")

# Provider calls: attempts before a job needs staff, and the first retry delay
# (doubled on each attempt).
PROVISIONING_MAX_ATTEMPTS = env_int("PROVISIONING_MAX_ATTEMPTS", 5)
PROVISIONING_RETRY_BASE_SECONDS = env_int("PROVISIONING_RETRY_BASE_SECONDS", 30)

# The billing run reminds customers this many days ahead of a trial's end and
# of a renewal (0 sends no reminders).
BILLING_REMINDER_DAYS = env_int("BILLING_REMINDER_DAYS", 3)

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
