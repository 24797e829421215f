"""What payments does when subscriptions announces something (see subscriptions/signals.py)."""

from __future__ import annotations

from .renewals import renewal_charge_schedule, renewal_charges_schedule
from .services import (
    customers_with_credit,
    invoice_apply_credit,
    invoices_apply_credit,
    plan_change_credit,
)


def apply_credit_to_issued_invoice(sender, *, invoice, **kwargs) -> bool:
    """True when credit paid some of it: the invoice's row changed (see subscriptions.signals)."""
    return invoice_apply_credit(invoice=invoice) is not None


def charge_issued_renewal(sender, *, invoice, **kwargs) -> None:
    renewal_charge_schedule(invoice=invoice)


def credit_plan_change(sender, *, plan_change, invoice, amount, **kwargs) -> None:
    plan_change_credit(
        invoice=invoice,
        amount=amount,
        reason=f"{plan_change.from_package_name} → {plan_change.to_package_name}: "
        "the unused part of the period at the lower price",
    )


def settle_issued_invoices(sender, *, invoices, **kwargs) -> bool:
    """A billing run's batch: credit first, then a saved card is charged what credit left.

    True when credit paid any of them (see subscriptions.signals).
    """
    payments = invoices_apply_credit(invoices=invoices)
    paid = {p.invoice_id for p in payments if p.amount >= p.invoice.total}
    renewal_charges_schedule(invoices=invoices, paid_ids=paid)
    return bool(payments)


def issued_invoices_payers(sender, *, customer_ids, **kwargs) -> set[int]:
    """Of a billing run's batch, the customers whose credit may pay their invoices as issued."""
    return {customer_id for customer_id, _ in customers_with_credit(customer_ids)}
