"""The pages work under the Content-Security-Policy, and the browser reports no violation."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from playwright.sync_api import expect

from catalog.models import Catalog
from payments.services import payment_record
from subscriptions.jobs import provisioning_job_run
from subscriptions.models import Order, ProvisioningJob, Service
from tests.factories import WebhookInstanceFactory, priced_package, shop_package

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(`${event.violatedDirective} ${event.blockedURI} ${event.sourceFile}:${event.lineNumber}`);
});
"""


def watch_csp(page) -> list[str]:
    """Every CSP violation the page meets, from the event and from the console, on every page."""
    violations: list[str] = []
    page.expose_function("reportCspViolation", lambda text: violations.append(text))
    page.add_init_script(REPORT_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and violations.append(message.text)
        ),
    )
    return violations


def test_a_customer_browses_signs_up_orders_and_reads_the_account_with_no_csp_violation(
    page, live_server, webhook_backend
):
    violations = watch_csp(page)
    webhook_backend.answer((200, {"remote_id": "room-1"}, 0))
    package, monthly, options = shop_package(
        name="Team Meetings",
        catalog__name="Meetings",
        provider_instance=WebhookInstanceFactory(url=webhook_backend.url),
        provisioning_options={"plan_code": "team", "region": "", "send_settings": True},
    )
    catalog = Catalog.objects.get(pk=package.catalog_id)

    response = page.goto(f"{live_server.url}/store/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.get_by_role("link", name=catalog.name).first.click()
    page.get_by_role("link", name="Team Meetings").first.click()
    page.wait_for_url(re.compile(rf"/store/{catalog.slug}/{package.slug}/"))
    # The currency switch and the option prices run the storefront's scripts (in place).
    page.select_option("#currency-select", "EUR")
    expect(page.get_by_role("group", name="Pricing option (prices in EUR)")).to_be_visible()
    page.select_option("#currency-select", "USD")
    expect(page.get_by_role("group", name="Pricing option (prices in USD)")).to_be_visible()
    page.check(f"#price-{monthly.pk}")
    page.select_option("#variant-region", str(options["us"].pk))
    page.get_by_role("button", name="Order now").click()

    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.get_by_role("link", name="Sign up").last.click()
    page.fill("#id_email", "o'brien@example.com")
    page.fill("#id_password1", "a-long-pass-123")
    page.fill("#id_password2", "a-long-pass-123")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r"/order/"))
    page.fill("#id_checkout-label", "team-room")
    page.get_by_role("button", name="Place order").click()
    page.wait_for_url(re.compile(r"/account/invoices/\d+/"))  # straight to paying it

    invoice = Order.objects.get().invoices.get()
    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)
    assert provisioning_job_run(job_id=ProvisioningJob.objects.get().pk) == "done"
    page.goto(f"{live_server.url}/account/")
    page.locator("#services a").first.click()
    expect(page.locator("#service-status")).to_have_text("Active")
    page.goto(f"{live_server.url}/account/")
    page.locator("a[href*='/account/invoices/']").first.click()
    page.wait_for_url(re.compile(r"/account/invoices/\d+/"))

    assert get_user_model().objects.get(email="o'brien@example.com")
    assert Service.objects.get().remote_id == "room-1"
    assert violations == []


def test_staff_work_in_the_admin_with_no_csp_violation(admin_page, live_server):
    page = admin_page
    violations = watch_csp(page)
    package = priced_package(provider_instance=WebhookInstanceFactory())

    page.goto(live_server.url + reverse("admin:index"))
    page.goto(live_server.url + reverse("admin:catalog_package_changelist"))
    page.goto(live_server.url + reverse("admin:catalog_package_change", args=[package.pk]))
    page.get_by_role("tab", name="Pricing").click()
    expect(page.locator("#package-panel-pricing")).to_be_visible()
    page.get_by_role("tab", name="Provisioning").click()
    page.get_by_role("button", name="Save and continue editing").first.click()
    expect(page.locator(".messagelist, .errornote").first).to_be_visible()
    page.goto(live_server.url + reverse("admin:catalog_package_add"))
    instance = package.provider_instance
    page.goto(
        live_server.url + reverse("admin:provisioning_providerinstance_change", args=[instance.pk])
    )
    expect(page.get_by_role("button", name="Test connection")).to_be_visible()
    page.goto(live_server.url + reverse("admin:subscriptions_order_changelist"))

    assert violations == []
