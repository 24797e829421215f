"""Refunds: within what was paid, through the gateway, with a credit note; never provisioned → cancelled."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from payments.models import CreditNote, Payment
from payments.services import credit_adjust, credit_balance, payment_record, payment_refund
from subscriptions.jobs import service_start
from subscriptions.models import Order, Service
from tests.factories import place_order, usd

pytestmark = pytest.mark.django_db


def card_payment(invoice, gateway, amount=None):
    return payment_record(
        invoice=invoice,
        amount=amount or invoice.total,
        method="card",
        gateway=gateway,
        transaction_id=f"test_ch_{invoice.pk}",
    )


def test_a_part_refund_through_the_gateway_comes_with_a_credit_note(
    invoice, test_gateway, staff_user
):
    payment = card_payment(invoice, test_gateway)

    note = payment_refund(
        payment=payment, amount=usd(4), reason="late setup", refunded_by=staff_user
    )

    payment.refresh_from_db()
    assert payment.refunded == usd(4)
    assert payment.status == Payment.Status.SUCCEEDED
    assert payment.status_label == "Partly refunded (4.00 USD)"
    assert note.kind == CreditNote.Kind.REFUND and note.amount == usd(4)
    assert note.reason.startswith("late setup – test_re_")
    assert note.number == f"CN-{note.pk:06d}"


def test_refunds_never_add_up_to_more_than_was_paid(invoice, test_gateway):
    payment = card_payment(invoice, test_gateway)
    payment_refund(payment=payment, amount=usd(15))

    with pytest.raises(ValidationError) as refusal:
        payment_refund(payment=payment, amount=usd(5))

    assert refusal.value.code == "refund_amount"
    payment.refresh_from_db()
    assert payment.refunded == usd(15)
    assert CreditNote.objects.count() == 1


def test_a_fully_refunded_payment_takes_no_more_refunds(invoice, test_gateway):
    payment = card_payment(invoice, test_gateway)
    payment_refund(payment=payment, amount=usd(19))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED

    with pytest.raises(ValidationError) as refusal:
        payment_refund(payment=payment, amount=usd(1))
    assert refusal.value.code == "refund_status"


def test_refunding_an_order_never_provisioned_cancels_it_and_returns_its_stock_once(
    customer, test_gateway
):
    order = place_order(customer, quantity=2, stock_qty=5)
    invoice = order.invoices.get()
    first = payment_record(invoice=invoice, amount=usd(20), method="cash")
    second = card_payment(invoice, test_gateway, amount=usd(15))  # 35 in all
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    order.package.refresh_from_db()
    assert order.package.stock_qty == 3

    payment_refund(payment=first, amount=usd(20))
    order.refresh_from_db()
    assert order.status == Order.Status.PAID  # part of the money is still paid

    payment_refund(payment=second, amount=usd(15))
    order.refresh_from_db()
    order.package.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert set(order.services.values_list("status", flat=True)) == {"cancelled"}
    assert order.package.stock_qty == 5
    assert not order.services.filter(jobs__action="create", jobs__status="queued").exists()


def test_refunding_an_order_whose_service_started_keeps_the_service(invoice, test_gateway):
    payment = card_payment(invoice, test_gateway)
    service = invoice.order.services.get()
    service_start(service)
    service.save()

    payment_refund(payment=payment, amount=usd(19))

    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE
    assert Order.objects.get().status == Order.Status.PAID


def test_refunding_a_bank_transfer_is_recorded_for_staff_to_send_by_hand(invoice, bank_gateway):
    payment = payment_record(
        invoice=invoice, amount=invoice.total, method="bank_transfer", gateway=bank_gateway
    )

    note = payment_refund(payment=payment, amount=usd(19))

    assert "by hand" in note.reason


def test_refunding_a_payment_of_account_credit_gives_the_credit_back(customer):
    credit_adjust(customer=customer, amount=usd(19), note="goodwill")
    invoice = place_order(customer).invoices.get()
    payment = invoice.payments.get()
    assert credit_balance(customer=customer, currency="USD") == usd(0)

    payment_refund(payment=payment, amount=usd(19))

    assert credit_balance(customer=customer, currency="USD") == usd(19)


def test_a_failed_payment_cannot_be_refunded(invoice, test_gateway):
    failed = payment_record(
        invoice=invoice, amount=usd(19), method="card", gateway=test_gateway,
        transaction_id="ch_x", status=Payment.Status.FAILED,
    )  # fmt: skip
    with pytest.raises(ValidationError) as refusal:
        payment_refund(payment=failed, amount=usd(1))
    assert refusal.value.code == "refund_status"
