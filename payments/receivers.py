"""What payments does when subscriptions announces something (see subscriptions/signals.py)."""

from __future__ import annotations

from .renewals import renewal_charge_schedule
from .services import invoice_apply_credit


def apply_credit_to_issued_invoice(sender, *, invoice, **kwargs) -> None:
    invoice_apply_credit(invoice=invoice)


def charge_issued_renewal(sender, *, invoice, **kwargs) -> None:
    renewal_charge_schedule(invoice=invoice)
