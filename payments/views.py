"""Customer pages of money: an invoice and how to pay it, the invoice document, billing."""

from __future__ import annotations

import pathlib
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from subscriptions.accounts import invoice_bill_to
from subscriptions.selectors import customer_invoices

from . import selectors, services
from .gateways.base import WebhookRejected
from .models import GatewayInstance


def _pay_options(invoice, posted_gateway=None, posted_form=None) -> list[dict]:
    """Each gateway the customer may use for this invoice: its form or its instructions."""
    options = []
    for gateway in selectors.gateways_for(currency=invoice.currency):
        plugin = gateway.plugin
        form = None
        if plugin.online:
            form = (
                posted_form
                if posted_gateway is not None and posted_gateway.pk == gateway.pk
                else plugin.payment_form(prefix=f"gateway{gateway.pk}")
            )
        options.append(
            {
                "gateway": gateway,
                "online": plugin.online,
                "redirects": plugin.redirects,
                "is_test": plugin.key == "test",
                "form": form,
                "instructions": plugin.instructions(gateway, invoice),
            }
        )
    return options


def _invoice_page_again(request, invoice, *, status: int, **kwargs):
    """The invoice's page after a refused payment: read with all it shows (paying read
    the invoice alone)."""
    invoice = selectors.invoice_for_customer_or_404(customer=request.user, pk=invoice.pk)
    return _invoice_page(request, invoice, status=status, **kwargs)


def _invoice_page(request, invoice, *, status=200, errors=(), gateway=None, form=None):
    balance = services.invoice_balance(invoice)
    return render(
        request,
        "payments/invoice.html",
        {
            "invoice": invoice,
            "balance": balance,
            "paid": services.invoice_paid(invoice),
            "pay_options": _pay_options(invoice, gateway, form) if balance.amount > 0 else [],
            "attempt_key": uuid.uuid4().hex,
            "errors": errors,
        },
        status=status,
    )


@login_required
def invoice_detail(request, pk: int):
    invoice = selectors.invoice_for_customer_or_404(customer=request.user, pk=pk)
    if request.GET.get("paid") and invoice.status == invoice.Status.UNPAID:
        messages.info(request, "Thank you: your payment is being confirmed.")
    return _invoice_page(request, invoice)


@login_required
@require_POST
def invoice_pay(request, pk: int, gateway_pk: int):
    invoice = selectors.invoice_for_customer_or_404(customer=request.user, pk=pk, page=False)
    gateway = GatewayInstance.objects.filter(pk=gateway_pk, is_active=True).first()
    if gateway is None:
        raise Http404("No such payment method.")
    gateway = gateway.get_real_instance()
    form = gateway.plugin.payment_form(request.POST, prefix=f"gateway{gateway.pk}")
    if not form.is_valid():
        return _invoice_page_again(request, invoice, status=400, gateway=gateway, form=form)
    if gateway.plugin.redirects:
        return _checkout_redirect(request, invoice, gateway, form.cleaned_data)
    try:
        payment = services.invoice_pay(
            invoice=invoice,
            customer=request.user,
            gateway=gateway,
            data=form.cleaned_data,
            attempt_key=request.POST.get("attempt_key", "")[:64],
        )
    except ValidationError as error:
        return _invoice_page_again(request, invoice, status=409, errors=error.messages)
    if payment.status != payment.Status.SUCCEEDED:
        messages.error(request, f"The payment did not go through: {payment.failure_message}")
        return redirect("payments:invoice", pk=invoice.pk)
    messages.success(request, f"Thank you: {payment.amount} received for invoice {invoice}.")
    if invoice.order_id:
        return redirect("subscriptions:order", pk=invoice.order_id)
    return redirect("payments:invoice", pk=invoice.pk)


def _checkout_redirect(request, invoice, gateway, data: dict):
    page = request.build_absolute_uri(reverse("payments:invoice", args=[invoice.pk]))
    try:
        url = services.invoice_checkout_start(
            invoice=invoice,
            customer=request.user,
            gateway=gateway,
            success_url=f"{page}?paid=1",
            cancel_url=page,
            attempt_key=request.POST.get("attempt_key", "")[:64],
            save_card=bool(data.get("save_card")),
        )
    except ValidationError as error:
        return _invoice_page_again(request, invoice, status=409, errors=error.messages)
    return redirect(url)


