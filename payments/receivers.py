"""What payments does when subscriptions announces something (see subscriptions/signals.py)."""

from __future__ import annotations

from .services import invoice_apply_credit


def apply_credit_to_issued_invoice(sender, *, invoice, **kwargs) -> None:
    invoice_apply_credit(invoice=invoice)
