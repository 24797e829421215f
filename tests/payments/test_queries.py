"""Paying an invoice reads and writes a fixed number of queries, whatever the order holds."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from subscriptions.models import Invoice, ProvisioningJob, ServiceEvent
from tests.factories import place_order
from tests.support.pages import pay

# Counted outside a test transaction, as a server runs it, once its process has read the
# gateway's content type (Django keeps it). Session, user, the invoice, the gateway (its
# base row, then its own), the balance to charge; then, in
# one transaction (BEGIN, COMMIT): the order's and the invoice's locks, a payment with the
# gateway's transaction id already recorded, the balance again under the lock, the payment,
# the invoice's services, their "payment received" events, their package's email settings,
# the email task, the services again and their "email sent" events, the invoice and the
# order paid, the order's services, and their jobs, the jobs' tasks and "queued" events in
# one INSERT each. It was 40: the page's prefetches, the payment's constraint checks
# (three savepoints each) and a job written twice after its uniqueness check.
PAY_QUERIES = 25


@pytest.mark.django_db(transaction=True)
def test_paying_an_invoice_costs_the_same_queries_for_one_unit_or_three(
    customer_client, customer, test_gateway
):
    counts = []
    for quantity in (1, 1, 3):  # the first reads the gateway's content type for the process
        invoice = place_order(customer, quantity=quantity).invoices.get()
        with CaptureQueriesContext(connection) as queries:
            response = pay(customer_client, invoice, test_gateway, "4242424242424242")
        assert response.status_code == 302
        invoice.refresh_from_db()
        assert invoice.status == Invoice.Status.PAID
        counts.append(len(queries))

    assert counts[1:] == [PAY_QUERIES, PAY_QUERIES]
    # Every unit's job was queued, each with its task and its timeline event.
    jobs = ProvisioningJob.objects.filter(action="create")
    assert jobs.count() == 5 and all(job.task_id for job in jobs)
    assert ServiceEvent.objects.filter(kind="job_queued").count() == 5