@csrf_exempt
@require_POST
def gateway_webhook(request, gateway_pk: int):
    """A gateway's signed event; only a verified one is acted on, and each one once."""
    gateway = GatewayInstance.objects.filter(pk=gateway_pk).first()
    if gateway is None or not gateway.get_real_instance().plugin.redirects:
        raise Http404("No such gateway.")
    gateway = gateway.get_real_instance()
    try:
        event = gateway.plugin.parse_webhook(gateway, request.body, request.headers)
    except WebhookRejected as error:
        return JsonResponse({"error": str(error)}, status=400)
    result = services.gateway_event_handle(gateway=gateway, event=event)
    return JsonResponse({"received": True, "result": result})


def _document_context(invoice) -> dict:
    return {
        "invoice": invoice,
        "balance": services.invoice_balance(invoice),
        "paid": services.invoice_paid(invoice),
        "bill_to": invoice_bill_to(invoice=invoice),
        "seller": {
            "name": settings.BILLING_SELLER_NAME,
            "address": settings.BILLING_SELLER_ADDRESS,
            "tax_id": settings.BILLING_SELLER_TAX_ID,
            "logo": settings.BILLING_SELLER_LOGO,
        },
    }


@login_required
def invoice_document(request, pk: int):
    invoice = selectors.invoice_for_viewer_or_404(user=request.user, pk=pk)
    return render(request, "payments/invoice_document.html", _document_context(invoice))


def static_files_first(static_url: str):
    """A WeasyPrint fetcher that reads our own static files from disk, not over HTTP.

    The document links its stylesheet like any page; fetching it from this very
    server would wait on a worker that may be the one rendering the PDF.
    """
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticFilesFirst(URLFetcher):
        def fetch(self, url, headers=None):
            path = (
                finders.find(url.removeprefix(static_url)) if url.startswith(static_url) else None
            )
            if path:
                body = pathlib.Path(path).read_bytes()
                return URLFetcherResponse(url, body=body, headers={"Content-Type": "text/css"})
            return super().fetch(url, headers)

    return StaticFilesFirst()


@login_required
def invoice_pdf(request, pk: int):
    # Imported here: WeasyPrint loads Pango, which only this view needs.
    from weasyprint import HTML

    invoice = selectors.invoice_for_viewer_or_404(user=request.user, pk=pk)
    html = render_to_string(
        "payments/invoice_document.html", _document_context(invoice), request=request
    )
    pdf = HTML(
        string=html,
        base_url=request.build_absolute_uri("/"),
        url_fetcher=static_files_first(request.build_absolute_uri(settings.STATIC_URL)),
    ).write_pdf()
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{invoice.number}.pdf"'
    return response


@login_required
def billing(request):
    customer = request.user
    invoices = list(customer_invoices(customer=customer)[:50])
    return render(
        request,
        "payments/billing.html",
        {
            "invoices": invoices,
            "credit": services.credit_balances(customer=customer),
            "credit_entries": selectors.customer_credit_entries(customer=customer)[:50],
            "payments": selectors.customer_payments(customer=customer)[:50],
            "saved_methods": selectors.customer_saved_methods(customer=customer),
        },
    )


def _saved_method_change(request, pk: int, change, done: str):
    method = selectors.customer_saved_method_or_404(customer=request.user, pk=pk)
    try:
        change(method=method, customer=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, done.format(method=method))
    return redirect("payments:billing")


@login_required
@require_POST
def saved_method_make_default(request, pk: int):
    return _saved_method_change(
        request, pk, services.saved_method_make_default, "{method} pays your renewals now."
    )


@login_required
@require_POST
def saved_method_remove(request, pk: int):
    return _saved_method_change(request, pk, services.saved_method_remove, "{method} is removed.")
