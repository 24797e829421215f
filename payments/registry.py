"""The explicit list of payment gateway plugins. See CONTRIBUTING.md to add one."""

from __future__ import annotations

from functools import cache

from django.utils.module_loading import import_string

GATEWAYS = {
    "bank_transfer": "payments.gateways.bank_transfer.BankTransferPlugin",
    "test": "payments.gateways.testcards.TestCardPlugin",
    "stripe": "payments.gateways.stripe_checkout.StripePlugin",
}


@cache
def get_gateway(key: str):
    try:
        path = GATEWAYS[key]
    except KeyError:
        raise LookupError(f"No payment gateway is registered as “{key}”.") from None
    return import_string(path)()


def all_gateways() -> list:
    return [get_gateway(key) for key in GATEWAYS]
