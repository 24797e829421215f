"""Stripe through the official SDK, against a local stand-in of its API and signed webhooks."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from payments.models import CreditNote, Payment, StripeGateway, WebhookEvent
from payments.services import payment_record, payment_refund
from subscriptions.models import Invoice, Order
from tests.factories import usd
from tests.support.stripe_standin import (
    GOOD_KEY,
    event,
    paid_session,
    sign,
    start_stripe,
    succeeded_intent,
)

pytestmark = pytest.mark.django_db
SECRET = "whsec_standin"


@pytest.fixture
def stripe_api(settings):
    standin = start_stripe()
    settings.STRIPE_API_BASE = standin.url
    yield standin
    standin.stop()


@pytest.fixture
def stripe_gateway(db):
    return StripeGateway.objects.create(
        name="Card (Stripe)", currencies="USD,EUR", secret_key=GOOD_KEY, webhook_secret=SECRET
    )


def post_webhook(client, gateway, body: str, signature: str | None = None):
    return client.post(
        reverse("payments:webhook", args=[gateway.pk]),
        data=body,
        content_type="application/json",
        headers={"Stripe-Signature": signature if signature is not None else sign(body, SECRET)},
    )


def test_the_connection_test_reads_the_balance_with_the_secret_key(stripe_api, stripe_gateway):
    result = stripe_gateway.plugin.test_connection(stripe_gateway)
    assert result.ok and result.message == "Connected to Stripe (test mode)."
    assert stripe_api.requests[-1].path == "/v1/balance"

    stripe_gateway.secret_key = "sk_test_wrong"
    result = stripe_gateway.plugin.test_connection(stripe_gateway)
    assert not result.ok and "Invalid API Key" in result.message


def test_paying_sends_the_customer_to_a_checkout_session_of_the_balance(
    customer_client, invoice, stripe_api, stripe_gateway
):
    url = reverse("payments:pay", args=[invoice.pk, stripe_gateway.pk])
    response = customer_client.post(url, {"attempt_key": "k1"})

    assert response.status_code == 302
    assert response.url.startswith(f"{stripe_api.url}/c/pay/cs_test_")
    sent = stripe_api.requests[-1]
    assert sent.path == "/v1/checkout/sessions"
    assert sent.form["line_items[0][price_data][unit_amount]"] == "1900"
    assert sent.form["line_items[0][price_data][currency]"] == "usd"
    assert sent.form["metadata[invoice_id]"] == str(invoice.pk)
    assert sent.headers["Idempotency-Key"] == f"checkout-{invoice.pk}-19.00-k1"
    # The same form sent again is the same session at Stripe.
    assert customer_client.post(url, {"attempt_key": "k1"}).url == response.url
    assert not Payment.objects.exists()


def test_stripe_unreachable_says_so_and_charges_nothing(
    customer_client, invoice, stripe_gateway, settings
):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # the discard port: connection refused
    response = customer_client.post(reverse("payments:pay", args=[invoice.pk, stripe_gateway.pk]))
    assert response.status_code == 409
    assert "could not be reached; nothing was charged" in response.content.decode()


def test_a_signed_completed_session_records_the_payment_and_settles_the_invoice(
    client, invoice, stripe_gateway
):
    body = event("evt_1", "checkout.session.completed", paid_session(invoice, 1900, "pi_1"))

    response = post_webhook(client, stripe_gateway, body)

    assert response.status_code == 200
    payment = Payment.objects.get()
    assert (payment.transaction_id, payment.amount, payment.method) == ("pi_1", usd(19), "card")
    assert Invoice.objects.get().status == Invoice.Status.PAID
    assert Order.objects.get().status == Order.Status.PAID


def test_the_same_event_delivered_twice_records_one_payment(client, invoice, stripe_gateway):
    body = event("evt_1", "checkout.session.completed", paid_session(invoice, 1000, "pi_1"))

    post_webhook(client, stripe_gateway, body)
    again = post_webhook(client, stripe_gateway, body)

    assert again.json()["result"] == "duplicate"
    assert Payment.objects.count() == 1
    assert WebhookEvent.objects.count() == 1


@pytest.mark.parametrize("intent_first", [False, True])
def test_a_sessions_and_its_intents_events_in_any_order_are_one_payment(
    client, invoice, stripe_gateway, intent_first
):
    session = event("evt_s", "checkout.session.completed", paid_session(invoice, 1900, "pi_7"))
    intent = event("evt_i", "payment_intent.succeeded", succeeded_intent(invoice, 1900, "pi_7"))

    for body in [intent, session] if intent_first else [session, intent]:
        assert post_webhook(client, stripe_gateway, body).status_code == 200

    assert Payment.objects.get().transaction_id == "pi_7"
    assert WebhookEvent.objects.count() == 2


@pytest.mark.parametrize(
    "signature",
    ["", "t=1,v1=00", sign("{}", "whsec_someone_else")],
    # Named: the signature holds the time, and test ids must match across xdist workers.
    ids=["missing", "malformed", "other-secret"],
)
def test_an_unsigned_or_wrongly_signed_webhook_is_refused(
    client, invoice, stripe_gateway, signature
):
    body = event("evt_1", "checkout.session.completed", paid_session(invoice, 1900, "pi_1"))
    response = post_webhook(client, stripe_gateway, body, signature)
    assert response.status_code == 400
    assert not Payment.objects.exists() and not WebhookEvent.objects.exists()


def test_a_replayed_event_older_than_the_tolerance_is_refused(client, invoice, stripe_gateway):
    body = event("evt_1", "checkout.session.completed", paid_session(invoice, 1900, "pi_1"))
    old = sign(body, SECRET, timestamp=int(time.time()) - 600)
    assert post_webhook(client, stripe_gateway, body, old).status_code == 400
    assert not Payment.objects.exists()


def test_an_event_of_no_interest_is_acknowledged_once(client, stripe_gateway):
    body = event("evt_9", "customer.created", {"id": "cus_1", "object": "customer"})
    assert post_webhook(client, stripe_gateway, body).json()["result"] == "ignored"


def test_a_webhook_for_a_gateway_that_is_not_stripe_is_not_found(client, test_gateway):
    response = client.post(
        reverse("payments:webhook", args=[test_gateway.pk]), data="{}",
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 404


def test_a_refund_goes_through_stripe_with_an_idempotency_key(invoice, stripe_api, stripe_gateway):
    payment = payment_record(
        invoice=invoice, amount=usd(19), method="card", gateway=stripe_gateway,
        transaction_id="pi_5",
    )  # fmt: skip

    note = payment_refund(payment=payment, amount=usd("7.25"), reason="outage")

    sent = stripe_api.requests[-1]
    assert sent.path == "/v1/refunds"
    assert sent.form == {"payment_intent": "pi_5", "amount": "725"}
    assert sent.headers["Idempotency-Key"] == f"refund-{payment.pk}-7.25"
    assert note.reason.startswith("outage – re_")
    assert CreditNote.objects.get().amount == usd("7.25")


def test_a_refund_stripe_cannot_reach_is_not_recorded(invoice, stripe_gateway, settings):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    payment = payment_record(
        invoice=invoice, amount=usd(19), method="card", gateway=stripe_gateway,
        transaction_id="pi_5",
    )  # fmt: skip
    with pytest.raises(Exception) as refusal:
        payment_refund(payment=payment, amount=usd(1))
    assert getattr(refusal.value, "code", "") == "gateway_unreachable"
    payment.refresh_from_db()
    assert payment.refunded == usd(0) and not CreditNote.objects.exists()


def test_a_signed_event_with_a_body_unlike_stripes_is_refused(client, stripe_gateway):
    body = event("evt_odd", "checkout.session.completed", {"payment_status": "paid"})
    assert post_webhook(client, stripe_gateway, body).status_code == 400
    assert not WebhookEvent.objects.exists()
