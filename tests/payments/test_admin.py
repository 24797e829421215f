"""Staff record payments and refunds from an invoice's own admin page; gateways in the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from payments.models import BankTransferGateway, CreditEntry, CreditNote, GatewayInstance, Payment
from payments.services import payment_record
from subscriptions.models import Invoice, Order
from tests.factories import place_order, usd

pytestmark = pytest.mark.django_db


def record_url(invoice):
    return reverse("admin:subscriptions_invoice_record_payment", args=[invoice.pk])


def test_the_invoice_page_offers_to_record_a_payment_and_lists_payments(staff_client, invoice):
    payment_record(invoice=invoice, amount=usd(5), method="cash", reference="till 3")

    page = staff_client.get(reverse("admin:subscriptions_invoice_change", args=[invoice.pk]))

    content = page.content.decode()
    assert page.status_code == 200
    assert record_url(invoice) in content
    assert "till 3" in content and "Refund…" in content


def test_staff_record_a_bank_transfer_with_its_date_and_reference(
    staff_client, staff_user, invoice, bank_gateway
):
    yesterday = timezone.localdate() - timedelta(days=1)
    response = staff_client.post(
        record_url(invoice),
        {
            "amount": "19.00",
            "received_on": yesterday.isoformat(),
            "method": "bank_transfer",
            "gateway": bank_gateway.pk,
            "transaction_id": "BANK-77",
            "reference": "INV from ann",
        },
    )

    assert response.status_code == 302
    payment = Payment.objects.get()
    assert payment.received_at.date() == yesterday
    assert (payment.gateway_id, payment.transaction_id) == (bank_gateway.pk, "BANK-77")
    assert payment.recorded_by == staff_user
    assert Invoice.objects.get().status == Invoice.Status.PAID
    assert Order.objects.get().status == Order.Status.PAID


def test_staff_cannot_record_money_received_in_the_future(staff_client, invoice):
    tomorrow = timezone.localdate() + timedelta(days=1)
    response = staff_client.post(
        record_url(invoice),
        {"amount": "5", "received_on": tomorrow.isoformat(), "method": "cash"},
    )
    assert response.status_code == 200
    assert "Money cannot be received in the future." in response.content.decode()
    assert not Payment.objects.exists()


def test_a_refusal_of_the_service_shows_on_the_form(staff_client, invoice):
    payment_record(invoice=invoice, amount=invoice.total, method="cash")
    response = staff_client.post(
        record_url(invoice),
        {"amount": "5", "received_on": timezone.localdate().isoformat(), "method": "cash"},
    )
    assert response.status_code == 200
    assert "it takes no payment" in response.content.decode()
    assert Payment.objects.count() == 1


def test_staff_refund_part_of_a_payment_with_a_credit_note(staff_client, invoice, test_gateway):
    payment = payment_record(
        invoice=invoice, amount=usd(19), method="card", gateway=test_gateway, transaction_id="c1"
    )
    url = reverse("admin:subscriptions_invoice_refund", args=[invoice.pk, payment.pk])

    assert staff_client.get(url).status_code == 200
    response = staff_client.post(url, {"amount": "7.50", "reason": "downtime"})

    assert response.status_code == 302
    note = CreditNote.objects.get()
    assert note.amount == usd("7.50") and note.reason.startswith("downtime")
    payment.refresh_from_db()
    assert payment.refunded == usd("7.50")


def test_a_refund_beyond_the_payment_is_refused_on_the_form(staff_client, invoice, test_gateway):
    payment = payment_record(
        invoice=invoice, amount=usd(19), method="card", gateway=test_gateway, transaction_id="c1"
    )
    url = reverse("admin:subscriptions_invoice_refund", args=[invoice.pk, payment.pk])

    response = staff_client.post(url, {"amount": "20"})

    assert response.status_code == 200
    assert "at most" in response.content.decode()
    assert not CreditNote.objects.exists()


def test_a_refund_of_another_invoices_payment_is_not_found(staff_client, invoice, customer):
    other = place_order(customer).invoices.get()
    payment = payment_record(invoice=other, amount=usd(19), method="cash")
    url = reverse("admin:subscriptions_invoice_refund", args=[invoice.pk, payment.pk])
    assert staff_client.get(url).status_code == 404


def test_staff_without_the_payment_permission_cannot_record(client, django_user_model, invoice):
    viewer = django_user_model.objects.create_user(username="viewer", is_staff=True)
    client.force_login(viewer)
    assert client.get(record_url(invoice)).status_code == 403


def test_marking_invoices_paid_records_their_balance(staff_client, invoice):
    payment_record(invoice=invoice, amount=usd(4), method="cash")
    staff_client.post(
        reverse("admin:subscriptions_invoice_changelist"),
        {"action": "mark_paid", "_selected_action": [invoice.pk]},
    )
    assert Invoice.objects.get().status == Invoice.Status.PAID
    assert [p.amount for p in Payment.objects.order_by("pk")] == [usd(4), usd(15)]


def test_a_gateway_takes_only_store_currencies():
    form_class = admin.site.get_model_admin(BankTransferGateway).get_form(request=None)
    form = form_class(
        data={
            "name": "Bank",
            "is_active": True,
            "currencies": "usd, GBP",
            "sort_order": 0,
            "instructions": "IBAN",
        }  # fmt: skip
    )
    assert not form.is_valid()
    assert form.errors["currencies"] == ["GBP is not a store currency (USD, EUR)."]

    form = form_class(
        data={
            "name": "Bank",
            "is_active": True,
            "currencies": "usd, EUR,usd",
            "sort_order": 0,
            "instructions": "IBAN",
        }  # fmt: skip
    )
    assert form.is_valid(), form.errors
    assert form.save().currencies == "USD,EUR"


def test_staff_test_a_gateways_connection_from_its_page(staff_client, bank_gateway):
    response = staff_client.post(
        reverse("admin:payments_gatewayinstance_changelist"),
        {
            "action": "test_connections",
            "_selected_action": [bank_gateway.pk],
            "_from_change_page": "1",
        },  # fmt: skip
        follow=True,
    )
    assert "“Bank transfer” connected" in response.content.decode()
    assert response.redirect_chain[-1][0] == reverse(
        "admin:payments_gatewayinstance_change", args=[bank_gateway.pk]
    )


def test_a_bank_gateway_without_instructions_fails_its_test(staff_client, bank_gateway):
    BankTransferGateway.objects.filter(pk=bank_gateway.pk).update(instructions=" ")
    response = staff_client.post(
        reverse("admin:payments_gatewayinstance_changelist"),
        {"action": "test_connections", "_selected_action": [bank_gateway.pk]},
        follow=True,
    )
    assert "failed: No payment instructions are set." in response.content.decode()
    assert GatewayInstance.objects.count() == 1


def test_staff_give_account_credit_with_a_reason(staff_client, customer):
    url = reverse("admin:payments_creditentry_add")
    response = staff_client.post(
        url, {"customer": customer.pk, "amount_0": "12.00", "amount_1": "USD", "note": "outage"}
    )
    assert response.status_code == 302
    entry = CreditEntry.objects.get()
    assert (entry.amount, entry.kind, entry.note) == (usd(12), "adjustment", "outage")

    response = staff_client.post(
        url, {"customer": customer.pk, "amount_0": "-20.00", "amount_1": "USD", "note": "oops"}
    )
    assert response.status_code == 200
    assert "The customer has" in response.content.decode()
    assert CreditEntry.objects.count() == 1
