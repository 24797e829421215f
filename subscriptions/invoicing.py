"""Invoices: issued for what a service is billed, paid, settled.

Settling an invoice is what moves an order or a service on: a paid order
starts provisioning, a paid renewal advances the period and lifts grace or
suspension (see `lifecycle`). `invoice_record_payment` is the one place a
payment is recorded.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from djmoney.money import Money

from catalog.errors import ErrorCode, refuse
from catalog.models import NotificationEvent

from .lifecycle import order_mark_paid, service_invoice_paid
from .models import Invoice, InvoiceLine, LineKind, Order, Payment, Service
from .notifications import notify_invoice, notify_invoices_issued


@dataclass(frozen=True)
class LineSpec:
    """One line a billing run puts on a customer's invoice for one service.

    The run makes one for each service's period; other sources (overages) add
    theirs for the same service and due date, and they land on the same invoice.
    """

    service: Service
    due_at: datetime
    description: str
    amount: Money
    period_start: datetime
    period_end: datetime
    kind: str = LineKind.PRICE


def renewal_invoices_issue(specs: list[LineSpec]) -> list[Invoice]:
    """One invoice per customer, due date and currency, with a line per spec, in a few queries.

    Call it holding the services' locks. A zero invoice is paid at once, as a
    renewal's always was; the customers are told in one notification task.
    """
    groups: dict[tuple[int, datetime, str], list[LineSpec]] = defaultdict(list)
    for spec in specs:
        groups[(spec.service.customer_id, spec.due_at, spec.service.currency)].append(spec)
    invoices = [
        Invoice(
            customer_id=customer_id,
            kind=Invoice.Kind.RENEWAL,
            period_start=min(spec.period_start for spec in group),
            period_end=max(spec.period_end for spec in group),
            currency=currency,
            total=Money(sum((spec.amount.amount for spec in group), Decimal(0)), currency),
            due_at=due_at,
        )
        for (customer_id, due_at, currency), group in groups.items()
    ]
    Invoice.objects.bulk_create(invoices)
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            kind=spec.kind,
            description=spec.description,
            unit_amount=spec.amount,
            quantity=1,
            amount=spec.amount,
            service=spec.service,
            period_start=spec.period_start,
            period_end=spec.period_end,
            sort_order=index,
        )
        for invoice, group in zip(invoices, groups.values(), strict=True)
        for index, spec in enumerate(group)
    )
    notify_invoices_issued(
        [
            (invoice, [spec.service for spec in group])
            for invoice, group in zip(invoices, groups.values(), strict=True)
        ]
    )
    for invoice in invoices:
        if invoice.total.amount == 0:
            invoice_settle(invoice)
    return invoices


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
        service=service,
        period_start=period_start,
        period_end=period_end,
    )
    notify_invoice(NotificationEvent.INVOICE_CREATED, invoice)
    if amount.amount == 0:
        invoice_settle(invoice)
    return invoice


def invoice_settle(invoice: Invoice, order: Order | None = None) -> None:
    invoice.status = Invoice.Status.PAID
    invoice.paid_at = timezone.now()
    invoice.save(update_fields=["status", "paid_at"])
    if invoice.service_id or invoice.kind == Invoice.Kind.RENEWAL:
        service_invoice_paid(invoice)
    elif invoice.order_id:
        order = order or Order.objects.select_for_update().get(pk=invoice.order_id)
        if order.status == Order.Status.AWAITING_PAYMENT:
            order_mark_paid(order)


@transaction.atomic
def invoice_record_payment(
    *,
    invoice: Invoice,
    amount: Money,
    method: str = Payment.Method.STAFF,
    reference: str = "",
    recorded_by=None,
) -> Payment:
    """The one place a payment is recorded; a gateway calls this too.

    When the invoice is paid in full, its order is paid and provisioning starts.
    """
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != Invoice.Status.UNPAID:
        raise refuse(
            ErrorCode.INVOICE_NOT_UNPAID,
            f"Invoice {invoice.number} is {invoice.get_status_display().lower()}; "
            "it takes no payment.",
        )
    if str(amount.currency) != invoice.currency:
        raise refuse(
            ErrorCode.PAYMENT_CURRENCY,
            f"Invoice {invoice.number} is in {invoice.currency}, not {amount.currency}.",
        )
    paid = invoice_paid_amount(invoice)
    balance = invoice.total.amount - paid
    if amount.amount <= 0 or amount.amount > balance:
        raise refuse(
            ErrorCode.PAYMENT_AMOUNT,
            f"A payment must be above zero and at most the balance of {balance} {invoice.currency}.",
        )
    payment = Payment(
        invoice=invoice,
        amount=amount,
        method=method,
        reference=reference,
        recorded_by=recorded_by,
    )
    payment.full_clean(exclude=["invoice", "recorded_by"])
    payment.save()
    notify_invoice(
        NotificationEvent.PAYMENT_RECEIVED,
        invoice,
        payment=payment,
        balance=Money(balance - amount.amount, invoice.currency),
    )
    if paid + amount.amount >= invoice.total.amount:
        invoice_settle(invoice)
    return payment


def invoice_paid_amount(invoice: Invoice) -> Decimal:
    # Payments are in the invoice's currency: invoice_record_payment refuses any other.
    return invoice.payments.aggregate(total=Sum("amount"))["total"] or Decimal("0")


def invoice_balance(invoice: Invoice) -> Money:
    return Money(invoice.total.amount - invoice_paid_amount(invoice), invoice.currency)
