"""Customer accounts: the email address is the login."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from catalog.errors import ErrorCode

from .models import Customer

EMAIL_TAKEN = "An account with this email address already exists."


def email_taken(email: str) -> bool:
    """Whether an account already logs in with `email`, in any letter case.

    The username is checked too: it is the address, so the database's unique
    username would refuse the same address however the email field was stored.
    """
    User = get_user_model()
    return (
        User.objects.filter(email__iexact=email).exists()
        or User.objects.filter(username__iexact=email).exists()
    )


@transaction.atomic
def customer_sign_up(*, email: str, password: str) -> Customer:
    """A customer account; the email is the login (and the username, which keeps it unique)."""
    email = email.strip().lower()
    if email_taken(email):
        raise ValidationError({"email": ValidationError(EMAIL_TAKEN, code=ErrorCode.EMAIL_TAKEN)})
    user = get_user_model()(username=email, email=email)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    return user
