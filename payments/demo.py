"""The demo store's ways to pay: a test gateway (no real money) and a bank transfer."""

from __future__ import annotations

from django.conf import settings

from .models import BankTransferGateway, GatewayInstance, TestCardGateway


def load_demo_gateways() -> bool:
    """Adds the demo gateways once; returns False when gateways exist already."""
    if GatewayInstance.objects.exists():
        return False
    currencies = ",".join(settings.BILLING_CURRENCIES)
    TestCardGateway.objects.create(
        name="Test card (demo: no real money)", currencies=currencies, sort_order=0
    )
    BankTransferGateway.objects.create(
        name="Bank transfer",
        currencies=currencies,
        sort_order=1,
        instructions="Account holder: Example Hosting Ltd\n"
        "IBAN: DE00 1234 5678 9012 3456 78\nBIC: EXAMPLEXXX",
    )
    return True
