"""Real `manage.py db_worker` processes on the test database (PostgreSQL: another process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def start_worker(*options: str, **env) -> subprocess.Popen:
    """A worker with its own settings from `env`; `--batch` makes it stop once the queue is empty."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", *options, "--no-reload",
         "--no-startup-delay", "--interval", "0.1", "--verbosity", "0"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "billing_site.settings.test",
            "DATABASE_URL": url,
            **{name: str(value) for name, value in env.items()},
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def wait(*workers: subprocess.Popen) -> None:
    """Wait for batch workers to finish the queue; each must exit cleanly."""
    for worker in workers:
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, output
