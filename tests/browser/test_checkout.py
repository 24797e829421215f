"""The whole path in headless Chromium: browse, pick options, log in, order, see it active."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from catalog.models import Catalog
from payments.services import payment_record
from subscriptions.jobs import provisioning_job_run
from subscriptions.models import Order, ProvisioningJob, Service
from tests.factories import WebhookInstanceFactory, shop_package

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_customer_orders_a_package_and_sees_the_service_become_active(
    page, live_server, webhook_backend
):
    webhook_backend.answer((200, {"remote_id": "room-77"}, 0))
    package, monthly, options = shop_package(
        name="Team Meetings",
        catalog__name="Meetings",
        provider_instance=WebhookInstanceFactory(url=webhook_backend.url),
        provisioning_options={"plan_code": "team", "region": "", "send_settings": True},
    )
    get_user_model().objects.create_user(
        username="cara@example.com", email="cara@example.com", password="cara-password-1"
    )
    catalog = Catalog.objects.get(pk=package.catalog_id)

    # Browse: store, catalog, package.
    page.goto(f"{live_server.url}/store/")
    page.get_by_role("link", name=catalog.name).first.click()
    page.get_by_role("link", name="Team Meetings").first.click()
    page.wait_for_url(re.compile(rf"/store/{catalog.slug}/{package.slug}/"))

    # Pick the options and order.
    page.check(f"#price-{monthly.pk}")
    page.select_option("#variant-region", str(options["us"].pk))
    page.get_by_role("button", name="Order now").click()

    # Log in with the email; the checkout comes back with the choices.
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.fill("#id_username", "cara@example.com")
    page.fill("#id_password", "cara-password-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/order/"))
    summary = page.locator("#order-summary").inner_text()
    assert "Region: America" in summary and "Signup fee" in summary
    assert "19.00" in page.locator("#total-due-now").inner_text()  # 10 + 1 + 5 + 3

    page.fill("#id_checkout-label", "cara-room")
    page.get_by_role("button", name="Place order").click()
    # Not free: the checkout goes straight on to paying the invoice.
    page.wait_for_url(re.compile(r"/account/invoices/\d+/"))
    assert "Unpaid" in page.locator("#invoice-status").inner_text()

    # Staff record the payment; the worker's job runs here, synchronously.
    order = Order.objects.get()
    invoice = order.invoices.get()
    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)
    job = ProvisioningJob.objects.get()
    assert provisioning_job_run(job_id=job.pk) == "done"

    page.goto(f"{live_server.url}/account/")
    page.locator("#services a").first.click()
    assert page.locator("#service-status").inner_text() == "Active"
    service = Service.objects.get()
    assert service.remote_id == "room-77"
    assert webhook_backend.requests[0].json["data"]["checkout_fields"] == {"label": "cara-room"}
    assert webhook_backend.requests[0].json["data"]["variants"] == {"region": "us"}
