"""In headless Chromium: order and pay with the test gateway (a real worker starts the
service), and pay an unpaid renewal from the account."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model

from payments.demo import load_demo_gateways
from payments.services import payment_record
from subscriptions.billing import services_run_billing
from subscriptions.jobs import service_start
from subscriptions.models import Invoice, Order, Service
from subscriptions.ordering import order_place
from tests.factories import WebhookInstanceFactory, shop_package
from tests.support.workers import start_worker, wait

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.postgres  # the worker is another process: it needs a database server
def test_a_customer_orders_pays_with_the_test_card_and_the_service_starts(
    page, live_server, webhook_backend
):
    webhook_backend.answer((200, {"remote_id": "room-88"}, 0))
    load_demo_gateways()
    package, monthly, options = shop_package(
        name="Team Meetings",
        provider_instance=WebhookInstanceFactory(url=webhook_backend.url),
        provisioning_options={"plan_code": "team", "region": "", "send_settings": True},
    )
    get_user_model().objects.create_user(
        username="dan@example.com", email="dan@example.com", password="dan-password-1"
    )

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "dan@example.com")
    page.fill("#id_password", "dan-password-1")
    page.get_by_role("button", name="Log in").click()
    page.goto(
        f"{live_server.url}/order/{package.catalog.slug}/{package.slug}/"
        f"?price={monthly.pk}&variant_region={options['us'].pk}"
    )
    page.fill("#id_checkout-label", "dan-room")
    page.get_by_role("button", name="Place order").click()

    # Straight to paying: the test gateway is offered, clearly labelled.
    page.wait_for_url(re.compile(r"/account/invoices/\d+/"))
    card = page.locator("article.pay-option", has_text="test gateway: no real money moves")
    card.get_by_label("Card number").fill("4000 0000 0000 0002")
    card.get_by_label("Expiry (MM/YY)").fill("12/40")
    card.get_by_label("CVC").fill("123")
    card.get_by_role("button", name=re.compile(r"^Pay ")).click()
    assert "Your card was declined." in page.locator(".messages").inner_text()

    card = page.locator("article.pay-option", has_text="test gateway: no real money moves")
    card.get_by_label("Card number").fill("4242 4242 4242 4242")
    card.get_by_label("Expiry (MM/YY)").fill("12/40")
    card.get_by_label("CVC").fill("123")
    card.get_by_role("button", name=re.compile(r"^Pay ")).click()
    page.wait_for_url(re.compile(r"/account/orders/\d+/"))
    assert page.locator("#order-status").inner_text() == "Paid"
    assert Invoice.objects.get().status == Invoice.Status.PAID

    # A real worker process runs the provisioning job the payment queued.
    wait(start_worker("--batch"))

    page.reload()
    page.locator("#order-services a").first.click()
    assert page.locator("#service-status").inner_text() == "Active"
    assert Service.objects.get().remote_id == "room-88"
    assert Order.objects.get().status == Order.Status.PAID


def test_a_customer_pays_an_unpaid_renewal_from_their_account(page, live_server):
    load_demo_gateways()
    package, monthly, options = shop_package(name="Video Pro")
    customer = get_user_model().objects.create_user(
        username="eve@example.com", email="eve@example.com", password="eve-password-1"
    )
    order = order_place(customer=customer, package=package, price=monthly,
                        variant_options=[options["us"]], quantity=1, currency="USD",
                        checkout_fields={})  # fmt: skip
    first = order.invoices.get()
    payment_record(invoice=first, amount=first.total, method="bank_transfer")
    service = order.services.get()
    service_start(service, now=datetime(2026, 1, 1, tzinfo=UTC))
    service.save()
    services_run_billing(now=datetime(2026, 2, 1, 1, tzinfo=UTC))
    renewal = Invoice.objects.of_service(service.pk).get(kind=Invoice.Kind.RENEWAL)

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "eve@example.com")
    page.fill("#id_password", "eve-password-1")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server.url}/account/")
    page.locator("#invoices tr", has_text=renewal.number).get_by_role("link", name="Pay").click()

    card = page.locator("article.pay-option", has_text="test gateway: no real money moves")
    card.get_by_label("Card number").fill("4242 4242 4242 4242")
    card.get_by_label("Expiry (MM/YY)").fill("12/40")
    card.get_by_label("CVC").fill("123")
    card.get_by_role("button", name=re.compile(r"^Pay ")).click()

    page.wait_for_url(re.compile(rf"/account/invoices/{renewal.pk}/"))
    assert page.locator("#invoice-status").inner_text() == "Paid"
    service.refresh_from_db()
    assert service.current_period_end == renewal.period_end
    assert service.jobs.filter(action="renew").exists()
