"""Invoices: numbered when issued, issued for what a service is billed, settled when paid.

Numbers are gapless and sequential per year. Issuing sends `invoice_issued`
(a billing run's batch sends `invoices_issued` once), which the payments app
(above this one) listens to: it applies account credit and charges a saved card. Payments are recorded there
(`payments.services.payment_record`); when one clears the balance it calls
`invoice_settle`, which moves the order or the service on: a paid order
starts provisioning, a paid renewal advances the period and lifts grace or
suspension (see `lifecycle`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast

from django.conf import settings
from django.db import connections, router
from django.db.models import F
from django.utils import timezone
from djmoney.money import Money

from catalog.models import NotificationEvent

from .bulk import (
    OneOf,
    ids_give,
    ids_take,
    instances_built,
    instances_insert,
    instances_insert_returning,
    instances_written,
    rows_insert,
    values_insert_sql,
)
from .events import Kind, service_event_record, service_events_bulk
from .lifecycle import order_mark_paid, service_invoice_paid
from .models import Invoice, InvoiceLine, InvoiceNumberCounter, LineKind, Order, Service
from .notifications import BatchTexts, emailed, notify_invoice, notify_invoices_issued
from .signals import invoice_issued, invoices_issued, invoices_payers


def invoice_numbers_take(*, year: int, count: int = 1) -> list[str]:
    """The next `count` numbers of `year`, e.g. INV-2026-000123; call it in the issuing transaction.

    The year's counter row stays locked until that transaction ends, so two
    invoices never get one number, and a rollback leaves no gap.
    """
    last = _counter_advance(year=year, count=count)
    if last is None:
        # The year's first invoice; get_or_create survives two of them racing to create it.
        InvoiceNumberCounter.objects.get_or_create(year=year)
        last = _counter_advance(year=year, count=count)
        assert last is not None  # the row exists now, and rows are never deleted
    prefix = settings.BILLING_INVOICE_PREFIX
    # The same number as _NUMBER_SQL writes.
    return [f"{prefix}-{year}-{number:06d}" for number in range(last - count + 1, last + 1)]


# An invoice number as invoice_numbers_take writes it (`%s`: the prefix and year, "INV-2026-"),
# from the counter's `last_number`: at least six digits, zero-padded.
_NUMBER_SQL = "%s || lpad({last}::text, greatest(6, length({last}::text)), '0')"


def _counter_advance(*, year: int, count: int) -> int | None:
    """Move the year's counter on and return its new last number; None with no counter yet.

    One statement locks, increments and reads the row (UPDATE ... RETURNING, on
    PostgreSQL and SQLite alike): every invoice waits on this row, so it is
    held from here to commit with no round trip spent on reading it first.
    """
    connection = connections[router.db_for_write(InvoiceNumberCounter)]
    quote = connection.ops.quote_name
    meta = InvoiceNumberCounter._meta
    # Concrete fields, so their columns are set (the stubs type them optional).
    last = quote(str(meta.get_field("last_number").column))
    year_column = quote(str(meta.get_field("year").column))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} SET {last} = {last} + %s "
            f"WHERE {year_column} = %s RETURNING {last}",
            [count, year],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def invoice_number_take(*, year: int) -> str:
    return invoice_numbers_take(year=year)[0]


def invoice_issue(*, invoice: Invoice) -> Invoice:
    """Number a complete invoice and announce it; call it last in the issuing transaction.

    Last, because the counter row is locked from here to commit: every other
    issue waits for it.
    """
    if not invoice.number:
        year = timezone.localtime(invoice.issued_at or timezone.now()).year
        invoice.number = invoice_number_take(year=year)
        invoice.save(update_fields=["number"])
    _announce(invoice)
    return invoice


def invoice_issue_new(*, invoice: Invoice, lines: list[InvoiceLine]) -> Invoice:
    """Number, write and announce an invoice not saved yet, with its lines.

    The number is taken before the row is written, which saves writing it
    twice; call this last in the issuing transaction, as `invoice_issue`.
    """
    # Issued now: issued_at is filled as the row is written.
    year = timezone.localtime().year
    if connections[router.db_for_write(Invoice)].vendor == "postgresql":
        _invoice_insert_numbered(invoice, year)
    else:
        invoice.number = invoice_number_take(year=year)
        instances_insert_returning(Invoice, [invoice])
    for line in lines:
        line.invoice = invoice
    instances_insert(InvoiceLine, lines)
    _announce(invoice)
    return invoice


def _invoice_insert_numbered(invoice: Invoice, year: int) -> None:
    """Take the year's next number and write the invoice with it, in one statement
    (PostgreSQL): the counter moves in a writable CTE (created by the year's first
    invoice, ON CONFLICT moving it otherwise), and stays locked until commit."""
    connection = connections[router.db_for_write(Invoice)]
    quote = connection.ops.quote_name
    meta = InvoiceNumberCounter._meta
    table = quote(meta.db_table)
    last = quote(str(meta.get_field("last_number").column))
    year_column = quote(str(meta.get_field("year").column))
    sql, params = values_insert_sql(Invoice, [invoice], raw={"number": "(SELECT number FROM n)"})
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH n AS (INSERT INTO {table} ({year_column}, {last}) VALUES (%s, 1) "
            f"ON CONFLICT ({year_column}) DO UPDATE SET {last} = {table}.{last} + 1 "
            f"RETURNING {_NUMBER_SQL.format(last=last)} AS number) "
            f"{sql} RETURNING {quote(str(Invoice._meta.pk.column))}, "
            f"{quote(str(Invoice._meta.get_field('number').column))}",
            [year, f"{settings.BILLING_INVOICE_PREFIX}-{year}-", *params],
        )
        [(pk, number)] = cursor.fetchall()
    invoice.number = number
    ids_give([invoice], [pk])


def _announce(invoice: Invoice) -> None:
    responses = invoice_issued.send(sender=Invoice, invoice=invoice)
    if any(response for _, response in responses):
        # A receiver changed the invoice (account credit paid some of it): the caller
        # reads it next to decide where the customer goes.
        invoice.refresh_from_db()


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


@dataclass
class RenewalInvoices:
    """A batch's renewal invoices as `renewal_invoices_prepare` left them: not numbered yet."""

    invoices: list[Invoice]
    # Each invoice's lines.
    groups: list[list[LineSpec]]
    # The invoices' rows, to write once numbered; None when written already, unnumbered
    # (where no ids can be taken before a row is written: SQLite).
    rows: list[tuple[Any, ...]] | None

    @property
    def billed(self) -> list[tuple[Invoice, list[Service]]]:
        """Each invoice with the services it bills, in the order of its lines."""
        # A service with overage lines is on its invoice more than once: it is one service.
        return [
            (invoice, list({spec.service.id: spec.service for spec in group}.values()))
            for invoice, group in zip(self.invoices, self.groups, strict=True)
        ]


