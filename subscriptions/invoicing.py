"""Invoices: numbered when issued, issued for what a service is billed, settled when paid.

Numbers are gapless and sequential per year. Issuing sends `invoice_issued`,
which the payments app (above this one) listens to: it applies account
credit and charges a saved card. Payments are recorded there
(`payments.services.payment_record`); when one clears the balance it calls
`invoice_settle`, which moves the order or the service on: a paid order
starts provisioning, a paid renewal advances the period and lifts grace or
suspension (see `lifecycle`).
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import timezone
from djmoney.money import Money

from catalog.models import NotificationEvent

from .lifecycle import order_mark_paid, service_invoice_paid
from .models import Invoice, InvoiceLine, InvoiceNumberCounter, LineKind, Order, Service
from .notifications import notify_invoice
from .signals import invoice_issued


def invoice_number_take(*, year: int) -> str:
    """The next number of `year`, e.g. INV-2026-000123; call it in the issuing transaction.

    The year's counter row stays locked until that transaction ends, so two
    invoices never get one number, and a rollback leaves no gap.
    """
    counter = InvoiceNumberCounter.objects.select_for_update().filter(year=year).first()
    if counter is None:
        # The year's first invoice; get_or_create survives two of them racing to create it.
        InvoiceNumberCounter.objects.get_or_create(year=year)
        counter = InvoiceNumberCounter.objects.select_for_update().get(year=year)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return f"{settings.BILLING_INVOICE_PREFIX}-{year}-{counter.last_number:06d}"


def invoice_issue(*, invoice: Invoice) -> Invoice:
    """Number a complete invoice and announce it; call it last in the issuing transaction.

    Last, because the counter row is locked from here to commit: every other
    issue waits for it.
    """
    if not invoice.number:
        year = timezone.localtime(invoice.issued_at or timezone.now()).year
        invoice.number = invoice_number_take(year=year)
        invoice.save(update_fields=["number"])
    invoice_issued.send(sender=Invoice, invoice=invoice)
    return invoice


def service_invoice_issue(
    *,
    service: Service,
    kind: str,
    description: str,
    amount: Money,
    due_at: datetime,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
) -> Invoice:
    invoice = Invoice(
        customer_id=service.customer_id,
        service=service,
        kind=kind,
        period_start=period_start,
        period_end=period_end,
        currency=service.currency,
        total=amount,
        due_at=due_at,
    )
    invoice.full_clean(exclude=["customer", "order", "service"], validate_constraints=False)
    invoice.save()
    InvoiceLine.objects.create(
        invoice=invoice,
        kind=LineKind.PRICE,
        description=description,
        unit_amount=amount,
        quantity=1,
        amount=amount,
    )
    invoice_issue(invoice=invoice)
    notify_invoice(NotificationEvent.INVOICE_CREATED, invoice)
    if amount.amount == 0:
        invoice_settle(invoice)
    return invoice


def invoice_settle(invoice: Invoice, order: Order | None = None) -> None:
    """The invoice is paid in full: its order is paid, or its service's period moves on.

    Called holding the invoice's row lock (payments.services.payment_record does).
    """
    invoice.status = Invoice.Status.PAID
    invoice.paid_at = timezone.now()
    invoice.save(update_fields=["status", "paid_at"])
    if invoice.service_id:
        service_invoice_paid(invoice)
    elif invoice.order_id:
        order = order or Order.objects.select_for_update().get(pk=invoice.order_id)
        if order.status == Order.Status.AWAITING_PAYMENT:
            order_mark_paid(order)
