"""Customer accounts: the email address is the login."""

from __future__ import annotations

import hashlib
import re

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models, transaction

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


def customer_username(email: str) -> str:
    """A username for the customer with this email, valid for Django's username rule.

    Customers log in by email; the username only has to be valid and unique.
    It is the email itself when the rule allows it (readable in the admin);
    otherwise (o'brien@…, "quoted"@…, longer than 150) the email with the
    refused characters replaced, plus a digest of the email, which keeps it unique.
    """
    User = get_user_model()
    username_field = User._meta.get_field(User.USERNAME_FIELD)
    assert isinstance(username_field, models.CharField) and username_field.max_length
    try:
        username_field.run_validators(email)
    except ValidationError:
        pass
    else:
        return email
    digest = hashlib.sha256(email.encode()).hexdigest()[:12]
    readable = re.sub(r"[^\w.@+-]", "_", email)[: username_field.max_length - len(digest) - 1]
    return f"{readable}-{digest}"


@transaction.atomic
def customer_sign_up(*, email: str, password: str) -> Customer:
    """A customer account; the email is the login."""
    email = email.strip().lower()
    if email_taken(email):
        raise ValidationError({"email": ValidationError(EMAIL_TAKEN, code=ErrorCode.EMAIL_TAKEN)})
    user = get_user_model()(username=customer_username(email), email=email)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    return user