_INVOICE_COLUMNS = ("id", "number", "customer_id", "kind", "period_start", "period_end",
                    "currency", "total", "total_currency", "issued_at", "due_at")  # fmt: skip


def renewal_invoices_prepare(specs: list[LineSpec]) -> RenewalInvoices:
    """One invoice per customer, due day (UTC) and currency, a line per spec, its lines
    written: `renewal_invoices_issue` numbers, writes and announces the invoices, last in the
    same transaction.

    The invoice falls due with the earliest of its lines. The billing run
    passes every due service of a customer at once (it holds the customer's
    lock), so a customer gets one invoice a day per currency. Call it holding
    the services' locks. The invoices wait to be numbered because every invoice
    waits on the year's counter from its number to commit: what needs no number
    is done before, so two billing processes overlap all of it.
    """
    # Due the same day: the services of one order are set up (and so renew) moments apart.
    by_day: dict[tuple[int, date, str], list[LineSpec]] = defaultdict(list)
    for spec in specs:
        day = spec.due_at.astimezone(UTC).date()
        by_day[(spec.service.customer_id, day, spec.service.currency)].append(spec)
    groups = list(by_day.values())
    issued_at = timezone.now()
    unnumbered = [
        ("", customer_id, Invoice.Kind.RENEWAL,
         # The periods billed: an overage line's period is the one that ended.
         min(s.period_start for s in group if s.kind == LineKind.PRICE),
         max(s.period_end for s in group if s.kind == LineKind.PRICE),
         currency, sum((spec.amount.amount for spec in group), Decimal(0)), currency, issued_at,
         min(spec.due_at for spec in group))
        for (customer_id, _, currency), group in by_day.items()
    ]  # fmt: skip
    # On PostgreSQL the ids come from the sequence and the rows are written once numbered,
    # after their lines (foreign keys are checked at commit); elsewhere written now.
    ids = ids_take(Invoice, len(unnumbered))
    written = ids is None
    if ids is None:
        ids = rows_insert(Invoice, _INVOICE_COLUMNS[1:], unnumbered, with_ids=True)
    rows = [(pk, *row) for pk, row in zip(ids, unnumbered, strict=True)]
    # The payments receivers get them as instances, built from the rows.
    invoices = instances_built(
        Invoice, (dict(zip(_INVOICE_COLUMNS, row, strict=True)) for row in rows)
    )
    rows_insert(
        InvoiceLine,
        ("invoice_id", "kind", "description", "unit_amount", "unit_amount_currency", "quantity",
         "amount", "amount_currency", "service_id", "period_start", "period_end", "sort_order"),
        (
            (invoice.id, spec.kind, spec.description, spec.amount.amount, invoice.currency, 1,
             spec.amount.amount, invoice.currency, spec.service.id, spec.period_start,
             spec.period_end, index)
            for invoice, group in zip(invoices, groups, strict=True)
            for index, spec in enumerate(group)
        ),
    )  # fmt: skip
    return RenewalInvoices(invoices, groups, None if written else rows)


