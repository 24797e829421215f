"""The demo store can take money: the test gateway and a bank transfer, on in every currency."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from payments.models import BankTransferGateway, GatewayInstance, TestCardGateway

pytestmark = pytest.mark.django_db


def test_the_demo_gateways_load_once_and_take_every_store_currency(settings):
    call_command("load_demo_gateways")
    call_command("load_demo_gateways")

    assert GatewayInstance.objects.count() == 2
    test = TestCardGateway.objects.get()
    assert "no real money" in test.name
    assert test.currency_list == settings.BILLING_CURRENCIES and test.is_active
    assert "IBAN" in BankTransferGateway.objects.get().instructions
