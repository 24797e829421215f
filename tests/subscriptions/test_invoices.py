from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from payments.services import payment_record
from subscriptions.models import Invoice, Order
from subscriptions.ordering import order_cancel
from tests.factories import place, shop_package

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(customer):
    package, monthly, options = shop_package(stock_qty=5, allow_quantity="multiple")
    return place(customer, package, monthly, [options["us"]], quantity=2)


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
    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)
    with pytest.raises(ValidationError) as refusal:
        order_cancel(order=order)
    assert refusal.value.code == "order_not_cancellable"
