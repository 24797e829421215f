"""Usage bars on a 390 px phone: as wide as the page allows, filled to the usage, no overflow."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from subscriptions.usage import usage_record
from tests.factories import metered_service

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_usage_bars_fit_a_phone_and_show_the_usage(browser, live_server, customer):
    service = metered_service(customer, limit=1000)
    usage_record(service=service, quota_code="minutes", quantity=Decimal("250"),
                 occurred_at=timezone.now(), idempotency_key="a", source="staff")  # fmt: skip
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)  # fmt: skip
    try:
        page.goto(live_server.url + reverse("login"))
        page.fill("#id_username", "ann@example.com")
        page.fill("#id_password", "ann-password-1")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}{reverse('subscriptions:account')}")
        page.goto(live_server.url + reverse("subscriptions:service", args=[service.pk]))

        meter = page.locator("meter#usage-minutes")
        box = meter.bounding_box()
        page_width = page.evaluate("document.documentElement.scrollWidth")
        assert meter.evaluate("meter => meter.value / meter.max") == 0.25
        assert page.locator(".usage-figures").inner_text() == "250 minutes of 1,000 minutes"
        assert page.get_by_role("meter", name="Meeting minutes").is_visible()
    finally:
        context.close()

    assert page_width <= 390
    assert box is not None and box["width"] > 390 / 2  # a bar, not a sliver
    assert box["x"] + box["width"] <= 390
    assert violations == []
