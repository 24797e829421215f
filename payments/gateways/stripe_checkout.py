"""Stripe through the official SDK: Checkout Sessions, refunds, signed webhooks.

Every API call carries an idempotency key, so a retried request (ours or the
SDK's own network retries) acts once at Stripe. Payments are recorded from
webhooks only, whose signature and age the SDK verifies; the payment intent id
is the transaction id, so the session's and the intent's events for one
payment, in any order and however often, record one payment.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import stripe
from django import forms
from django.conf import settings
from djmoney.money import Money

from .base import (
    ChargeRequest,
    ChargeResult,
    ConnectionResult,
    Gateway,
    GatewayError,
    GatewayEvent,
    RefundResult,
    WebhookRejected,
)

# Stripe's default tolerance: a signed event older than this is a replay.
WEBHOOK_TOLERANCE_SECONDS = 300
PAID_SESSION_EVENTS = {"checkout.session.completed", "checkout.session.async_payment_succeeded"}


def minor_units(amount: Money) -> int:
    """Cents: the store's currencies have two decimal places."""
    return int((amount.amount * 100).to_integral_exact())


def from_minor_units(value: int, currency: str) -> Money:
    return Money(Decimal(value) / 100, currency.upper())


class SaveCardForm(forms.Form):
    save_card = forms.BooleanField(
        label="Save the card to pay renewals automatically", required=False, initial=True
    )


class StripePlugin(Gateway):
    key = "stripe"
    name = "Stripe"
    online = True
    redirects = True
    payment_form = SaveCardForm

    def client(self, instance) -> stripe.StripeClient:
        return stripe.StripeClient(
            instance.secret_key,
            base_addresses={"api": settings.STRIPE_API_BASE},
            max_network_retries=2,
        )

    def test_connection(self, instance) -> ConnectionResult:
        try:
            balance = self.client(instance).v1.balance.retrieve()
        except stripe.StripeError as error:
            return ConnectionResult(False, error.user_message or str(error))
        mode = "live" if balance.livemode else "test"
        return ConnectionResult(True, f"Connected to Stripe ({mode} mode).")

    def checkout_url(
        self,
        instance,
        *,
        invoice,
        amount,
        customer_email,
        success_url,
        cancel_url,
        idempotency_key,
        save_card=False,
    ) -> str:
        metadata = {"invoice_id": str(invoice.pk), "invoice_number": invoice.number}
        intent: dict[str, Any] = {"metadata": metadata}
        extra: dict[str, Any] = {}
        if save_card:
            # Kept at Stripe for renewals: a Stripe customer to attach the card to.
            intent["setup_future_usage"] = "off_session"
            extra["customer_creation"] = "always"
        try:
            session = self.client(instance).v1.checkout.sessions.create(
                params={  # type: ignore[arg-type]  # a plain dict; the SDK's TypedDict is stricter
                    "mode": "payment",
                    "customer_email": customer_email,
                    "client_reference_id": str(invoice.pk),
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": str(amount.currency).lower(),
                                "unit_amount": minor_units(amount),
                                "product_data": {"name": f"Invoice {invoice.number}"},
                            },
                        }
                    ],
                    "metadata": metadata,
                    "payment_intent_data": intent,
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                    **extra,
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as error:
            raise GatewayError(error.user_message or str(error)) from error
        if not session.url:
            raise GatewayError("Stripe returned a Checkout Session without a URL.")
        return session.url

    def refund(self, instance, payment, amount, idempotency_key: str) -> RefundResult:
        try:
            refund = self.client(instance).v1.refunds.create(
                params={"payment_intent": payment.transaction_id, "amount": minor_units(amount)},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as error:
            raise GatewayError(error.user_message or str(error)) from error
        ok = refund.status in ("succeeded", "pending")
        return RefundResult(ok=ok, refund_id=refund.id, message=refund.status or "")

    def charge_saved(self, instance, method, request: ChargeRequest) -> ChargeResult:
        try:
            intent = self.client(instance).v1.payment_intents.create(
                params={
                    "amount": minor_units(request.amount),
                    "currency": str(request.amount.currency).lower(),
                    "customer": method.gateway_customer_id,
                    "payment_method": method.gateway_method_id,
                    "off_session": True,
                    "confirm": True,
                    "description": f"Invoice {request.invoice_number}",
                    "metadata": request.data,
                },
                options={"idempotency_key": request.idempotency_key},
            )
        except stripe.CardError as error:
            # A decline: the attempt is recorded as failed, the schedule retries it.
            return ChargeResult(False, "", error.user_message or str(error))
        except stripe.StripeError as error:
            raise GatewayError(error.user_message or str(error)) from error
        if intent.status != "succeeded":
            return ChargeResult(False, "", f"The charge is {intent.status.replace('_', ' ')}.")
        return ChargeResult(True, intent.id, "Charged the saved card.")

    def forget_method(self, instance, method) -> None:
        try:
            self.client(instance).v1.payment_methods.detach(
                method.gateway_method_id,
                options={"idempotency_key": f"detach-{method.gateway_method_id}"},
            )
        except stripe.StripeError as error:
            raise GatewayError(error.user_message or str(error)) from error

    def parse_webhook(self, instance, payload: bytes, headers) -> GatewayEvent:
        try:
            event = stripe.Webhook.construct_event(
                payload,
                headers.get("Stripe-Signature", ""),
                instance.webhook_secret,
                tolerance=WEBHOOK_TOLERANCE_SECONDS,
            )
        except (ValueError, stripe.SignatureVerificationError) as error:
            raise WebhookRejected(str(error)) from error
        try:
            return self._event(event)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise WebhookRejected(f"The event's body is not as Stripe sends it: {error}") from error

    def _event(self, event) -> GatewayEvent:
        data = event.data.object.to_dict()
        metadata = data.get("metadata") or {}
        invoice_id = metadata.get("invoice_id", "")
        invoice_id = int(invoice_id) if str(invoice_id).isdigit() else None
        if event.type in PAID_SESSION_EVENTS and data.get("payment_status") == "paid":
            return GatewayEvent(
                event_id=event.id,
                type=event.type,
                invoice_id=invoice_id,
                amount=from_minor_units(data["amount_total"], data["currency"]),
                transaction_id=data.get("payment_intent") or "",
            )
        if event.type == "payment_intent.succeeded":
            saved = data.get("setup_future_usage") == "off_session" and data.get("customer")
            method_id = data.get("payment_method") or ""
            return GatewayEvent(
                event_id=event.id,
                type=event.type,
                invoice_id=invoice_id,
                amount=from_minor_units(data["amount_received"], data["currency"]),
                transaction_id=data["id"],
                gateway_customer_id=data["customer"] if saved and method_id else "",
                gateway_method_id=method_id if saved else "",
                method_label=f"Card saved at Stripe ({method_id[-4:]})" if saved else "",
            )
        return GatewayEvent(event_id=event.id, type=event.type)
