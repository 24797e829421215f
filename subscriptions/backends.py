"""Sign in with an email address."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class EmailBackend(ModelBackend):
    """Customers' login is their email; ModelBackend after it keeps staff usernames working."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        email = kwargs.get("email", username)
        if not email or "@" not in email or password is None:
            return None
        User = get_user_model()
        for user in User._default_manager.filter(email__iexact=email.strip()):
            if user.check_password(password) and self.user_can_authenticate(user):
                return user
        # Spend the same time when nobody matches, like ModelBackend does.
        User().set_password(password)
        return None
