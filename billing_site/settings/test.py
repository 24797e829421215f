from __future__ import annotations

import tempfile
from pathlib import Path

from .base import *  # noqa: F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="billing-test-media-"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Sign-ups are counted per address in the process-wide cache, and every test
# client is 127.0.0.1; the throttle's own tests set a low limit.
SIGNUP_THROTTLE_LIMIT = 1000
# Tests empty the cache between them: never a Redis the environment points at.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
