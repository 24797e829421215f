"""Renewals, trials ending, grace, suspension, downgrades, cancellations and reminders: run from cron.

Safe to run as often as you like (every 15 minutes is plenty): each period is
billed once, whatever the number of runs.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from subscriptions.billing import services_run_billing


class Command(BaseCommand):
    help = (
        "Bill due renewals, end trials, apply grace and suspension, plan changes and cancellations; "
        "send trial-ending and renewal reminders."
    )

    def handle(self, *args, **options):
        self.stdout.write(str(services_run_billing()))