def renewal_invoices_issue(prepared: RenewalInvoices) -> list[tuple[Invoice, list[Service]]]:
    """Number the invoices `renewal_invoices_prepare` made, write and announce them; call it
    last in the transaction, since the year's counter stays locked from here to commit.

    A zero invoice is paid at once, as a renewal's always was; the customers are
    told in one notification task. Returns each invoice with the services it
    bills, its status as the payments receivers left it (account credit may have paid it).
    """
    invoices = prepared.invoices
    numbers = invoice_numbers_take(year=timezone.localtime().year, count=len(invoices))
    for invoice, number in zip(invoices, numbers, strict=True):
        invoice.number = number
    if prepared.rows is None:
        instances_written(invoices, ("number",))
    else:
        rows_insert(
            Invoice,
            _INVOICE_COLUMNS,
            (
                (row[0], number, *row[2:])
                for row, number in zip(prepared.rows, numbers, strict=True)
            ),
        )
    issued = prepared.billed
    emails = notify_invoices_issued(issued)
    texts = BatchTexts()
    # An event per line, saying whether the customer was emailed the invoice: one row
    # where an "email queued" event after it would be a second.
    # An invoice's events share their data: one object, written once (bulk.rows_insert).
    data = [
        {"invoice": invoice.id, "events": emails[invoice.id]}
        if invoice.id in emails
        else {"invoice": invoice.id}
        for invoice in invoices
    ]
    service_events_bulk(
        (
            spec.service.id,
            Kind.INVOICE_ISSUED,
            f"Invoice {invoice.number} issued: {spec.description}, {texts.money(spec.amount)}, due "
            f"{texts.date(spec.due_at)}{emailed(emails.get(invoice.id, []))}",
            invoice_data,
        )
        for invoice, group, invoice_data in zip(invoices, prepared.groups, data, strict=True)
        for spec in group
    )
    # The payments app applies account credit and charges saved cards, for the whole batch.
    responses = invoices_issued.send(sender=Invoice, invoices=invoices)
    if any(response for _, response in responses):
        # Credit paid some: their rows changed (a paid one moved its services on).
        statuses = dict(
            Invoice.objects.filter(OneOf(F("pk"), [invoice.id for invoice in invoices]))
            .exclude(status=Invoice.Status.UNPAID)
            .values_list("pk", "status")
        )
        for invoice in invoices:
            invoice.status = statuses.get(invoice.id, invoice.status)
    for invoice in invoices:
        if invoice.total.amount == 0:
            invoice_settle(invoice)
    return issued


def renewal_payers(invoices: list[Invoice]) -> set[int]:
    """The customers of `invoices` whose invoices the payments app may pay as they are
    issued (account credit); ask holding their locks, which every change of credit takes."""
    customer_ids = {invoice.customer_id for invoice in invoices}
    payers: set[int] = set()
    for _, response in invoices_payers.send(sender=Invoice, customer_ids=customer_ids):
        payers |= cast("set[int]", response)  # the stubs type a response as str
    return payers


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
    invoice_issue(invoice=invoice)
    service_event_record(
        service,
        Kind.INVOICE_ISSUED,
        f"Invoice {invoice.number} issued: {description}, {amount}",
        data={"invoice": invoice.pk},
    )
    notify_invoice(NotificationEvent.INVOICE_CREATED, invoice)
    if amount.amount == 0:
        invoice_settle(invoice)
    return invoice


def service_period_invoice(service: Service) -> Invoice | None:
    """The paid invoice that bought the service's current period: its renewal, else its order's
    (the first period). None when neither did."""
    renewal = (
        Invoice.objects.filter(
            status=Invoice.Status.PAID,
            kind=Invoice.Kind.RENEWAL,
            lines__service=service,
            lines__period_start=service.current_period_start,
        )
        .order_by("-pk")
        .first()
    )
    if renewal is not None or service.current_period_start != service.billing_anchor:
        return renewal
    return Invoice.objects.filter(
        order_id=service.order_id, kind=Invoice.Kind.ORDER, status=Invoice.Status.PAID
    ).first()


def invoice_settle(invoice: Invoice, order: Order | None = None) -> None:
    """The invoice is paid in full: its order is paid, or its service's period moves on.

    Called holding the invoice's row lock (payments.services.payment_record does).
    """
    invoice.status = Invoice.Status.PAID
    invoice.paid_at = timezone.now()
    invoice.save(update_fields=["status", "paid_at"])
    if invoice.service_id or invoice.kind == Invoice.Kind.RENEWAL:
        service_invoice_paid(invoice)
    elif invoice.order_id:
        order = order or Order.objects.select_for_update().get(pk=invoice.order_id)
        if order.status == Order.Status.AWAITING_PAYMENT:
            order_mark_paid(order)
