"""Builders of the payment tests: an order with an unpaid invoice, and gateways."""

from __future__ import annotations

import pytest

from payments.models import BankTransferGateway, TestCardGateway
from tests.factories import place_order


@pytest.fixture
def order(customer):
    return place_order(customer)


@pytest.fixture
def invoice(order):
    return order.invoices.get()


@pytest.fixture
def test_gateway(db):
    return TestCardGateway.objects.create(name="Test card", currencies="USD,EUR")


@pytest.fixture
def bank_gateway(db):
    return BankTransferGateway.objects.create(
        name="Bank transfer",
        currencies="USD,EUR",
        instructions="Pay to Example Hosting Ltd, IBAN DE00 1234 5678 9012 3456 78.",
    )
