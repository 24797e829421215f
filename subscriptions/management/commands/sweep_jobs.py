"""Queue again the provisioning jobs whose worker stopped, once.

Every `manage.py db_worker` already does this every few seconds; this command
is for a deployment that runs its workers some other way, from cron.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from subscriptions.jobs import provisioning_jobs_sweep


class Command(BaseCommand):
    help = "Queue again the provisioning jobs whose worker stopped before finishing them."

    def handle(self, *args, **options):
        self.stdout.write(provisioning_jobs_sweep())
