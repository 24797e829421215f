"""Real `manage.py db_worker` processes on the test database (PostgreSQL: another process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from subscriptions.models import ProvisioningJob

from .servers import ROOT, current_database_url


def start_worker(*options: str, **env) -> subprocess.Popen:
    """A worker with its own settings from `env`; `--batch` makes it stop once the queue is empty."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "db_worker", *options, "--no-reload",
         "--no-startup-delay", "--interval", "0.1", "--verbosity", "0"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "billing_site.settings.test",
            "DATABASE_URL": current_database_url(),
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


def wait_for(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def queue_empty() -> bool:
    """No task waits or runs: workers stopped now lose nothing.

    A worker stopped between claiming a task and starting it would leave that
    task "running" (django-tasks-db's worker exits at once when no task runs).
    """
    return not DBTaskResult.objects.filter(
        status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING]
    ).exists()


def every_job_done(jobs: int | None = None) -> bool:
    """Every provisioning job (`jobs` of them, when given) succeeded and the queue is empty
    (the emails the jobs queued too)."""
    succeeded = not ProvisioningJob.objects.exclude(
        status=ProvisioningJob.Status.SUCCEEDED
    ).exists()
    counted = jobs is None or ProvisioningJob.objects.count() == jobs
    return counted and succeeded and queue_empty()


def kill(worker: subprocess.Popen) -> None:
    """SIGKILL, as an out-of-memory killer or a lost machine stops a worker: no clean-up runs."""
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=10)


def stop_cleanly(workers: list[subprocess.Popen]) -> None:
    """SIGTERM, as a deployment stops workers: each finishes its task and exits with 0."""
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        output, _ = worker.communicate(timeout=20)
        assert worker.returncode == 0, output
