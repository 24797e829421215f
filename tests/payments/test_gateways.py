"""Gateway plugins: the registry, the test gateway's cards, bank transfer instructions."""

from __future__ import annotations

from datetime import date

import pytest
from djmoney.money import Money

from payments.gateways.base import ChargeRequest
from payments.gateways.testcards import CardForm
from payments.registry import GATEWAYS, all_gateways, get_gateway

pytestmark = pytest.mark.django_db


def charge(number: str, key="attempt-1"):
    request = ChargeRequest(
        amount=Money(19, "USD"), invoice_number="INV-2026-000001",
        customer_email="ann@example.com", idempotency_key=key, data={"number": number},
    )  # fmt: skip
    return get_gateway("test").charge(None, request)


def test_every_registered_gateway_loads_under_its_key():
    assert [gateway.key for gateway in all_gateways()] == list(GATEWAYS)


def test_an_unknown_gateway_key_is_a_lookup_error():
    with pytest.raises(LookupError):
        get_gateway("paypal")


@pytest.mark.parametrize("number", ["4242424242424242", "5555555555554444", "378282246310005"])
def test_stripes_success_cards_are_approved(number):
    result = charge(number)
    assert result.ok and result.message.endswith(number[-4:] + ".")


@pytest.mark.parametrize(
    "number, message",
    [
        ("4000000000000002", "Your card was declined."),
        ("4000000000009995", "Your card has insufficient funds."),
        ("4000000000000069", "Your card has expired."),
        ("4111111111111111", "The test gateway takes Stripe's test card numbers only."),
    ],
)
def test_stripes_decline_cards_and_real_looking_numbers_are_declined(number, message):
    result = charge(number)
    assert not result.ok and result.message == message


def test_one_attempt_key_is_one_transaction_id():
    assert (
        charge("4242424242424242", "k1").transaction_id
        == charge("4242424242424242", "k1").transaction_id
    )
    assert (
        charge("4242424242424242", "k1").transaction_id
        != charge("4242424242424242", "k2").transaction_id
    )


def test_the_card_form_checks_the_number_expiry_and_cvc():
    next_year = f"{date.today().year % 100 + 1:02d}"
    good = CardForm({"number": "4242 4242 4242 4242", "expiry": f"12/{next_year}", "cvc": "123"})
    assert good.is_valid() and good.cleaned_data["number"] == "4242424242424242"

    bad = CardForm({"number": "4242 4242 4242 4241", "expiry": "01/20", "cvc": "12"})
    assert not bad.is_valid()
    assert bad.errors == {
        "number": ["Your card number is incorrect."],
        "expiry": ["Your card has expired."],
        "cvc": ["Enter 3 or 4 digits."],
    }


def test_bank_transfer_instructions_quote_the_invoice_number(bank_gateway, invoice):
    text = bank_gateway.plugin.instructions(bank_gateway, invoice)
    assert text.startswith("Pay to Example Hosting Ltd")
    assert f"Reference: {invoice.number}" in text


def test_a_gateway_takes_only_its_enabled_currencies_while_active(test_gateway):
    test_gateway.currencies = "EUR"
    assert test_gateway.takes("EUR") and not test_gateway.takes("USD")
    test_gateway.is_active = False
    assert not test_gateway.takes("EUR")
