"""The explicit list of payment gateway plugins. See CONTRIBUTING.md to add one."""

from __future__ import annotations

from functools import cache

from django.utils.module_loading import import_string

from .gateways.base import Gateway

GATEWAYS = {
    "bank_transfer": "payments.gateways.bank_transfer.BankTransferPlugin",
    "test": "payments.gateways.testcards.TestCardPlugin",
    "stripe": "payments.gateways.stripe_checkout.StripePlugin",
}


@cache
def get_gateway(key: str) -> Gateway:
    try:
        path = GATEWAYS[key]
    except KeyError:
        raise LookupError(f"No payment gateway is registered as “{key}”.") from None
    return import_string(path)()


def all_gateways() -> list[Gateway]:
    return [get_gateway(key) for key in GATEWAYS]
