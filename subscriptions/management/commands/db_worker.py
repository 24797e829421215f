"""`manage.py db_worker`: django-tasks-db's worker, which also sweeps for jobs of dead workers.

django-tasks-db has no lease or heartbeat: a worker killed mid-task leaves its
task and its provisioning job "running" for ever. So every worker also runs
`provisioning_jobs_sweep()`, once at start and then every few seconds in a
thread of its own: as long as one worker lives, the jobs of the others are
queued again once their lease runs out, with no cron entry to forget.

This command overrides django-tasks-db's own (Django picks the command of the
app listed first in INSTALLED_APPS, as staticfiles does with runserver), so
the `db_worker` everybody runs is this one.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.db import connections
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands import db_worker

from subscriptions.jobs import provisioning_jobs_sweep, sweep_interval_seconds

logger = logging.getLogger("subscriptions.jobs")


def sweep_once() -> None:
    try:
        outcome = provisioning_jobs_sweep()
    except Exception:  # a database hiccup must not stop the sweeping for good
        logger.exception("Sweeping provisioning jobs failed; trying again later.")
    else:
        logger.info("Swept provisioning jobs: %s", outcome)


def sweep_forever() -> None:
    while True:
        time.sleep(sweep_interval_seconds())
        sweep_once()
        # This thread's own connections: closed rather than held between sweeps.
        connections.close_all()


class Command(db_worker.Command):
    help = (
        "Run a database background worker; it also queues again the provisioning jobs "
        "of workers that stopped."
    )

    def handle(self, *args, reload: bool, batch: bool, **options) -> None:
        reloading = reload and not batch  # the worker ignores --reload with --batch
        # With the reloader, the process that runs tasks is its child: only it sweeps.
        if not reloading or os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
            sweep_once()
            if not batch:
                # A daemon thread dies with the worker, whichever way the worker stops.
                threading.Thread(target=sweep_forever, name="job-sweeper", daemon=True).start()
        super().handle(*args, reload=reload, batch=batch, **options)
