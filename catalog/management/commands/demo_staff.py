from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

USERNAME = "admin"
EMAIL = "admin@example.com"
PASSWORD = "demo-admin-password"


class Command(BaseCommand):
    help = "Creates (or resets) the demo staff login and prints it. For demos only."

    def handle(self, *args, **options):
        User = get_user_model()
        user = User.objects.filter(username=USERNAME).first() or User(username=USERNAME)
        user.email = EMAIL
        user.is_staff = user.is_superuser = True
        user.set_password(PASSWORD)
        user.save()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo staff login: http://127.0.0.1:8000/admin/  "
                f"username {USERNAME!r}  password {PASSWORD!r}"
            )
        )
