"""The test gateway: Stripe's test card numbers approve or decline; no money moves.

It lets a newcomer and staff try the whole path (order, pay, service starts)
with nothing to sign up for. Its name says "test" wherever customers see it.
"""

from __future__ import annotations

import hashlib
from datetime import date

from django import forms

from .base import ChargeRequest, ChargeResult, ConnectionResult, Gateway, RefundResult

# Stripe's test cards (https://docs.stripe.com/testing): number → decline message, or None.
TEST_CARDS: dict[str, str | None] = {
    "4242424242424242": None,  # Visa
    "4000056655665556": None,  # Visa (debit)
    "5555555555554444": None,  # Mastercard
    "2223003122003222": None,  # Mastercard (2-series)
    "378282246310005": None,  # American Express
    "6011111111111117": None,  # Discover
    "4000000000000002": "Your card was declined.",
    "4000000000009995": "Your card has insufficient funds.",
    "4000000000009987": "Your card was declined (lost card).",
    "4000000000009979": "Your card was declined (stolen card).",
    "4000000000000069": "Your card has expired.",
    "4000000000000127": "Your card's security code is incorrect.",
    "4000000000000119": "An error occurred while processing your card. Try again.",
}


def luhn_valid(number: str) -> bool:
    digits = [int(d) for d in reversed(number)]
    total = sum(digits[0::2]) + sum(sum(divmod(d * 2, 10)) for d in digits[1::2])
    return total % 10 == 0


class CardForm(forms.Form):
    number = forms.CharField(
        label="Card number",
        max_length=23,
        help_text="Test cards only: 4242 4242 4242 4242 pays, 4000 0000 0000 0002 is declined.",
    )
    expiry = forms.RegexField(
        label="Expiry (MM/YY)",
        regex=r"^(0[1-9]|1[0-2])/\d{2}$",
        error_messages={"invalid": "Enter the expiry as MM/YY."},
    )
    cvc = forms.RegexField(
        label="CVC", regex=r"^\d{3,4}$", error_messages={"invalid": "Enter 3 or 4 digits."}
    )

    def clean_number(self):
        number = "".join(self.cleaned_data["number"].split()).replace("-", "")
        if not number.isdigit() or not 12 <= len(number) <= 19 or not luhn_valid(number):
            raise forms.ValidationError("Your card number is incorrect.")
        return number

    def clean_expiry(self):
        month, year = (int(part) for part in self.cleaned_data["expiry"].split("/"))
        today = date.today()
        if (2000 + year, month) < (today.year, today.month):
            raise forms.ValidationError("Your card has expired.")
        return self.cleaned_data["expiry"]


class TestCardPlugin(Gateway):
    key = "test"
    name = "Test gateway (no real money)"
    payment_form = CardForm

    def test_connection(self, instance) -> ConnectionResult:
        return ConnectionResult(True, "The test gateway is always reachable; it moves no money.")

    def charge(self, instance, request: ChargeRequest) -> ChargeResult:
        number = request.data.get("number", "")
        # One idempotency key, one transaction id: a retried attempt is the same payment.
        digest = hashlib.sha256(request.idempotency_key.encode()).hexdigest()[:24]
        transaction_id = f"test_ch_{digest}"
        if number not in TEST_CARDS:
            return ChargeResult(
                False, transaction_id, "The test gateway takes Stripe's test card numbers only."
            )
        decline = TEST_CARDS[number]
        if decline is not None:
            return ChargeResult(False, transaction_id, decline)
        return ChargeResult(True, transaction_id, f"Approved: card ending {number[-4:]}.")

    def refund(self, instance, payment, amount, idempotency_key: str) -> RefundResult:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
        return RefundResult(ok=True, refund_id=f"test_re_{digest}", message="Refunded (test).")
