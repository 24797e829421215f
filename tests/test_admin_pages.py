"""Every registered admin opens: its list, add and change pages."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone
from djmoney.money import Money

from catalog.demo import load_demo
from catalog.models import Package
from payments.demo import load_demo_gateways
from payments.models import SavedPaymentMethod, StripeGateway, WebhookEvent
from payments.services import credit_adjust, payment_record, payment_refund
from subscriptions.models import ScheduledPriceChange
from subscriptions.ordering import order_place

REGISTERED_MODELS = sorted(admin.site._registry, key=lambda model: model._meta.label)
PAGES = ["changelist", "add", "change"]


@pytest.fixture
def store(db, staff_user, customer):
    """At least one object of every model the admin shows: a demo store with a paid order."""
    load_demo()
    load_demo_gateways()
    Group.objects.create(name="Support")
    package = Package.objects.filter(name="VPS S").get()
    price = package.prices.get(name="Monthly")
    order = order_place(
        customer=customer,
        package=package,
        price=price,
        variant_options=[package.variants.get().options.first()],
        quantity=1,
        currency="USD",
        checkout_fields={"label": "demo-vps"},
    )
    invoice = order.invoices.get()
    payment = payment_record(
        method="bank_transfer", invoice=invoice, amount=invoice.total, recorded_by=staff_user
    )
    payment_refund(payment=payment, amount=Money(1, "USD"), reason="goodwill")
    credit_adjust(customer=customer, amount=Money(5, "USD"), note="welcome credit")
    stripe = StripeGateway.objects.create(
        name="Stripe", currencies="USD", secret_key="sk_test_x", webhook_secret="whsec_x"
    )
    WebhookEvent.objects.create(gateway=stripe, event_id="evt_1", type="customer.created")
    SavedPaymentMethod.objects.create(
        customer=customer, gateway=stripe, gateway_customer_id="cus_1",
        gateway_method_id="pm_1", label="Visa 4242", is_default=True,
    )  # fmt: skip
    # A price change staff scheduled for the service.
    service = order.services.get()
    ScheduledPriceChange.objects.create(
        service=service,
        currency=service.currency,
        recurring_amount=service.recurring_amount,
        package_amount=service.recurring_amount,
        effective_at=timezone.now(),
    )
    # The login records (django-axes): a login, then a failed attempt (a login would clear it).
    login = reverse("login")
    Client().post(login, {"username": "ann@example.com", "password": "ann-password-1"})
    Client().post(login, {"username": "nobody@example.com", "password": "wrong"})


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("model", REGISTERED_MODELS, ids=lambda model: model._meta.label)
def test_each_registered_admin_page_opens_for_staff(staff_client, store, staff_user, model, page):
    opts = model._meta
    url_name = f"admin:{opts.app_label}_{opts.model_name}_{page}"
    if page == "change":
        obj = model._default_manager.order_by("pk").first()
        assert obj is not None, f"the store fixture has no {opts.label} to open"
        url = reverse(url_name, args=[obj.pk])
    else:
        url = reverse(url_name)

    response = staff_client.get(url)

    request = RequestFactory().get(url)
    request.user = staff_user
    model_admin = admin.site.get_model_admin(model)
    if page == "add" and not model_admin.has_add_permission(request):
        # Records only the system writes (orders, invoices) have no add page.
        assert response.status_code == 403
    else:
        assert response.status_code == 200, response.content[:2000]
