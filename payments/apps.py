from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self):
        from subscriptions.signals import invoice_issued

        from . import receivers

        # subscriptions may not import payments: it announces, payments acts.
        invoice_issued.connect(receivers.apply_credit_to_issued_invoice, dispatch_uid="payments")
