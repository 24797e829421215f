"""The customer account in Chromium: the plan-change preview, confirm pages and account pages,
on a desktop and a 390 px phone, with no sideways scroll and no CSP violation."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from subscriptions.models import Invoice, PlanChange, Service
from subscriptions.plan_changes import service_change_preview
from tests.factories import active_service, target_of
from tests.support.browser import (
    DESKTOP_WIDTH,
    PHONE_WIDTH,
    log_in,
    screen,
    scroll_width,
    watch_csp,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def upgradable(customer):
    service = active_service(customer, tier=2, name="Meeting Room Small")
    target = target_of(service.package, tier=3, price="40", name="Monthly")
    target.name = "Meeting Room Large with a long name for a small screen"
    target.save()
    smaller = target_of(service.package, tier=1, price="5", name="Monthly")
    return service, target, smaller


@pytest.mark.parametrize("width", [PHONE_WIDTH, DESKTOP_WIDTH])
def test_a_customer_previews_an_upgrade_then_is_billed_exactly_the_previewed_amount(
    browser, live_server, customer, upgradable, width
):
    service, target, _ = upgradable
    context, page = screen(browser, width)
    violations = watch_csp(page)
    try:
        log_in(page, live_server.url, "ann@example.com", "ann-password-1")
        page.goto(live_server.url + reverse("subscriptions:service", args=[service.pk]))
        page.get_by_label(re.compile(re.escape(target.name))).check()
        page.get_by_role("button", name="Review the change").click()

        page.wait_for_url(re.compile(r"/change/\?package="))
        shown_charge = page.locator("#preview-charge").inner_text()
        shown_recurring = page.locator("#preview-recurring").inner_text()
        assert "Now, when you confirm" in page.locator("#preview-applies").inner_text()
        assert scroll_width(page) <= width
        assert not PlanChange.objects.exists()

        page.get_by_role("button", name=re.compile(r"^Confirm and invoice")).click()
        page.wait_for_url(f"{live_server.url}{reverse('subscriptions:service', args=[service.pk])}")
        message = page.locator(".messages").inner_text()
    finally:
        context.close()

    invoice = Invoice.objects.get(kind=Invoice.Kind.PLAN_CHANGE)
    change = PlanChange.objects.get()
    amount = f"{invoice.total.amount} USD"
    assert shown_charge.replace("\xa0", " ").startswith(amount)
    assert amount in message.replace("\xa0", " ")
    assert f"{change.recurring_amount.amount} USD" in shown_recurring.replace("\xa0", " ")
    assert violations == []


def test_a_customer_previews_a_downgrade_and_sees_the_date_it_applies(
    page, live_server, customer, upgradable
):
    service, _, smaller = upgradable
    log_in(page, live_server.url, "ann@example.com", "ann-password-1")
    page.goto(
        live_server.url
        + reverse("subscriptions:service_change_package", args=[service.pk])
        + f"?package={smaller.pk}"
    )
    preview = service_change_preview(
        service=service, customer=service.customer, package=smaller, now=service.created_at
    )
    applies = page.locator("#preview-applies").inner_text()

    page.get_by_role("button", name="Confirm the change").click()
    page.wait_for_load_state()

    assert f"{preview.applies_at:%Y-%m-%d}" in applies
    assert (
        f"moves to {smaller.name} on {preview.applies_at:%Y-%m-%d}"
        in page.locator(".messages").inner_text()
    )
    assert PlanChange.objects.get().effective_at == preview.applies_at


def test_cancelling_goes_through_a_confirm_page_and_can_be_undone(
    page, live_server, customer, upgradable
):
    service, _, _ = upgradable
    violations = watch_csp(page)
    log_in(page, live_server.url, "ann@example.com", "ann-password-1")
    page.goto(live_server.url + reverse("subscriptions:service", args=[service.pk]))
    assert page.locator("#next-payment-due").is_visible()

    page.get_by_role("button", name="Continue to cancel").click()
    assert "keeps working until" in page.locator("#cancel-outcome").inner_text()
    service.refresh_from_db()
    assert service.cancel_at is None
    page.get_by_role("button", name="Yes, cancel my service").click()
    page.wait_for_load_state()

    assert page.locator("#service-ends").is_visible()
    assert page.locator("#next-payment-due").count() == 0
    page.get_by_role("button", name="Keep my service").click()
    page.wait_for_load_state()

    assert page.locator("#next-payment-due").is_visible()
    service.refresh_from_db()
    assert service.cancel_at is None and service.status == Service.Status.ACTIVE
    assert violations == []


def account_pages(service, target) -> list[str]:
    return [
        reverse("subscriptions:account"),
        reverse("subscriptions:account_profile"),
        reverse("subscriptions:account_email"),
        reverse("subscriptions:account_password"),
        reverse("subscriptions:account_close"),
        reverse("subscriptions:service", args=[service.pk]),
        reverse("subscriptions:service_change_package", args=[service.pk])
        + f"?package={target.pk}",
        reverse("subscriptions:service_cancel", args=[service.pk]) + "?mode=period_end",
    ]


@pytest.mark.parametrize("width", [PHONE_WIDTH, DESKTOP_WIDTH])
def test_no_account_page_scrolls_sideways_or_breaks_the_csp(
    browser, live_server, customer, upgradable, width
):
    service, target, _ = upgradable
    context, page = screen(browser, width)
    violations = watch_csp(page)
    widths = {}
    try:
        log_in(page, live_server.url, "ann@example.com", "ann-password-1")
        for path in account_pages(service, target):
            response = page.goto(live_server.url + path)
            assert response.status == 200, path
            widths[path] = scroll_width(page)
    finally:
        context.close()

    assert {path: px for path, px in widths.items() if px > width} == {}
    assert violations == []


def test_a_customer_fills_in_billing_details_on_a_phone(browser, live_server, customer):
    context, page = screen(browser, PHONE_WIDTH)
    try:
        log_in(page, live_server.url, "ann@example.com", "ann-password-1")
        page.get_by_role("link", name="Billing details").click()
        page.get_by_label("Name").fill("Ann Example")
        page.get_by_label("Company").fill("Example GmbH")
        page.get_by_label("Address").fill("Hauptstraße 1\n10115 Berlin")
        page.get_by_label("Country").select_option("DE")
        page.get_by_label("VAT id").fill("DE123456789")
        field_right = page.get_by_label("Address").bounding_box()
        page.get_by_role("button", name="Save billing details").click()
        page.wait_for_url(f"{live_server.url}{reverse('subscriptions:account')}")
        saved = page.locator(".messages").inner_text()
    finally:
        context.close()

    assert field_right["x"] + field_right["width"] <= PHONE_WIDTH
    assert "billing details are saved" in saved
    assert customer.profile.country.code == "DE"
