"""Staff forms of payments and refunds, and the admin form of gateway instances."""

from __future__ import annotations

from datetime import datetime, time

from django import forms
from django.utils import timezone

from provisioning.forms import ProviderInstanceForm

from .models import CreditEntry, GatewayInstance, Payment
from .services import credit_balance

# The admin's form of an instance: secrets write-only, as provider instances have them.
GatewayInstanceForm = ProviderInstanceForm

STAFF_METHODS = [
    (value, label)
    for value, label in Payment.Method.choices
    if value not in (Payment.Method.ACCOUNT_CREDIT,)
]


class RecordPaymentForm(forms.Form):
    """What staff type when money reached us: the amount, when, how and its reference."""

    amount = forms.DecimalField(max_digits=12, decimal_places=2, min_value=0.01)
    received_on = forms.DateField(
        label="Date received", widget=forms.DateInput(attrs={"type": "date"})
    )
    method = forms.ChoiceField(choices=STAFF_METHODS, initial=Payment.Method.BANK_TRANSFER)
    gateway = forms.ModelChoiceField(
        queryset=GatewayInstance.objects.all(),
        required=False,
        help_text="The gateway the money came through, if any (e.g. the bank account).",
    )
    transaction_id = forms.CharField(
        max_length=255, required=False, help_text="The bank's or gateway's id of the transfer."
    )
    reference = forms.CharField(max_length=255, required=False)

    def clean_received_on(self):
        received_on = self.cleaned_data["received_on"]
        if received_on > timezone.localdate():
            raise forms.ValidationError("Money cannot be received in the future.")
        return received_on

    def received_at(self) -> datetime:
        """Today's payments at the present time; earlier days at noon, not midnight UTC."""
        day = self.cleaned_data["received_on"]
        if day == timezone.localdate():
            return timezone.now()
        return timezone.make_aware(datetime.combine(day, time(12)))


class RefundForm(forms.Form):
    amount = forms.DecimalField(max_digits=12, decimal_places=2, min_value=0.01)
    reason = forms.CharField(max_length=200, required=False)


class CreditAdjustmentForm(forms.ModelForm):
    """Staff give account credit (or take back what is there) with a note saying why."""

    class Meta:
        model = CreditEntry
        fields = ["customer", "amount", "note"]
        help_texts = {"amount": "Positive gives credit, negative takes it back."}

    def clean(self):
        cleaned_data = super().clean()
        customer, amount = cleaned_data.get("customer"), cleaned_data.get("amount")
        if customer is not None and amount is not None:
            if amount.amount == 0:
                self.add_error("amount", "Enter an amount other than zero.")
            elif amount.amount < 0:
                available = credit_balance(customer=customer, currency=str(amount.currency))
                if available < -amount:
                    self.add_error("amount", f"The customer has {available} of credit.")
        return cleaned_data
