"""Reads that build the payment pages, each owning its related rows."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from subscriptions.models import Invoice

from .models import CreditEntry, CreditNote, GatewayInstance, Payment, SavedPaymentMethod


def _invoice_page_queryset() -> QuerySet[Invoice]:
    return Invoice.objects.select_related("customer", "order", "service").prefetch_related(
        "lines",
        Prefetch(
            "payments",
            queryset=Payment.objects.select_related("gateway").order_by("received_at", "id"),
        ),
        Prefetch("credit_notes", queryset=CreditNote.objects.order_by("created_at", "id")),
    )


def invoice_for_customer_or_404(*, customer, pk: int, page: bool = True) -> Invoice:
    """The customer's invoice; with `page`, with what its page shows (lines, payments,
    credit notes). Paying reads the invoice alone: the payment reads what it needs
    under the invoice's lock."""
    invoices = _invoice_page_queryset() if page else Invoice.objects.all()
    try:
        return invoices.get(customer=customer, pk=pk)
    except Invoice.DoesNotExist:
        raise Http404("No such invoice.") from None


def invoice_for_viewer_or_404(*, user, pk: int) -> Invoice:
    """The invoice's own customer and staff may open its document; anyone else gets 404."""
    invoices = _invoice_page_queryset()
    staff = user.is_active and user.is_staff and user.has_perm("subscriptions.view_invoice")
    if not staff:
        invoices = invoices.filter(customer=user)
    try:
        return invoices.get(pk=pk)
    except Invoice.DoesNotExist:
        raise Http404("No such invoice.") from None


def gateways_for(*, currency: str) -> list[GatewayInstance]:
    """The active gateways that take `currency`, each as its own subclass."""
    return [
        gateway
        for gateway in GatewayInstance.objects.filter(is_active=True)
        if currency in gateway.currency_list
    ]


def customer_payments(*, customer) -> QuerySet[Payment]:
    return (
        Payment.objects.filter(customer=customer)
        .select_related("invoice", "gateway")
        .order_by("-received_at", "-id")
    )


def customer_credit_entries(*, customer) -> QuerySet[CreditEntry]:
    return CreditEntry.objects.filter(customer=customer).select_related("invoice")


def customer_saved_methods(*, customer) -> QuerySet[SavedPaymentMethod]:
    return SavedPaymentMethod.objects.filter(customer=customer).select_related("gateway")


def customer_saved_method_or_404(*, customer, pk: int) -> SavedPaymentMethod:
    method = customer_saved_methods(customer=customer).filter(pk=pk).first()
    if method is None:
        raise Http404("No such payment method.")
    return method
