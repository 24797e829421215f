"""Bank transfer: the customer sends money with the invoice number; staff record it."""

from __future__ import annotations

from .base import ConnectionResult, Gateway, RefundResult


class BankTransferPlugin(Gateway):
    key = "bank_transfer"
    name = "Bank transfer"
    online = False

    def test_connection(self, instance) -> ConnectionResult:
        if not instance.instructions.strip():
            return ConnectionResult(False, "No payment instructions are set.")
        return ConnectionResult(True, "Nothing to connect to; customers see the instructions.")

    def instructions(self, instance, invoice) -> str:
        return (
            f"{instance.instructions.strip()}\n\n"
            f"Amount: {invoice.total}\nReference: {invoice.number}"
        )

    def refund(self, instance, payment, amount, idempotency_key: str) -> RefundResult:
        # Money sent back by bank transfer leaves through staff's bank, not through us.
        return RefundResult(ok=True, message="Transfer the refund to the customer by hand.")
