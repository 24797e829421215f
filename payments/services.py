"""Writes of money in: payments recorded, charged, refunded; account credit moved.

`payment_record` is the one function that records money received against an
invoice: staff, gateways and account credit all go through it. It takes the
invoice's row lock (after its order's, the order `order_cancel` takes them
in), so payments, cancellations and refunds of one invoice run one at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone
from djmoney.money import Money

from catalog.errors import ErrorCode, refuse
from catalog.models import NotificationEvent
from catalog.selectors import PreparedRead
from subscriptions.bulk import OneOf
from subscriptions.events import Kind, service_events_record
from subscriptions.invoicing import invoice_settle
from subscriptions.models import Invoice, Order
from subscriptions.notifications import notify_invoice
from subscriptions.ordering import order_cancel, order_never_provisioned

from .gateways.base import ChargeRequest, GatewayError, GatewayEvent
from .models import (
    CreditEntry,
    CreditNote,
    GatewayInstance,
    Payment,
    SavedPaymentMethod,
    WebhookEvent,
)

ZERO = Decimal("0")
CENT = Decimal("0.01")


def _sum_to_money(total: Decimal | None, currency: str) -> Money:
    """A SUM of stored amounts as Money: SQLite sums decimals as floats (4.37 comes back as
    4.37000000000000), which no money field would store; amounts are whole cents."""
    return Money((total or ZERO).quantize(CENT), currency)


def invoice_paid(invoice: Invoice) -> Money:
    """What the invoice kept of the money received: less overpayments moved to credit and refunds."""
    total = Payment.objects.filter(invoice=invoice, status__in=Payment.RECEIVED_STATUSES).aggregate(
        kept=Sum(F("amount") - F("credited") - F("refunded"))
    )["kept"]
    # Payments are in the invoice's currency: payment_record refuses any other.
    return _sum_to_money(total, invoice.currency)


def invoice_balance(invoice: Invoice) -> Money:
    """What is still to pay; nothing on an invoice that is settled or cancelled."""
    if invoice.status != Invoice.Status.UNPAID:
        return Money(ZERO, invoice.currency)
    return invoice.total - invoice_paid(invoice)


def credit_balance(*, customer, currency: str) -> Money:
    total = CreditEntry.objects.filter(customer=customer, amount_currency=currency).aggregate(
        total=Sum("amount")
    )["total"]
    return _sum_to_money(total, currency)


def credit_balances(*, customer) -> list[Money]:
    """The customer's account credit in each currency they have any."""
    rows = (
        CreditEntry.objects.filter(customer=customer)
        .values("amount_currency")
        .annotate(total=Sum("amount"))
        .order_by("amount_currency")
    )
    return [Money(row["total"], row["amount_currency"]) for row in rows if row["total"]]


def _lock_invoice(invoice: Invoice) -> Invoice:
    if invoice.order_id:
        # The order first, as order_cancel takes them: no deadlock with a cancellation.
        Order.objects.select_for_update().filter(pk=invoice.order_id).exists()
    return (
        Invoice.objects.select_for_update(of=("self",))
        .select_related("order", "service")
        .get(pk=invoice.pk)
    )


