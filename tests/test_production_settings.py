"""The production settings pass Django's deployment checklist with no warning."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Set by the test run itself (the browser tests allow the ORM beside Playwright's loop).
TEST_ONLY = {"DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}


def deploy_check(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **{name: value for name, value in os.environ.items() if name not in TEST_ONLY},
            "DJANGO_SETTINGS_MODULE": "billing_site.settings.production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "example.com",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_prints_no_warning_with_only_the_required_secrets_set():
    result = deploy_check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr + result.stdout


def test_hsts_can_be_turned_off_for_a_site_that_is_not_on_https_everywhere_yet():
    result = deploy_check(SECURE_HSTS_SECONDS="0")
    assert result.returncode == 1
    assert "security.W004" in result.stderr


def cache_backend(**env: str) -> str:
    environment = {
        **{
            name: value
            for name, value in os.environ.items()
            if name not in TEST_ONLY | {"REDIS_URL"}
        },
        "DJANGO_SETTINGS_MODULE": "billing_site.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "example.com",
        **env,
    }
    code = "from django.conf import settings; print(settings.CACHES['default']['BACKEND'], settings.CACHES['default'].get('LOCATION', ''))"
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_web_servers_share_a_redis_cache_when_redis_url_is_set():
    assert cache_backend(REDIS_URL="redis://cache.internal:6379/0") == (
        "django.core.cache.backends.redis.RedisCache redis://cache.internal:6379/0"
    )


def test_without_redis_url_each_server_caches_in_its_own_memory():
    assert cache_backend() == "django.core.cache.backends.locmem.LocMemCache"
