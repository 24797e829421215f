"""Invoice numbers: PREFIX-YEAR-NNNNNN, gapless and in order, given as the invoice is issued."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import transaction

from payments.services import payment_record
from subscriptions.billing import services_run_billing
from subscriptions.invoicing import invoice_number_take
from subscriptions.jobs import service_start
from subscriptions.models import Invoice, InvoiceNumberCounter
from tests.factories import place_order

pytestmark = pytest.mark.django_db


def test_invoices_are_numbered_in_order_within_the_year(customer):
    year = datetime.now(UTC).year
    first = place_order(customer).invoices.get()
    second = place_order(customer).invoices.get()

    assert first.number == f"INV-{year}-000001"
    assert second.number == f"INV-{year}-000002"


def test_an_order_numbers_its_invoice_past_a_million_as_a_billing_run_does(customer):
    # An order's invoice is numbered by SQL on PostgreSQL (invoicing._NUMBER_SQL), a batch's
    # by Python: both write at least six digits.
    year = datetime.now(UTC).year
    InvoiceNumberCounter.objects.create(year=year, last_number=999_998)
    assert place_order(customer).invoices.get().number == f"INV-{year}-999999"
    assert place_order(customer).invoices.get().number == f"INV-{year}-1000000"
    assert invoice_number_take(year=year) == f"INV-{year}-1000001"


def test_the_prefix_comes_from_the_settings(customer, settings):
    settings.BILLING_INVOICE_PREFIX = "ACME"
    invoice = place_order(customer).invoices.get()
    assert invoice.number.startswith(f"ACME-{datetime.now(UTC).year}-")


def test_each_year_counts_from_one():
    InvoiceNumberCounter.objects.create(year=2025, last_number=812)
    assert invoice_number_take(year=2025) == "INV-2025-000813"
    assert invoice_number_take(year=2026) == "INV-2026-000001"


def test_an_invoice_rolled_back_gives_its_number_back():
    with pytest.raises(RuntimeError), transaction.atomic():
        invoice_number_take(year=2026)
        raise RuntimeError("the order failed after its invoice was numbered")

    assert invoice_number_take(year=2026) == "INV-2026-000001"


def test_a_renewal_invoice_is_numbered_too(customer):
    order = place_order(customer)
    invoice = order.invoices.get()
    payment_record(invoice=invoice, amount=invoice.total, method="cash")
    service = order.services.get()
    service_start(service, now=datetime(2026, 1, 1, tzinfo=UTC))
    service.save()

    services_run_billing(now=datetime(2026, 2, 1, 1, tzinfo=UTC))

    renewal = Invoice.objects.of_service(service.pk).get(kind="renewal")
    assert renewal.number.startswith("INV-") and renewal.number != invoice.number
