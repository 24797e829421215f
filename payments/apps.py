from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self):
        from subscriptions.signals import (
            invoice_issued,
            invoices_issued,
            invoices_payers,
            plan_change_credit_due,
        )

        from . import receivers

        # subscriptions may not import payments: it announces, payments acts.
        # Credit first: what it leaves unpaid is what a saved card is charged.
        invoice_issued.connect(
            receivers.apply_credit_to_issued_invoice, dispatch_uid="payments_credit"
        )
        invoice_issued.connect(receivers.charge_issued_renewal, dispatch_uid="payments_renewal")
        plan_change_credit_due.connect(
            receivers.credit_plan_change, dispatch_uid="payments_plan_change_credit"
        )
        invoices_issued.connect(receivers.settle_issued_invoices, dispatch_uid="payments_batch")
        invoices_payers.connect(receivers.issued_invoices_payers, dispatch_uid="payments_payers")
