"""End services whose cancellation at period end has come; run it from cron (e.g. hourly)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from subscriptions.services import services_apply_due_cancellations


class Command(BaseCommand):
    help = "Cancel the services whose requested cancellation date has passed."

    def handle(self, *args, **options):
        ended = services_apply_due_cancellations()
        self.stdout.write(f"{ended} service(s) cancelled.")