@transaction.atomic
def payment_record(
    *,
    invoice: Invoice,
    amount: Money,
    method: str,
    gateway: GatewayInstance | None = None,
    transaction_id: str = "",
    reference: str = "",
    received_at: datetime | None = None,
    recorded_by=None,
    status: str = Payment.Status.SUCCEEDED,
    failure_message: str = "",
) -> Payment:
    """Record money received for `invoice` (or, with status failed, a declined attempt).

    Partial payments add up; the payment that brings the balance to zero
    settles the invoice (its order is paid, its service's period moves on).
    What is paid beyond the balance becomes the customer's account credit.
    Money a gateway took for an invoice already paid or cancelled is never
    refused (it was received): all of it becomes account credit. A gateway's
    transaction id is recorded once; reporting it again returns the first row.
    """
    invoice = _lock_invoice(invoice)
    if gateway is not None and transaction_id:
        known = Payment.objects.filter(gateway=gateway, transaction_id=transaction_id).first()
        if known is not None:
            return known
    if str(amount.currency) != invoice.currency:
        raise refuse(
            ErrorCode.PAYMENT_CURRENCY,
            f"Invoice {invoice.number} is in {invoice.currency}, not {amount.currency}.",
        )
    if amount.amount <= 0:
        raise refuse(ErrorCode.PAYMENT_AMOUNT, "A payment must be above zero.")
    payable = invoice.status == Invoice.Status.UNPAID
    if not payable and gateway is None and status == Payment.Status.SUCCEEDED:
        raise refuse(
            ErrorCode.INVOICE_NOT_UNPAID,
            f"Invoice {invoice.number} is {invoice.get_status_display().lower()}; "
            "it takes no payment.",
        )
    balance = invoice_balance(invoice)
    zero = Money(ZERO, invoice.currency)
    received = status == Payment.Status.SUCCEEDED
    credited = max(amount - balance, zero) if received else zero
    if method == Payment.Method.ACCOUNT_CREDIT and credited.amount:
        raise refuse(ErrorCode.CREDIT_BEYOND_BALANCE, "Account credit pays at most the balance.")
    payment = Payment(
        invoice=invoice,
        customer_id=invoice.customer_id,
        amount=amount,
        gateway=gateway,
        method=method,
        transaction_id=transaction_id,
        reference=reference,
        status=status,
        failure_message=failure_message[:255],
        credited=credited,
        refunded=zero,
        received_at=received_at or timezone.now(),
        recorded_by=recorded_by,
    )
    # The fields' own checks (an amount too large for its column is a clear error);
    # the check constraints hold by the figures above, and the database enforces them.
    payment.full_clean(
        exclude=["invoice", "customer", "gateway", "recorded_by"], validate_constraints=False
    )
    payment.save()
    if not received:
        return payment
    if credited.amount:
        CreditEntry.objects.create(
            customer_id=invoice.customer_id,
            amount=credited,
            kind=CreditEntry.Kind.OVERPAYMENT,
            invoice=invoice,
            payment=payment,
            note=f"Paid beyond the balance of invoice {invoice.number}",
        )
    left = max(balance - amount, zero)
    service_events_record(
        kind=Kind.PAYMENT_RECEIVED,
        message=f"Payment of {amount} received for invoice {invoice.number} ({payment.get_method_display()}), {left} left to pay",
        invoice=invoice,
        data={"payment": payment.pk},
        actor=recorded_by,
    )
    notify_invoice(NotificationEvent.PAYMENT_RECEIVED, invoice, payment_amount=amount, balance=left)
    if payable and left.amount == 0:
        invoice_settle(invoice, invoice.order)
    return payment


def invoice_apply_credit(*, invoice: Invoice) -> Payment | None:
    """Pay what account credit covers of an issued invoice (called as it is issued)."""
    if invoice.status != Invoice.Status.UNPAID or not invoice.total.amount:
        return None
    # Read first without a lock: most customers have no credit, and checkout stays lean.
    rows = _CREDIT_TOTAL.read(invoice.customer_id, invoice.currency)
    if not rows or _sum_to_money(rows[0][0], invoice.currency).amount <= 0:
        return None
    return _apply_credit(invoice)


# What credit_balance() reads, its SQL built once per process: every checkout asks it.
_CREDIT_TOTAL = PreparedRead(
    lambda customer_id, currency: (
        CreditEntry.objects.filter(customer_id=customer_id, amount_currency=currency)
        .values("customer_id")
        .annotate(total=Sum("amount"))
        .order_by()
        .values_list("total")
    ),
    -1_987_654_321,
    "\x1fstand-in currency",
)


def customers_with_credit(customer_ids: Collection[int]) -> set[tuple[int, str]]:
    """(customer id, currency) of each of `customer_ids`' credit balances above zero."""
    return {
        (row["customer_id"], row["amount_currency"])
        for row in CreditEntry.objects.filter(OneOf(F("customer_id"), customer_ids))
        .values("customer_id", "amount_currency")
        .annotate(total=Sum("amount"))
        .filter(total__gt=0)
    }


def invoices_apply_credit(*, invoices: list[Invoice]) -> list[Payment]:
    """`invoice_apply_credit` for a billing run's batch: one query finds who has credit.

    Most customers have none, so the batch costs one aggregate; the few who do
    are paid from it one invoice at a time, under their customer's lock.
    """
    payable = [i for i in invoices if i.status == Invoice.Status.UNPAID and i.total.amount]
    if not payable:
        return []
    with_credit = customers_with_credit({invoice.customer_id for invoice in payable})
    payments = []
    for invoice in payable:
        if (invoice.customer_id, invoice.currency) in with_credit:
            payment = _apply_credit(invoice)
            if payment is not None:
                payments.append(payment)
    return payments


