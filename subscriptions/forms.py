from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm

from catalog.errors import ErrorCode

from .accounts import EMAIL_TAKEN, email_taken
from .models import CustomerProfile, Service


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Enter the email address and password of your account.",
    }


class SignUpForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        max_length=254,  # the user's email column; the username adapts to any valid address
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if email_taken(email):
            raise forms.ValidationError(EMAIL_TAKEN, code=ErrorCode.EMAIL_TAKEN)
        return email

    def add_service_error(self, error: forms.ValidationError) -> None:
        """Show a refusal of the sign-up service on the form, on its field when it has one."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for name, errors in error.error_dict.items():
            self.add_error(name if name in self.fields else None, errors)

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords differ.")
        elif first and cleaned.get("email"):
            user = get_user_model()(username=cleaned["email"], email=cleaned["email"])
            try:
                password_validation.validate_password(first, user)
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned


class CancelServiceForm(forms.Form):
    mode = forms.ChoiceField(
        label="End the service",
        choices=Service.CancelMode.choices,
        widget=forms.RadioSelect,
        initial=Service.CancelMode.PERIOD_END,
    )


class ProfileForm(forms.ModelForm):
    class Meta:
        model = CustomerProfile
        fields = ["name", "company", "address", "country", "vat_id"]
        widgets = {
            "name": forms.TextInput(attrs={"autocomplete": "name"}),
            "company": forms.TextInput(attrs={"autocomplete": "organization"}),
            "address": forms.Textarea(attrs={"rows": 3, "autocomplete": "street-address"}),
            "country": forms.Select(attrs={"autocomplete": "country"}),
        }


class PasswordCheckForm(forms.Form):
    """A form the customer proves with their password, as Django's password change does."""

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args, customer, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer = customer

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.customer.check_password(password):
            raise forms.ValidationError("This is not your password.", code="password_incorrect")
        return password


class EmailChangeForm(PasswordCheckForm):
    email = forms.EmailField(
        label="New email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    field_order = ["email", "password"]

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if email == self.customer.email.lower():
            raise forms.ValidationError("This is already your email address.")
        if email_taken(email):
            raise forms.ValidationError(EMAIL_TAKEN, code=ErrorCode.EMAIL_TAKEN)
        return email


class CloseAccountForm(PasswordCheckForm):
    confirm = forms.BooleanField(
        label="I understand that my services end and I can no longer sign in.", required=True
    )


class UsageForm(forms.Form):
    """One usage report: the same fields whether a provider, staff or a CSV file sends it."""

    quota = forms.SlugField(max_length=64)
    quantity = forms.DecimalField(
        max_digits=20,
        decimal_places=6,
        min_value=Decimal("0.000001"),
        error_messages={"min_value": "The quantity must be above zero."},
    )
    occurred_at = forms.DateTimeField(
        label="When it happened",
        help_text="ISO 8601 with its UTC offset, e.g. 2026-03-01T12:00:00Z.",
    )
    idempotency_key = forms.CharField(max_length=200)

    def error_text(self) -> str:
        return "; ".join(
            f"{name}: {' '.join(map(str, errors))}" if name != "__all__" else " ".join(errors)
            for name, errors in self.errors.items()
        )


class ProviderUsageForm(UsageForm):
    """What a provider plugin POSTs: its service by the uuid it was given."""

    service = forms.UUIDField()


class StaffUsageForm(UsageForm):
    """Staff add usage on a service's admin page; the key is drawn when the form is shown,
    so submitting it twice records the usage once."""

    def __init__(self, *args, service: Service, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["quota"] = forms.ChoiceField(
            choices=[(item["code"], f"{item['name']} ({item['unit']})") for item in service.quotas]
        )
        self.fields["idempotency_key"].widget = forms.HiddenInput()
        self.fields["occurred_at"].help_text = "As YYYY-MM-DD HH:MM (UTC) or ISO 8601."
