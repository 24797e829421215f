from __future__ import annotations

from django.core.management.base import BaseCommand

from catalog.demo import load_demo


class Command(BaseCommand):
    help = "Loads the demo store (video services and VPS catalogs) once."

    def handle(self, *args, **options):
        if load_demo():
            self.stdout.write(
                self.style.SUCCESS("Demo catalogs loaded: /store/video/, /store/vps/")
            )
        else:
            self.stdout.write("Demo catalogs are already loaded.")
