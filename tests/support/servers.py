"""Real processes of a deployment on 127.0.0.1: gunicorn with the production settings, Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def current_database_url() -> str:
    """The database the test runs on, as DATABASE_URL for another process."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def start_redis(redis_server: str, directory: Path) -> tuple[subprocess.Popen, str]:
    """A private Redis server that keeps nothing on disk: the process and its URL."""
    port = free_port()
    server = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return server, f"redis://127.0.0.1:{port}/0"


def production_env(*, secret_key: str, redis_url: str, static_root: Path, **extra) -> dict:
    """The variables a deployment's processes are started with, on the test database and
    plain HTTP (beside this process's own environment)."""
    return {
        "DJANGO_SETTINGS_MODULE": "billing_site.settings.production",
        "SECRET_KEY": secret_key,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_COOKIES": "false",
        "SECURE_HSTS_SECONDS": "0",
        "DATABASE_URL": current_database_url(),
        "REDIS_URL": redis_url,
        # Production serves hashed static files from a manifest, as a deployment would
        # after collectstatic: collected into the test's own directory.
        "STATIC_ROOT": str(static_root),
        **{name: str(value) for name, value in extra.items()},
    }


def collect_static(env: dict) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )


def start_gunicorn(env: dict) -> tuple[subprocess.Popen, str]:
    """One gunicorn server (one worker process) as compose.yaml runs it: the process, its URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "billing_site.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, **env},
    )  # fmt: skip
    return server, f"http://127.0.0.1:{port}"


def wait_until_serving(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            requests.get(url, timeout=5)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=15)
