"""Staff open the dashboard, follow an attention item to the service and suspend it, confirmed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from subscriptions.models import ProvisioningJob, Service
from tests.factories import active_service

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_read_the_dashboard_and_suspend_a_service_after_confirming(
    admin_page, live_server, customer
):
    violations: list[str] = []
    admin_page.on("console", lambda message: violations.append(message.text)
                  if "Content Security Policy" in message.text else None)  # fmt: skip
    service = active_service(customer)
    Service.objects.filter(pk=service.pk).update(needs_attention=True, provisioning_error="slow")
    page = admin_page
    page.goto(f"{live_server.url}/admin/")

    expect(page.locator("#figure-mrr .figure")).not_to_have_text("–")
    chart = page.locator("#chart-USD svg")
    expect(chart).to_be_visible()
    assert chart.bounding_box()["height"] > 100  # drawn by the static stylesheet and attributes
    expect(page.locator("#chart-USD rect.chart-bar")).to_have_count(12)

    page.locator("#needs-attention").get_by_role("link", name=str(service), exact=False).click()
    expect(page.locator("#timeline li").first).to_be_visible()
    page.locator("#console-actions").get_by_role("link", name="Suspend").click()
    expect(page.locator(".console-what")).to_contain_text("Ask the provider to suspend")
    assert not service.jobs.filter(action=ProvisioningJob.Action.SUSPEND).exists()

    page.get_by_role("button", name="Confirm: suspend").click()
    expect(page.locator(".messagelist")).to_contain_text("Suspension queued")
    expect(page.locator("#timeline li").first).to_contain_text("Suspend by staff")
    assert service.jobs.filter(action=ProvisioningJob.Action.SUSPEND).exists()
    assert violations == []
