"""Gateways, payments, credit notes and account credit; the invoice page gains money in.

The invoice admin is subscriptions' own, extended here (payments sits above
subscriptions): its page lists payments and credit notes, and offers
"Record a payment" and a refund of each payment, all through payments.services.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from djmoney.money import Money
from polymorphic.admin import (
    PolymorphicChildModelAdmin,
    PolymorphicChildModelFilter,
    PolymorphicParentModelAdmin,
)

from subscriptions import admin as subscriptions_admin
from subscriptions.admin import RecordTable
from subscriptions.models import Invoice

from . import services
from .forms import CreditAdjustmentForm, GatewayInstanceForm, RecordPaymentForm, RefundForm
from .gateways.base import ConnectionResult
from .models import (
    BankTransferGateway,
    CreditEntry,
    CreditNote,
    GatewayInstance,
    Payment,
    SavedPaymentMethod,
    StripeGateway,
    TestCardGateway,
    WebhookEvent,
)


def test_connection(instance: GatewayInstance) -> ConnectionResult:
    try:
        return instance.plugin.test_connection(instance)
    except Exception as error:  # noqa: BLE001 - staff should read any failure, not a 500 page
        return ConnectionResult(ok=False, message=f"The test failed: {error}")


class GatewayInstanceChildAdmin(PolymorphicChildModelAdmin):
    base_model = GatewayInstance
    base_form = GatewayInstanceForm
    # Fields rendered write-only (see provisioning.forms.ProviderInstanceForm).
    secret_fields: tuple[str, ...] = ()

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.secret_fields = self.secret_fields
        return form


@admin.register(BankTransferGateway)
class BankTransferGatewayAdmin(GatewayInstanceChildAdmin):
    fields = ["name", "is_active", "currencies", "sort_order", "instructions"]


@admin.register(TestCardGateway)
class TestGatewayAdmin(GatewayInstanceChildAdmin):
    fields = ["name", "is_active", "currencies", "sort_order"]


@admin.register(StripeGateway)
class StripeGatewayAdmin(GatewayInstanceChildAdmin):
    fields = ["name", "is_active", "currencies", "sort_order", "secret_key", "webhook_secret"]
    secret_fields = ("secret_key", "webhook_secret")


@admin.register(GatewayInstance)
class GatewayInstanceAdmin(PolymorphicParentModelAdmin):
    base_model = GatewayInstance
    child_models = [BankTransferGateway, TestCardGateway, StripeGateway]
    list_display = ["name", "gateway_name", "currencies", "is_active", "payment_count"]
    list_filter = [PolymorphicChildModelFilter, "is_active"]
    search_fields = ["name"]
    actions = ["test_connections"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(payment_count=Count("payments"))

    @admin.display(description="gateway")
    def gateway_name(self, instance: GatewayInstance) -> str:
        return instance.plugin.name

    @admin.display(description="payments", ordering="payment_count")
    def payment_count(self, instance: GatewayInstance) -> int:
        return instance.payment_count

    @admin.action(description="Test connection of the selected gateways")
    def test_connections(self, request, queryset):
        instances = list(GatewayInstance.objects.filter(pk__in=queryset.values("pk")))
        for instance in instances:
            result = test_connection(instance)
            level = messages.SUCCESS if result.ok else messages.ERROR
            verb = "connected" if result.ok else "failed"
            self.message_user(request, f"“{instance}” {verb}: {result.message}", level)
        if request.POST.get("_from_change_page") and len(instances) == 1:
            return HttpResponseRedirect(
                reverse("admin:payments_gatewayinstance_change", args=[instances[0].pk])
            )
        return None


def refund_link(payment: Payment) -> str:
    if payment.status != Payment.Status.SUCCEEDED or not payment.refundable.amount:
        return "–"
    url = reverse("admin:subscriptions_invoice_refund", args=[payment.invoice_id, payment.pk])
    return format_html('<a href="{}">Refund…</a>', url)


admin.site.unregister(Invoice)


@admin.register(Invoice)
class InvoiceAdmin(subscriptions_admin.InvoiceAdmin):
    """The invoice's record page, with what it was paid, refunded and credited."""

    search_fields = ["number", "customer__email"]
    actions = ["mark_paid"]
    change_form_template = "admin/payments/invoice_change_form.html"

    def record_summary(self, invoice: Invoice) -> list[tuple[str, object]]:
        summary = super().record_summary(invoice)
        at = next(i for i, (label, _) in enumerate(summary) if label == "Total") + 1
        return [*summary[:at], ("Balance due", services.invoice_balance(invoice)), *summary[at:]]

    def record_tables(self, invoice: Invoice) -> list[RecordTable]:
        payments = invoice.payments.select_related("gateway", "recorded_by")
        notes = invoice.credit_notes.select_related("payment", "created_by")
        return [
            *super().record_tables(invoice),
            RecordTable("payments", "Payments", ["Payment", "Received", "Amount", "Method",
                                                 "Gateway", "Transaction", "Reference", "Status",
                                                 "To credit", "Recorded by", "Refund"], [
                [subscriptions_admin.admin_link(payment, f"#{payment.pk}"), payment.received_at,
                 payment.amount, payment.get_method_display(), payment.gateway,
                 payment.transaction_id, payment.reference,
                 payment.failure_message or payment.status_label, payment.credited,
                 payment.recorded_by, refund_link(payment)]
                for payment in payments
            ], empty="No payment yet."),
            RecordTable("credit-notes", "Credit notes", ["Credit note", "Kind", "Amount",
                                                         "Reason", "Payment", "By", "Created"], [
                [subscriptions_admin.admin_link(note, note.number), note.get_kind_display(),
                 note.amount, note.reason, note.payment, note.created_by, note.created_at]
                for note in notes
            ], empty="No credit note."),
        ]  # fmt: skip

    def get_urls(self):
        own = [
            path(
                "<int:pk>/record-payment/",
                self.admin_site.admin_view(self.record_payment_view),
                name="subscriptions_invoice_record_payment",
            ),
            path(
                "<int:pk>/refund/<int:payment_pk>/",
                self.admin_site.admin_view(self.refund_view),
                name="subscriptions_invoice_refund",
            ),
        ]
        return own + super().get_urls()

    def _invoice_or_404(self, request, pk: int) -> Invoice:
        # Recording money changes the invoice: the view permission is not enough.
        if not request.user.has_perm("payments.add_payment"):
            raise PermissionDenied
        return get_object_or_404(Invoice, pk=pk)

    def _back(self, invoice: Invoice) -> HttpResponseRedirect:
        return HttpResponseRedirect(
            reverse("admin:subscriptions_invoice_change", args=[invoice.pk])
        )

    def record_payment_view(self, request, pk: int):
        invoice = self._invoice_or_404(request, pk)
        balance = services.invoice_balance(invoice)
        form = RecordPaymentForm(
            request.POST or None,
            initial={"amount": balance.amount, "received_on": None},
        )
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                payment = services.payment_record(
                    invoice=invoice,
                    amount=Money(data["amount"], invoice.currency),
                    method=data["method"],
                    gateway=data["gateway"],
                    transaction_id=data["transaction_id"],
                    reference=data["reference"],
                    received_at=form.received_at(),
                    recorded_by=request.user,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                credited = (
                    f" {payment.credited} went to account credit." if payment.credited else ""
                )
                self.message_user(
                    request, f"Recorded {payment.amount} on {invoice}.{credited}", messages.SUCCESS
                )
                return self._back(invoice)
        return self._form_page(request, invoice, form, f"Record a payment on {invoice}", balance)

    def refund_view(self, request, pk: int, payment_pk: int):
        invoice = self._invoice_or_404(request, pk)
        payment = get_object_or_404(Payment, pk=payment_pk, invoice=invoice)
        form = RefundForm(request.POST or None, initial={"amount": payment.refundable.amount})
        if request.method == "POST" and form.is_valid():
            try:
                note = services.payment_refund(
                    payment=payment,
                    amount=Money(form.cleaned_data["amount"], invoice.currency),
                    reason=form.cleaned_data["reason"],
                    refunded_by=request.user,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                how = f" through {payment.gateway}" if payment.gateway_id else ""
                self.message_user(
                    request, f"Refunded {note.amount}{how}: credit note {note}.", messages.SUCCESS
                )
                return self._back(invoice)
        title = f"Refund {payment.amount} ({payment.get_method_display()}) of {invoice}"
        return self._form_page(request, invoice, form, title, payment.refundable)

    def _form_page(self, request, invoice, form, title, amount):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": invoice,
            "title": title,
            "form": form,
            "amount": amount,
        }
        return TemplateResponse(request, "admin/payments/invoice_money_form.html", context)

    @admin.action(description="Mark selected invoices paid (records a payment of the balance)")
    def mark_paid(self, request, queryset):
        def pay(invoice):
            services.payment_record(
                invoice=invoice,
                amount=services.invoice_balance(invoice),
                method=Payment.Method.OTHER,
                reference=f"marked paid by {request.user}",
                recorded_by=request.user,
            )

        paid = 0
        for invoice in queryset:
            try:
                pay(invoice)
            except ValidationError as error:
                self.message_user(request, f"{invoice}: {' '.join(error.messages)}", messages.ERROR)
            else:
                paid += 1
        if paid:
            self.message_user(request, f"{paid} invoice(s) marked paid.", messages.SUCCESS)


class MoneyRecordAdmin(subscriptions_admin.ReadOnlyAdmin):
    """Money rows are written by services only: staff read them here."""


@admin.register(Payment)
class PaymentAdmin(subscriptions_admin.SnapshotAdmin):
    list_display = ["invoice", "customer", "amount", "method", "gateway", "status",
                    "transaction_id", "received_at", "recorded_by"]  # fmt: skip
    list_filter = ["status", "method", "gateway"]
    search_fields = ["invoice__number", "customer__email", "transaction_id", "reference"]
    list_select_related = ["invoice", "customer", "gateway", "recorded_by"]

    def record_summary(self, payment: Payment) -> list[tuple[str, object]]:
        invoice = payment.invoice
        return [
            ("Payment", f"#{payment.pk}"),
            ("Invoice", subscriptions_admin.admin_link(invoice, invoice.number)),
            ("Customer", subscriptions_admin.customer_link(payment.customer)),
            ("Amount", payment.amount),
            ("Status", payment.failure_message or payment.status_label),
            ("Method", payment.get_method_display()),
            ("Gateway", payment.gateway),
            ("Transaction", payment.transaction_id),
            ("Reference", payment.reference),
            ("To account credit", payment.credited),
            ("Refunded", payment.refunded),
            ("Received", payment.received_at),
            ("Recorded by", payment.recorded_by),
            ("Refund", refund_link(payment)),
        ]

    def record_tables(self, payment: Payment) -> list[RecordTable]:
        return [
            RecordTable("credit-notes", "Credit notes", ["Credit note", "Amount", "Reason",
                                                         "Created"], [
                [subscriptions_admin.admin_link(note, note.number), note.amount, note.reason,
                 note.created_at]
                for note in payment.credit_notes.all()
            ], empty="No refund."),
        ]  # fmt: skip


@admin.register(CreditNote)
class CreditNoteAdmin(subscriptions_admin.SnapshotAdmin):
    list_display = ["number", "customer", "invoice", "kind", "amount", "reason", "created_at"]
    list_filter = ["kind"]
    search_fields = ["invoice__number", "customer__email"]
    list_select_related = ["invoice", "customer"]

    def record_summary(self, note: CreditNote) -> list[tuple[str, object]]:
        return [
            ("Credit note", note.number),
            ("Kind", note.get_kind_display()),
            ("Customer", subscriptions_admin.customer_link(note.customer)),
            ("Invoice", subscriptions_admin.admin_link(note.invoice, note.invoice.number)),
            ("Payment", subscriptions_admin.admin_link(note.payment)),
            ("Amount", note.amount),
            ("Reason", note.reason),
            ("Created by", note.created_by),
            ("Created", note.created_at),
        ]


@admin.register(CreditEntry)
class CreditEntryAdmin(MoneyRecordAdmin):
    """The credit ledger; staff add an adjustment (with its reason), never edit an entry."""

    list_display = ["customer", "amount", "kind", "invoice", "note", "created_at"]
    list_filter = ["kind", "amount_currency"]
    search_fields = ["customer__email", "note"]
    list_select_related = ["customer", "invoice"]
    form = CreditAdjustmentForm
    raw_id_fields = ["customer"]

    def has_add_permission(self, request):
        return request.user.has_perm("payments.add_creditentry")

    def save_model(self, request, obj, form, change):
        entry = services.credit_adjust(customer=obj.customer, amount=obj.amount, note=obj.note)
        # The admin logs and links the row the service wrote.
        obj.pk, obj.kind, obj.created_at = entry.pk, entry.kind, entry.created_at


@admin.register(WebhookEvent)
class WebhookEventAdmin(MoneyRecordAdmin):
    list_display = ["event_id", "type", "gateway", "received_at"]
    list_filter = ["type"]
    search_fields = ["event_id"]


@admin.register(SavedPaymentMethod)
class SavedPaymentMethodAdmin(MoneyRecordAdmin):
    list_display = ["label", "customer", "gateway", "is_default", "created_at"]
    search_fields = ["customer__email", "gateway_method_id"]
    list_select_related = ["customer", "gateway"]