@transaction.atomic
def _apply_credit(invoice: Invoice) -> Payment | None:
    # One use of a customer's credit at a time: two invoices never spend it twice.
    get_user_model().objects.select_for_update().filter(pk=invoice.customer_id).exists()
    available = credit_balance(customer=invoice.customer_id, currency=invoice.currency)
    if available.amount <= 0:
        return None
    use = min(available, invoice_balance(invoice))
    if use.amount <= 0:
        return None
    payment = payment_record(
        invoice=invoice,
        amount=use,
        method=Payment.Method.ACCOUNT_CREDIT,
        reference="Account credit",
    )
    CreditEntry.objects.create(
        customer_id=invoice.customer_id,
        amount=-use,
        kind=CreditEntry.Kind.APPLIED,
        invoice=invoice,
        payment=payment,
        note=f"Applied to invoice {invoice.number}",
    )
    return payment


@transaction.atomic
def credit_adjust(
    *,
    customer,
    amount: Money,
    note: str,
    kind: str = CreditEntry.Kind.ADJUSTMENT,
    invoice: Invoice | None = None,
) -> CreditEntry:
    """Give (or take back) account credit: staff by hand, or what a credit note grants."""
    if amount.amount == 0:
        raise refuse(ErrorCode.CREDIT_ZERO, "Enter an amount other than zero.")
    get_user_model().objects.select_for_update().filter(pk=customer.pk).exists()
    if (
        amount.amount < 0
        and credit_balance(customer=customer, currency=str(amount.currency)) < -amount
    ):
        raise refuse(ErrorCode.CREDIT_SHORT, "The customer has less credit than that.")
    return CreditEntry.objects.create(
        customer=customer, amount=amount, kind=kind, invoice=invoice, note=note
    )


@transaction.atomic
def plan_change_credit(*, invoice: Invoice, amount: Money, reason: str) -> CreditNote:
    """Credit the unused part of a period a plan change made cheaper: a credit note on the
    invoice that paid for the period, and account credit the customer's next invoices use."""
    note = CreditNote.objects.create(
        customer_id=invoice.customer_id,
        invoice=invoice,
        kind=CreditNote.Kind.PLAN_CHANGE,
        amount=amount,
        reason=reason[:255],
    )
    credit_adjust(
        customer=invoice.customer,
        amount=amount,
        note=f"{note.number}: {reason}"[:255],
        kind=CreditEntry.Kind.PLAN_CHANGE,
        invoice=invoice,
    )
    return note


def invoice_pay(
    *, invoice: Invoice, customer, gateway: GatewayInstance, data: dict, attempt_key: str = ""
) -> Payment:
    """A customer pays the balance of their invoice through an online gateway.

    The charge runs outside any transaction (no lock is held while the
    gateway answers); its result is then recorded through payment_record, a
    decline as a failed payment the customer and staff can see. The attempt
    key makes a double-submitted form one charge and one payment.
    """
    if invoice.customer_id != customer.pk:
        raise refuse(ErrorCode.NOT_OWNER, "This is not your invoice.")
    gateway = gateway.get_real_instance()
    plugin = gateway.plugin
    if not plugin.online or not gateway.takes(invoice.currency):
        raise refuse(
            ErrorCode.GATEWAY_REFUSED,
            f"{gateway.name} does not take payments in {invoice.currency}.",
        )
    balance = invoice_balance(invoice)
    if balance.amount <= 0:
        raise refuse(ErrorCode.NOTHING_DUE, f"Invoice {invoice.number} has nothing to pay.")
    key = f"invoice-{invoice.pk}-{attempt_key or uuid.uuid4().hex}"
    try:
        result = plugin.charge(
            gateway,
            ChargeRequest(
                amount=balance,
                invoice_number=invoice.number,
                customer_email=customer.email,
                idempotency_key=key,
                data=data,
            ),
        )
    except GatewayError as error:
        raise refuse(
            ErrorCode.GATEWAY_UNREACHABLE,
            f"{gateway.name} could not be reached; nothing was charged. Try again. ({error})",
        ) from error
    return payment_record(
        invoice=invoice,
        amount=balance,
        method=result.method,
        gateway=gateway,
        transaction_id=result.transaction_id,
        reference=result.message if result.ok else "",
        status=Payment.Status.SUCCEEDED if result.ok else Payment.Status.FAILED,
        failure_message="" if result.ok else result.message,
    )


