"""What every payment gateway plugin offers the rest of the platform.

A gateway is a class with a `key` in payments/registry.py and a
GatewayInstance subclass holding one configured account of it. The services
call only the methods below; a gateway never records a payment itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from djmoney.money import Money


class NoFieldsForm(forms.Form):
    """A gateway that asks the customer for nothing on our page."""


@dataclass(frozen=True)
class ConnectionResult:
    ok: bool
    message: str


@dataclass(frozen=True)
class ChargeRequest:
    """One attempt to take `amount` for an invoice, as plain data."""

    amount: Money
    invoice_number: str
    customer_email: str
    # The same key for a retried attempt: the gateway charges once.
    idempotency_key: str
    data: dict


@dataclass(frozen=True)
class ChargeResult:
    """ok=False is a decline: recorded as a failed payment, shown to the customer."""

    ok: bool
    transaction_id: str
    message: str = ""
    method: str = "card"


@dataclass(frozen=True)
class RefundResult:
    ok: bool
    refund_id: str = ""
    message: str = ""


class GatewayError(Exception):
    """The gateway could not be reached or answered nonsense; nothing is recorded."""


class WebhookRejected(Exception):
    """A webhook whose signature, age or body does not hold up; answered 400, never handled."""


@dataclass(frozen=True)
class GatewayEvent:
    """What a verified webhook reports: a payment received for an invoice, or nothing to do."""

    event_id: str
    type: str
    invoice_id: int | None = None
    amount: Money | None = None
    transaction_id: str = ""
    # A method the customer asked the gateway to keep for later charges.
    gateway_customer_id: str = ""
    gateway_method_id: str = ""
    method_label: str = ""


class Gateway:
    key: str = ""
    name: str = ""
    # True: customers pay on our page through charge(); False: they follow instructions.
    online: bool = True
    # The customer's form on the invoice page (card fields of the test gateway).
    payment_form: type[forms.Form] = NoFieldsForm
    # True: the customer pays on the gateway's own page (checkout_url), which reports back
    # through a signed webhook (parse_webhook).
    redirects: bool = False

    def test_connection(self, instance) -> ConnectionResult:
        raise NotImplementedError

    def instructions(self, instance, invoice) -> str:
        """What the customer reads to pay an invoice by hand ("" for an online gateway)."""
        return ""

    def charge(self, instance, request: ChargeRequest) -> ChargeResult:
        raise NotImplementedError

    def refund(self, instance, payment, amount: Money, idempotency_key: str) -> RefundResult:
        """Give `amount` of `payment` back to the customer through the gateway."""
        raise NotImplementedError

    def checkout_url(
        self,
        instance,
        *,
        invoice,
        amount: Money,
        customer_email: str,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
        save_card: bool = False,
    ) -> str:
        """The gateway's page where the customer pays `amount` of `invoice` (redirects only).

        `save_card`: the customer asked to keep the card for renewals.
        """
        raise NotImplementedError

    def charge_saved(self, instance, method, request: ChargeRequest) -> ChargeResult:
        """Charge a saved method with the customer away (a renewal); same contract as charge()."""
        raise NotImplementedError

    def forget_method(self, instance, method) -> None:
        """Tell the gateway to drop a saved method; raise GatewayError when it cannot."""

    def parse_webhook(self, instance, payload: bytes, headers) -> GatewayEvent:
        """The verified event of a webhook request; raise WebhookRejected otherwise."""
        raise NotImplementedError
