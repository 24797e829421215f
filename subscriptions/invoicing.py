"""Issuing invoices: gapless numbers per year, and the signal the payments app listens to."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from .models import Invoice, InvoiceNumberCounter
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

    It must run inside that transaction (the counter's lock lasts until commit).

    Last, because the counter row is locked from here to commit: every other
    issue waits for it.
    """
    if not invoice.number:
        year = timezone.localtime(invoice.issued_at or timezone.now()).year
        invoice.number = invoice_number_take(year=year)
        invoice.save(update_fields=["number"])
    invoice_issued.send(sender=Invoice, invoice=invoice)
    return invoice
