"""The customer's side: an invoice and how to pay it, the documents, the billing page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from payments.models import Payment
from payments.services import credit_adjust, payment_record
from subscriptions.models import Invoice, Order
from tests.factories import usd
from tests.support.pages import pay

pytestmark = pytest.mark.django_db


def test_the_invoice_page_offers_each_gateway_of_its_currency(
    customer_client, invoice, test_gateway, bank_gateway
):
    page = customer_client.get(reverse("payments:invoice", args=[invoice.pk])).content.decode()

    assert "<h2>Pay 19.00\xa0USD</h2>" in page
    assert "test gateway: no real money moves" in page
    assert "IBAN DE00" in page and f"Reference: {invoice.number}" in page


def test_a_gateway_without_the_invoices_currency_is_not_offered(
    customer_client, invoice, test_gateway
):
    test_gateway.currencies = "EUR"
    test_gateway.save()
    page = customer_client.get(reverse("payments:invoice", args=[invoice.pk])).content.decode()
    assert "No payment method takes USD yet" in page


def test_paying_with_the_success_card_settles_the_invoice_and_pays_the_order(
    customer_client, invoice, test_gateway
):
    response = pay(customer_client, invoice, test_gateway, "4242 4242 4242 4242")

    assert response.status_code == 302
    assert response.url == reverse("subscriptions:order", args=[invoice.order_id])
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert Order.objects.get().status == Order.Status.PAID
    payment = Payment.objects.get()
    assert payment.gateway_id == test_gateway.pk and payment.transaction_id.startswith("test_ch_")


def test_a_double_submitted_payment_charges_once(customer_client, invoice, test_gateway):
    pay(customer_client, invoice, test_gateway, "4242424242424242", attempt_key="same")
    response = pay(customer_client, invoice, test_gateway, "4242424242424242", attempt_key="same")

    assert response.status_code == 409
    assert "has nothing to pay" in response.content.decode()
    assert Payment.objects.count() == 1


def test_a_declined_card_says_why_and_leaves_the_invoice_unpaid(
    customer_client, invoice, test_gateway
):
    response = pay(customer_client, invoice, test_gateway, "4000000000000002")

    assert response.status_code == 302
    page = customer_client.get(response.url).content.decode()
    assert "The payment did not go through: Your card was declined." in page
    assert Payment.objects.get().status == Payment.Status.FAILED
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.UNPAID


def test_a_mistyped_card_shows_the_form_again(customer_client, invoice, test_gateway):
    response = pay(customer_client, invoice, test_gateway, "4242 4242 4242 4241")
    assert response.status_code == 400
    assert "Your card number is incorrect." in response.content.decode()
    assert not Payment.objects.exists()


def test_a_manual_gateway_cannot_be_charged_online(customer_client, invoice, bank_gateway):
    response = customer_client.post(
        reverse("payments:pay", args=[invoice.pk, bank_gateway.pk]), {"attempt_key": "x"}
    )
    assert response.status_code == 409
    assert not Payment.objects.exists()


def test_another_customer_cannot_see_or_pay_an_invoice(
    client, other_customer, invoice, test_gateway
):
    client.force_login(other_customer)
    assert client.get(reverse("payments:invoice", args=[invoice.pk])).status_code == 404
    assert pay(client, invoice, test_gateway, "4242424242424242").status_code == 404
    assert not Payment.objects.exists()


@pytest.mark.parametrize("name", ["payments:invoice_document", "payments:invoice_pdf"])
def test_only_the_invoices_customer_and_staff_open_its_documents(
    client, customer, other_customer, staff_user, invoice, name
):
    url = reverse(name, args=[invoice.pk])
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(other_customer)
    assert client.get(url).status_code == 404
    client.force_login(customer)
    assert client.get(url).status_code == 200
    client.force_login(staff_user)
    assert client.get(url).status_code == 200


def test_the_invoice_document_shows_seller_lines_payments_balance_and_due_date(
    customer_client, invoice, settings
):
    settings.BILLING_SELLER_NAME = "Acme Hosting GmbH"
    settings.BILLING_SELLER_TAX_ID = "DE123456789"
    payment_record(invoice=invoice, amount=usd(4), method="bank_transfer", reference="wire 1")

    page = customer_client.get(reverse("payments:invoice_document", args=[invoice.pk]))

    text = page.content.decode()
    assert "Acme Hosting GmbH" in text and "Tax ID: DE123456789" in text
    assert f"Invoice {invoice.number}" in text
    assert f"Due: {invoice.due_at:%Y-%m-%d}" in text
    for line in invoice.lines.all():
        assert line.description in text
    assert "wire 1" in text and "15.00" in text


def test_the_pdf_is_a_pdf_named_after_the_invoice(customer_client, invoice):
    response = customer_client.get(reverse("payments:invoice_pdf", args=[invoice.pk]))
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert f'filename="{invoice.number}.pdf"' in response["Content-Disposition"]


def test_the_billing_page_shows_invoices_to_pay_credit_and_payment_history(
    customer_client, customer, invoice
):
    credit_adjust(customer=customer, amount=usd(3), note="welcome")
    payment_record(invoice=invoice, amount=usd(4), method="cash")

    page = customer_client.get(reverse("payments:billing")).content.decode()

    assert invoice.number in page and ">Pay</a>" in page
    assert "3.00" in page and "Adjusted by staff: welcome" in page
    assert "Cash" in page


def test_the_account_page_links_unpaid_invoices_to_paying_them(customer_client, invoice):
    page = customer_client.get(reverse("subscriptions:account")).content.decode()
    assert reverse("payments:invoice", args=[invoice.pk]) + "#pay" in page
    assert reverse("payments:billing") in page


def test_staff_without_the_invoice_permission_cannot_open_a_document(
    client, django_user_model, invoice
):
    clerk = django_user_model.objects.create_user(username="clerk", is_staff=True)
    client.force_login(clerk)
    assert client.get(reverse("payments:invoice_document", args=[invoice.pk])).status_code == 404


def test_the_document_page_has_no_inline_style_so_the_csp_lets_it_render(customer_client, invoice):
    page = customer_client.get(reverse("payments:invoice_document", args=[invoice.pk]))

    html = page.content.decode()
    assert "<style" not in html
    assert "payments/invoice-document.css" in html
    assert "style-src 'self'" in page["Content-Security-Policy"]


def test_the_pdf_reads_its_stylesheet_from_disk_not_from_the_server_rendering_it():
    from payments.views import static_files_first

    fetched = static_files_first("http://testserver/static/")(
        "http://testserver/static/payments/invoice-document.css"
    )

    assert b"@page" in fetched.read()
