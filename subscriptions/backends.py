"""Sign in with an email address."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from catalog.selectors import STAND_IN_PK, PreparedRead


def _user_fields() -> list[str]:
    return [field.attname for field in get_user_model()._meta.concrete_fields]


# The signed-in user, read on every request: its SQL built once per process, as the
# checkout's reads are (building it through the ORM cost more CPU than running it).
_USER = PreparedRead(
    lambda pk: get_user_model()._default_manager.filter(pk=pk).values_list(*_user_fields()),
    STAND_IN_PK,
)


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

    def get_user(self, user_id: Any) -> Any:
        """The active user `user_id`, as ModelBackend.get_user reads them (None: no such user
        or not active)."""
        rows = _USER.read(user_id)
        if not rows:
            return None
        user = get_user_model().from_db(_USER.db, _user_fields(), rows[0])
        return user if self.user_can_authenticate(user) else None