def invoice_checkout_start(
    *,
    invoice: Invoice,
    customer,
    gateway: GatewayInstance,
    success_url: str,
    cancel_url: str,
    attempt_key: str = "",
    save_card: bool = False,
) -> str:
    """The gateway's page where the customer pays the balance (a redirecting gateway)."""
    if invoice.customer_id != customer.pk:
        raise refuse(ErrorCode.NOT_OWNER, "This is not your invoice.")
    gateway = gateway.get_real_instance()
    plugin = gateway.plugin
    if not plugin.redirects or not gateway.takes(invoice.currency):
        raise refuse(
            ErrorCode.GATEWAY_REFUSED,
            f"{gateway.name} does not take payments in {invoice.currency}.",
        )
    balance = invoice_balance(invoice)
    if balance.amount <= 0:
        raise refuse(ErrorCode.NOTHING_DUE, f"Invoice {invoice.number} has nothing to pay.")
    try:
        return plugin.checkout_url(
            gateway,
            invoice=invoice,
            amount=balance,
            customer_email=customer.email,
            success_url=success_url,
            cancel_url=cancel_url,
            # The balance is in the key: a part payment since then is a new checkout.
            idempotency_key=f"checkout-{invoice.pk}-{balance.amount}-{attempt_key}",
            save_card=save_card,
        )
    except GatewayError as error:
        raise refuse(
            ErrorCode.GATEWAY_UNREACHABLE,
            f"{gateway.name} could not be reached; nothing was charged. Try again. ({error})",
        ) from error


@transaction.atomic
def gateway_event_handle(*, gateway: GatewayInstance, event: GatewayEvent) -> str:
    """Act on a verified gateway event once: its id is stored in this same transaction.

    The same event delivered twice at once: the second insert of its id waits
    for the first transaction and then fails, so it is answered "duplicate".
    Two events reporting one payment (a session and its intent) are one
    payment through the transaction id. What happened is returned for the log.
    """
    try:
        with transaction.atomic():
            WebhookEvent.objects.create(gateway=gateway, event_id=event.event_id, type=event.type)
    except IntegrityError:
        return "duplicate"
    if event.amount is None or event.invoice_id is None:
        return "ignored"
    invoice = Invoice.objects.filter(pk=event.invoice_id).first()
    if invoice is None:
        return "unknown invoice"
    try:
        payment = payment_record(
            invoice=invoice,
            amount=event.amount,
            method=Payment.Method.CARD,
            gateway=gateway,
            transaction_id=event.transaction_id,
            reference=event.event_id,
        )
    except ValidationError as error:
        # Kept as handled: the same event would be refused again. Staff see it in the log.
        return f"refused: {' '.join(error.messages)}"
    if event.gateway_method_id:
        saved_method_save(
            customer=invoice.customer,
            gateway=gateway,
            gateway_customer_id=event.gateway_customer_id,
            gateway_method_id=event.gateway_method_id,
            label=event.method_label,
        )
    return f"payment {payment.pk}"


# --- saved payment methods and off-session charges of renewals ---------------


@transaction.atomic
def saved_method_save(
    *, customer, gateway, gateway_customer_id: str, gateway_method_id: str, label: str
) -> SavedPaymentMethod:
    """Keep a method the customer let the gateway save; their first one is the default."""
    get_user_model().objects.select_for_update().filter(pk=customer.pk).exists()
    method, created = SavedPaymentMethod.objects.get_or_create(
        gateway=gateway,
        gateway_method_id=gateway_method_id,
        defaults={
            "customer": customer,
            "gateway_customer_id": gateway_customer_id,
            "label": label,
            "is_default": not customer.saved_payment_methods.filter(is_default=True).exists(),
        },
    )
    return method


