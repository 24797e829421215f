"""Recording money against an invoice: payment_record, the one way in."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from djmoney.money import Money

from payments.models import CreditEntry, Payment
from payments.services import (
    credit_adjust,
    credit_balance,
    invoice_balance,
    payment_record,
)
from subscriptions.models import Invoice, Order, ProvisioningJob
from subscriptions.ordering import order_cancel
from tests.factories import place_order, usd

pytestmark = pytest.mark.django_db


def test_paying_the_invoice_in_full_pays_the_order_and_queues_provisioning(customer, staff_user):
    order = place_order(customer, quantity=2)
    invoice = order.invoices.get()

    payment = payment_record(
        invoice=invoice, amount=invoice.total, method="bank_transfer", recorded_by=staff_user
    )

    invoice.refresh_from_db()
    order.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED and payment.customer == customer
    assert payment.recorded_by == staff_user
    assert invoice.status == Invoice.Status.PAID and invoice.paid_at
    assert order.status == Order.Status.PAID
    assert ProvisioningJob.objects.filter(action="create").count() == 2


def test_part_payments_add_up_and_the_last_one_settles_the_invoice(invoice):
    assert invoice.total == usd(19)

    payment_record(invoice=invoice, amount=usd(10), method="bank_transfer")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.UNPAID
    assert invoice_balance(invoice) == usd(9)
    assert not ProvisioningJob.objects.exists()

    payment_record(invoice=invoice, amount=usd(9), method="cash")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert ProvisioningJob.objects.count() == 1


def test_an_overpayment_settles_the_invoice_and_the_rest_becomes_account_credit(invoice, customer):
    payment = payment_record(invoice=invoice, amount=usd(25), method="bank_transfer")

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert payment.credited == usd(6)
    assert credit_balance(customer=customer, currency="USD") == usd(6)
    assert CreditEntry.objects.get().kind == CreditEntry.Kind.OVERPAYMENT


@pytest.mark.parametrize(
    "amount, code", [(Money(1, "EUR"), "payment_currency"), (usd(0), "payment_amount")]
)
def test_it_refuses_a_payment_that_does_not_fit_the_invoice(invoice, amount, code):
    with pytest.raises(ValidationError) as refusal:
        payment_record(invoice=invoice, amount=amount, method="cash")
    assert refusal.value.code == code
    assert not Payment.objects.exists()


def test_staff_cannot_record_a_payment_on_a_paid_invoice(invoice):
    payment_record(invoice=invoice, amount=invoice.total, method="cash")
    with pytest.raises(ValidationError) as refusal:
        payment_record(invoice=invoice, amount=usd(1), method="cash")
    assert refusal.value.code == "invoice_not_unpaid"


def test_money_a_gateway_took_for_a_cancelled_invoice_all_becomes_credit(
    order, customer, test_gateway
):
    invoice = order.invoices.get()
    order_cancel(order=order)

    payment = payment_record(
        invoice=invoice, amount=usd(19), method="card", gateway=test_gateway, transaction_id="ch_1"
    )

    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert payment.credited == usd(19)
    assert credit_balance(customer=customer, currency="USD") == usd(19)


def test_a_gateway_transaction_reported_twice_is_one_payment(invoice, test_gateway):
    first = payment_record(
        invoice=invoice, amount=usd(5), method="card", gateway=test_gateway, transaction_id="ch_9"
    )
    again = payment_record(
        invoice=invoice, amount=usd(5), method="card", gateway=test_gateway, transaction_id="ch_9"
    )

    assert again.pk == first.pk
    assert invoice_balance(invoice) == usd(14)


def test_a_declined_attempt_is_recorded_and_leaves_the_balance(invoice, test_gateway):
    payment = payment_record(
        invoice=invoice,
        amount=usd(19),
        method="card",
        gateway=test_gateway,
        transaction_id="ch_declined",
        status=Payment.Status.FAILED,
        failure_message="Your card was declined.",
    )

    invoice.refresh_from_db()
    assert payment.status == Payment.Status.FAILED
    assert invoice.status == Invoice.Status.UNPAID
    assert invoice_balance(invoice) == usd(19)


def test_account_credit_pays_a_new_invoice_as_it_is_issued(customer):
    credit_adjust(customer=customer, amount=usd(50), note="goodwill")

    order = place_order(customer)

    invoice = order.invoices.get()
    order.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert order.status == Order.Status.PAID
    assert invoice.payments.get().method == Payment.Method.ACCOUNT_CREDIT
    assert credit_balance(customer=customer, currency="USD") == usd(31)
    assert ProvisioningJob.objects.filter(action="create").count() == 1


def test_credit_short_of_the_total_pays_part_of_a_new_invoice(customer):
    credit_adjust(customer=customer, amount=usd(4), note="goodwill")

    invoice = place_order(customer).invoices.get()

    assert invoice.status == Invoice.Status.UNPAID
    assert invoice_balance(invoice) == usd(15)
    assert credit_balance(customer=customer, currency="USD") == usd(0)


def test_credit_in_another_currency_is_left_alone(customer):
    credit_adjust(customer=customer, amount=Money(30, "EUR"), note="goodwill")

    invoice = place_order(customer).invoices.get()

    assert invoice_balance(invoice) == usd(19)
    assert credit_balance(customer=customer, currency="EUR") == Money(30, "EUR")


def test_staff_cannot_take_back_more_credit_than_there_is(customer):
    credit_adjust(customer=customer, amount=usd(4), note="goodwill")
    with pytest.raises(ValidationError) as refusal:
        credit_adjust(customer=customer, amount=usd(-5), note="oops")
    assert refusal.value.code == "credit_short"
