"""Renewals charged to a saved method off-session, retried on a schedule after a decline.

The attempt runs as a task (the database backend), queued in the transaction
that issued the invoice, so a committed renewal is never forgotten and a
rolled back one charges nothing.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone
from django_tasks import task

from subscriptions.bulk import OneOf
from subscriptions.models import Invoice
from subscriptions.queueing import tasks_enqueue_many

from .gateways.base import ChargeRequest
from .models import Payment, SavedPaymentMethod
from .services import invoice_balance, payment_record


@task()
def charge_saved_method(*, invoice_id: int, attempt: int) -> str:
    return invoice_charge_saved_method(invoice_id=invoice_id, attempt=attempt)


def renewal_charge_schedule(*, invoice: Invoice) -> bool:
    """Queue the off-session charge of a renewal just issued, when its customer saved a method.

    Queued in the issuing transaction (the database task backend): a rolled
    back invoice charges nothing, a committed one is never forgotten.
    """
    if invoice.kind != Invoice.Kind.RENEWAL or invoice.status != Invoice.Status.UNPAID:
        return False
    if not SavedPaymentMethod.objects.filter(
        customer=invoice.customer_id, is_default=True
    ).exists():
        return False
    charge_saved_method.enqueue(invoice_id=invoice.pk, attempt=1)
    return True


def renewal_charges_schedule(*, invoices: list[Invoice], paid_ids: set[int]) -> int:
    """`renewal_charge_schedule` for a billing run's batch: one query, one INSERT.

    `paid_ids` are the invoices account credit paid as they were issued: nothing to charge.
    """
    unpaid = [
        invoice
        for invoice in invoices
        if invoice.kind == Invoice.Kind.RENEWAL
        and invoice.status == Invoice.Status.UNPAID
        and invoice.total.amount
        and invoice.pk not in paid_ids
    ]
    if not unpaid:
        return 0
    with_method = set(
        SavedPaymentMethod.objects.filter(
            OneOf(F("customer_id"), {invoice.customer_id for invoice in unpaid}), is_default=True
        ).values_list("customer_id", flat=True)
    )
    calls: list[tuple[list, dict]] = [
        ([], {"invoice_id": invoice.pk, "attempt": 1})
        for invoice in unpaid
        if invoice.customer_id in with_method
    ]
    if calls:
        tasks_enqueue_many(charge_saved_method, calls)
    return len(calls)


def invoice_charge_saved_method(*, invoice_id: int, attempt: int) -> str:
    """One off-session attempt at an unpaid invoice; a decline schedules the next attempt.

    The idempotency key names the invoice and the attempt: a worker that dies
    mid-charge and runs the attempt again gets Stripe's first answer back, the
    same payment intent, which payment_record records once.
    """
    invoice = Invoice.objects.filter(pk=invoice_id).select_related("customer").first()
    if invoice is None or invoice.status != Invoice.Status.UNPAID:
        return "nothing to charge"
    balance = invoice_balance(invoice)
    method = (
        SavedPaymentMethod.objects.filter(customer=invoice.customer_id, is_default=True)
        .select_related("gateway")
        .first()
    )
    if balance.amount <= 0 or method is None:
        return "nothing to charge"
    gateway = method.gateway.get_real_instance()
    if not gateway.takes(invoice.currency):
        return f"{gateway.name} does not take {invoice.currency}"
    result = gateway.plugin.charge_saved(
        gateway,
        method,
        ChargeRequest(
            amount=balance,
            invoice_number=invoice.number,
            customer_email=invoice.customer.email,
            idempotency_key=f"renewal-{invoice.pk}-attempt-{attempt}",
            data={"invoice_id": str(invoice.pk), "attempt": str(attempt)},
        ),
    )
    payment_record(
        invoice=invoice,
        amount=balance,
        method=Payment.Method.CARD,
        gateway=gateway,
        transaction_id=result.transaction_id,
        reference=f"Automatic charge of {method.label}, attempt {attempt}",
        status=Payment.Status.SUCCEEDED if result.ok else Payment.Status.FAILED,
        failure_message="" if result.ok else result.message,
    )
    if result.ok:
        return "charged"
    retry_days = settings.BILLING_RETRY_DAYS
    if attempt > len(retry_days):
        return f"declined; no retries left: {result.message}"
    run_after = timezone.now() + timedelta(days=retry_days[attempt - 1])
    charge_saved_method.using(run_after=run_after).enqueue(
        invoice_id=invoice.pk, attempt=attempt + 1
    )
    return f"declined; retry {attempt + 1} on {run_after:%Y-%m-%d}: {result.message}"