@transaction.atomic
def saved_method_make_default(*, method: SavedPaymentMethod, customer) -> SavedPaymentMethod:
    if method.customer_id != customer.pk:
        raise refuse(ErrorCode.NOT_OWNER, "This is not your payment method.")
    get_user_model().objects.select_for_update().filter(pk=customer.pk).exists()
    customer.saved_payment_methods.exclude(pk=method.pk).update(is_default=False)
    method.is_default = True
    method.save(update_fields=["is_default"])
    return method


@transaction.atomic
def saved_method_remove(*, method: SavedPaymentMethod, customer) -> None:
    """Forget a method here and at its gateway; the next one becomes the default."""
    if method.customer_id != customer.pk:
        raise refuse(ErrorCode.NOT_OWNER, "This is not your payment method.")
    get_user_model().objects.select_for_update().filter(pk=customer.pk).exists()
    gateway = method.gateway.get_real_instance()
    try:
        gateway.plugin.forget_method(gateway, method)
    except GatewayError as error:
        raise refuse(
            ErrorCode.GATEWAY_UNREACHABLE,
            f"{gateway.name} could not be reached; the card is kept. Try again. ({error})",
        ) from error
    was_default = method.is_default
    method.delete()
    if was_default:
        following = customer.saved_payment_methods.first()
        if following is not None:
            following.is_default = True
            following.save(update_fields=["is_default"])


@transaction.atomic
def payment_refund(
    *, payment: Payment, amount: Money, reason: str = "", refunded_by=None
) -> CreditNote:
    """Give back part or all of a payment, with a credit note.

    Through its gateway when it came through one; account credit goes back to
    credit. The payment's row lock makes two refunds racing add up to at most
    what was paid. An order refunded in full before any of its services was
    provisioned is cancelled, and its stock comes back (once: order_cancel).
    """
    payment = (
        Payment.objects.select_for_update(of=("self",))
        .select_related("invoice", "invoice__order")
        .get(pk=payment.pk)
    )
    if payment.status not in (Payment.Status.SUCCEEDED,):
        raise refuse(
            ErrorCode.REFUND_STATUS,
            f"A {payment.get_status_display().lower()} payment cannot be refunded.",
        )
    if str(amount.currency) != str(payment.amount.currency):
        raise refuse(ErrorCode.REFUND_CURRENCY, f"The payment is in {payment.amount.currency}.")
    refundable = payment.refundable
    if amount.amount <= 0 or amount > refundable:
        raise refuse(
            ErrorCode.REFUND_AMOUNT, f"A refund must be above zero and at most {refundable}."
        )
    done = payment.refunded + amount
    key = f"refund-{payment.pk}-{done.amount}"
    message = ""
    if payment.method == Payment.Method.ACCOUNT_CREDIT:
        CreditEntry.objects.create(
            customer_id=payment.customer_id,
            amount=amount,
            kind=CreditEntry.Kind.REFUND,
            invoice_id=payment.invoice_id,
            payment=payment,
            note=f"Refund of credit applied to invoice {payment.invoice.number}",
        )
    elif payment.gateway_id:
        gateway = payment.gateway.get_real_instance()  # type: ignore[union-attr]  # gateway_id is set
        try:
            result = gateway.plugin.refund(gateway, payment, amount, key)
        except GatewayError as error:
            raise refuse(
                ErrorCode.GATEWAY_UNREACHABLE,
                f"{gateway.name} could not be reached; nothing was refunded. ({error})",
            ) from error
        if not result.ok:
            raise refuse(
                ErrorCode.REFUND_REFUSED, f"{gateway.name} refused the refund: {result.message}"
            )
        message = result.refund_id or result.message
    payment.refunded = done
    if payment.refundable.amount == 0:
        payment.status = Payment.Status.REFUNDED
    payment.save(update_fields=["refunded", "status"])
    note = CreditNote.objects.create(
        customer_id=payment.customer_id,
        invoice_id=payment.invoice_id,
        payment=payment,
        kind=CreditNote.Kind.REFUND,
        amount=amount,
        reason=" – ".join(part for part in (reason, message) if part)[:255],
        created_by=refunded_by,
    )
    order = payment.invoice.order
    if (
        order is not None
        and invoice_paid(payment.invoice).amount == 0
        and order.status == Order.Status.PAID
        and order_never_provisioned(order)
    ):
        order_cancel(order=order, refunded=True)
    return note
