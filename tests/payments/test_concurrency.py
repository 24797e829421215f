"""Money under concurrent writes, on a real PostgreSQL server.

Each thread has its own database connection (Django's are per thread), so
these are real concurrent transactions racing for the same rows.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from payments.models import GatewayInstance, Payment, StripeGateway, TestCardGateway
from payments.services import credit_balance, invoice_paid, payment_record, payment_refund
from subscriptions.invoicing import invoice_issue
from subscriptions.models import Invoice, Order
from subscriptions.ordering import order_cancel
from tests.factories import place_order, usd
from tests.support.concurrency import race
from tests.support.stripe_standin import event, paid_session, sign

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_fifty_invoices_issued_at_once_get_fifty_consecutive_numbers(customer):
    assert connection.vendor == "postgresql"
    year = timezone.localtime().year

    def issue():
        with transaction.atomic():
            invoice = Invoice.objects.create(
                customer=customer, currency="USD", total=usd(1), due_at=timezone.now()
            )
            invoice_issue(invoice=invoice)

    outcomes = race([issue] * 50)

    assert outcomes == ["ok"] * 50, outcomes
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"INV-{year}-{n:06d}" for n in range(1, 51)]


def test_two_staff_refunds_racing_never_exceed_what_was_paid(customer):
    gateway = TestCardGateway.objects.create(name="Test", currencies="USD")
    invoice = place_order(customer).invoices.get()
    payment = payment_record(
        invoice=invoice, amount=usd(19), method="card", gateway=gateway, transaction_id="ch_1"
    )

    outcomes = race([lambda: payment_refund(payment=payment, amount=usd(12))] * 2)

    assert sorted(outcomes) == ["ok", "refund_amount"], outcomes
    payment.refresh_from_db()
    assert payment.refunded == usd(12)
    assert payment.credit_notes.count() == 1


@pytest.mark.parametrize("round_", range(4))
def test_a_payment_racing_a_cancellation_leaves_a_consistent_state(customer, round_):
    gateway = GatewayInstance.objects.first() or TestCardGateway.objects.create(
        name="Test", currencies="USD"
    )
    order = place_order(customer)
    invoice = order.invoices.get()

    def pay():
        payment_record(
            invoice=invoice,
            amount=usd(19),
            method="card",
            gateway=gateway,
            transaction_id=f"ch_race_{round_}",
        )

    outcomes = race([pay, lambda: order_cancel(order=order)])

    order.refresh_from_db()
    invoice.refresh_from_db()
    payment = Payment.objects.get(invoice=invoice)
    if order.status == Order.Status.PAID:
        # the payment came first: the cancellation was refused
        assert outcomes == ["ok", "order_not_cancellable"], outcomes
        assert invoice.status == Invoice.Status.PAID
        assert invoice_paid(invoice) == usd(19) and payment.credited == usd(0)
    else:
        # the cancellation came first: the money taken is the customer's credit
        assert outcomes == ["ok", "ok"], outcomes
        assert order.status == Order.Status.CANCELLED
        assert invoice.status == Invoice.Status.CANCELLED
        assert payment.credited == usd(19)
        assert credit_balance(customer=customer, currency="USD") == usd(19)
    assert set(order.services.values_list("status", flat=True)) == (
        {"pending"} if order.status == Order.Status.PAID else {"cancelled"}
    )


def test_the_same_webhook_delivered_twice_at_once_records_one_payment(customer):
    gateway = StripeGateway.objects.create(
        name="Stripe", currencies="USD", secret_key="sk_test_x", webhook_secret="whsec_race"
    )
    invoice = place_order(customer).invoices.get()
    body = event("evt_race", "checkout.session.completed", paid_session(invoice, 1900, "pi_r"))
    url = reverse("payments:webhook", args=[gateway.pk])
    answers: list[str] = []

    def deliver():
        response = Client().post(
            url, data=body, content_type="application/json",
            headers={"Stripe-Signature": sign(body, "whsec_race")},
        )  # fmt: skip
        answers.append(response.json()["result"])

    outcomes = race([deliver, deliver])

    assert outcomes == ["ok", "ok"], outcomes
    assert sorted(answers)[0] == "duplicate" and sorted(answers)[1].startswith("payment ")
    assert Payment.objects.filter(invoice=invoice).count() == 1
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
