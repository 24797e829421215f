from __future__ import annotations

from django.urls import path

from . import views

app_name = "payments"

urlpatterns = [
    path("account/billing/", views.billing, name="billing"),
    path("account/invoices/<int:pk>/", views.invoice_detail, name="invoice"),
    path("account/invoices/<int:pk>/pay/<int:gateway_pk>/", views.invoice_pay, name="pay"),
    path("account/invoices/<int:pk>/document/", views.invoice_document, name="invoice_document"),
    path("account/invoices/<int:pk>/invoice.pdf", views.invoice_pdf, name="invoice_pdf"),
    path("payments/gateways/<int:gateway_pk>/webhook/", views.gateway_webhook, name="webhook"),
    path(
        "account/billing/methods/<int:pk>/default/",
        views.saved_method_make_default,
        name="saved_method_default",
    ),
    path(
        "account/billing/methods/<int:pk>/remove/",
        views.saved_method_remove,
        name="saved_method_remove",
    ),
]
