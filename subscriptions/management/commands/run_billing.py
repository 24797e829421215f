"""Renewals, trials ending, grace, suspension, termination, downgrades, cancellations and
reminders: run from cron, or with --every as a process of its own (bin/demo runs it so).

Safe to run as often as you like (every 15 minutes is plenty): each period is
billed once, whatever the number of runs.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from subscriptions.billing import services_run_billing


class Command(BaseCommand):
    help = (
        "Bill due renewals, end trials, apply grace, suspension and termination, plan changes and "
        "cancellations; send trial-ending, renewal and termination reminders."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every",
            type=int,
            metavar="SECONDS",
            help="Run again every SECONDS until stopped, for a host without cron (the demo).",
        )

    def handle(self, *args, every: int | None = None, **options):
        if every is None:
            self.stdout.write(str(services_run_billing()))
            return
        if every < 1:
            self.stderr.write("--every takes a number of seconds above zero.")
            raise SystemExit(2)
        while True:
            started = time.monotonic()
            self.stdout.write(f"{timezone.now():%Y-%m-%d %H:%M:%S} {services_run_billing()}")
            self.stdout.flush()
            # Counted from the run's start, so runs stay `every` seconds apart however long
            # each took.
            time.sleep(max(every - (time.monotonic() - started), 0))
