"""Customer accounts: the email address is the login."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import models, transaction
from django.template.loader import render_to_string
from django.urls import reverse

from catalog.errors import ErrorCode, refuse

from .models import Customer, CustomerProfile, Invoice

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


# A link to confirm a new email address works this long, and once: it names the
# address it replaces, so after the change (or another one) it no longer matches.
EMAIL_CHANGE_MAX_AGE = timedelta(days=3)
EMAIL_CHANGE_SALT = "subscriptions.accounts.email_change"


def email_change_request(*, customer: Customer, new_email: str, site_url: str) -> str:
    """Email a confirmation link to `new_email`; the address changes only when it is opened.

    `site_url` is the site's address ("https://store.example/") the link starts with.
    Returns the token the link carries.
    """
    new_email = new_email.strip().lower()
    if new_email == customer.email.lower():
        raise refuse(ErrorCode.EMAIL_TAKEN, "This is already your email address.")
    if email_taken(new_email):
        raise ValidationError({"email": ValidationError(EMAIL_TAKEN, code=ErrorCode.EMAIL_TAKEN)})
    token = signing.dumps(
        {"customer": customer.pk, "from": customer.email, "to": new_email}, salt=EMAIL_CHANGE_SALT
    )
    link = site_url.rstrip("/") + reverse("subscriptions:email_confirm", args=[token])
    context = {"link": link, "new_email": new_email, "days": EMAIL_CHANGE_MAX_AGE.days}
    send_mail(
        subject="Confirm your new email address",
        message=render_to_string("subscriptions/email/email_change.txt", context),
        from_email=None,
        recipient_list=[new_email],
    )
    return token


@transaction.atomic
def email_change_confirm(*, token: str) -> Customer:
    """Apply the change a confirmation link carries; the old address is told it happened."""
    invalid = refuse(
        ErrorCode.EMAIL_TOKEN_INVALID,
        "This link is invalid or has expired. Ask for a new one from your account.",
    )
    try:
        data = signing.loads(token, salt=EMAIL_CHANGE_SALT, max_age=EMAIL_CHANGE_MAX_AGE)
    except signing.BadSignature:  # also an expired one
        raise invalid from None
    User = get_user_model()
    customer = User.objects.select_for_update().filter(pk=data.get("customer")).first()
    if customer is None or not customer.is_active or customer.email != data.get("from"):
        raise invalid
    new_email = data["to"]
    if email_taken(new_email):  # someone signed up with it since the link was sent
        raise refuse(ErrorCode.EMAIL_TAKEN, EMAIL_TAKEN)
    profile = CustomerProfile.objects.filter(customer=customer).first()
    _customer_bill_to_freeze(customer, profile or CustomerProfile(customer=customer))
    old_email = customer.email
    customer.email = new_email
    customer.username = customer_username(new_email)
    customer.full_clean(exclude=["password"])
    customer.save(update_fields=["email", "username"])
    send_mail(
        subject="Your email address was changed",
        message=render_to_string("subscriptions/email/email_changed.txt", {"new_email": new_email}),
        from_email=None,
        recipient_list=[old_email],
    )
    return customer


def customer_bill_to(*, customer: Customer, profile: CustomerProfile | None = None) -> list[str]:
    """The invoice's "Billed to" block for the customer now: their billing details (or
    their name, else their email) and their email."""
    lines = (profile or customer_profile(customer=customer)).bill_to_lines
    return [*(lines or [customer.get_full_name() or customer.email]), customer.email]


def invoice_bill_to(*, invoice: Invoice) -> list[str]:
    """The "Billed to" block the invoice prints: as it was when the invoice was issued."""
    if invoice.bill_to is not None:
        return invoice.bill_to
    return customer_bill_to(customer=invoice.customer)


def _customer_bill_to_freeze(customer: Customer, profile: CustomerProfile) -> None:
    """Before the customer's details change: their invoices keep the block they were
    issued with. Call it holding the customer's or the profile's lock, with the profile
    as saved."""
    Invoice.objects.filter(customer=customer, bill_to__isnull=True).update(
        bill_to=customer_bill_to(customer=customer, profile=profile)
    )


def customer_profile(*, customer: Customer) -> CustomerProfile:
    """The customer's billing details; an empty, unsaved one when they gave none yet."""
    try:
        return customer.profile
    except CustomerProfile.DoesNotExist:
        return CustomerProfile(customer=customer)


@transaction.atomic
def customer_profile_update(*, customer: Customer, **fields: str) -> CustomerProfile:
    """Save the customer's billing details: name, company, address, country, vat_id."""
    profile, _ = CustomerProfile.objects.select_for_update().get_or_create(customer=customer)
    _customer_bill_to_freeze(customer, profile)
    for name, value in fields.items():
        setattr(profile, name, value)
    profile.full_clean()
    profile.save()
    return profile
