from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from djmoney.money import Money

from subscriptions.invoicing import invoice_balance, invoice_record_payment
from subscriptions.models import Invoice, Order, Payment, ProvisioningJob
from subscriptions.ordering import order_cancel
from tests.factories import place, shop_package, usd

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(customer):
    package, monthly, options = shop_package(stock_qty=5, allow_quantity="multiple")
    return place(customer, package, monthly, [options["us"]], quantity=2)


def test_paying_the_invoice_in_full_pays_the_order_and_queues_provisioning(order, staff_user):
    invoice = order.invoices.get()

    payment = invoice_record_payment(invoice=invoice, amount=invoice.total, recorded_by=staff_user)

    invoice.refresh_from_db()
    order.refresh_from_db()
    assert payment.method == Payment.Method.STAFF
    assert invoice.status == Invoice.Status.PAID and invoice.paid_at
    assert order.status == Order.Status.PAID
    assert ProvisioningJob.objects.filter(action="create").count() == 2


def test_a_part_payment_leaves_the_invoice_unpaid(order):
    invoice = order.invoices.get()

    invoice_record_payment(invoice=invoice, amount=usd(10))

    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.UNPAID
    assert invoice_balance(invoice) == invoice.total - usd(10)
    assert not ProvisioningJob.objects.exists()


@pytest.mark.parametrize(
    "amount, code",
    [
        (Money(1, "EUR"), "payment_currency"),
        (usd(1000), "payment_amount"),
        (usd(0), "payment_amount"),
    ],
)
def test_it_refuses_a_payment_that_does_not_fit_the_invoice(order, amount, code):
    with pytest.raises(ValidationError) as refusal:
        invoice_record_payment(invoice=order.invoices.get(), amount=amount)
    assert refusal.value.code == code
    assert not Payment.objects.exists()


def test_a_paid_invoice_takes_no_more_payments(order):
    invoice = order.invoices.get()
    invoice_record_payment(invoice=invoice, amount=invoice.total)
    with pytest.raises(ValidationError) as refusal:
        invoice_record_payment(invoice=invoice, amount=usd(1))
    assert refusal.value.code == "invoice_not_unpaid"


def test_cancelling_an_unpaid_order_cancels_its_invoice_and_services_and_gives_stock_back(order):
    order.package.refresh_from_db()
    assert order.package.stock_qty == 3

    order_cancel(order=order)

    order.refresh_from_db()
    order.package.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert order.invoices.get().status == Invoice.Status.CANCELLED
    assert set(order.services.values_list("status", flat=True)) == {"cancelled"}
    assert order.package.stock_qty == 5


def test_a_paid_order_cannot_be_cancelled(order):
    invoice = order.invoices.get()
    invoice_record_payment(invoice=invoice, amount=invoice.total)
    with pytest.raises(ValidationError) as refusal:
        order_cancel(order=order)
    assert refusal.value.code == "order_not_cancellable"
