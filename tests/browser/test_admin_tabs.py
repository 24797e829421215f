"""The package page in a real browser: tabs by mouse and keyboard, errors open their tab."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.factories import ManualInstanceFactory, WebhookInstanceFactory, priced_package

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def package_page(admin_page, live_server):
    package = priced_package()
    admin_page.goto(live_server.url + reverse("admin:catalog_package_change", args=[package.pk]))
    return admin_page


def tab(page, name: str):
    return page.get_by_role("tab", name=name)


def test_tabs_switch_by_click_and_only_the_chosen_panel_shows(package_page):
    page = package_page
    expect(tab(page, "Summary")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#package-panel-pricing")).to_be_hidden()

    tab(page, "Pricing").click()

    expect(tab(page, "Pricing")).to_have_attribute("aria-selected", "true")
    expect(tab(page, "Summary")).to_have_attribute("aria-selected", "false")
    expect(page.get_by_role("tabpanel")).to_have_count(1)
    expect(page.locator("#package-panel-pricing")).to_be_visible()
    expect(page.locator("#package-panel-summary")).to_be_hidden()


def test_arrow_keys_move_between_tabs_and_enter_or_space_opens_one(package_page):
    page = package_page
    tab(page, "Summary").focus()

    page.keyboard.press("ArrowRight")
    expect(tab(page, "Pricing")).to_be_focused()
    expect(tab(page, "Summary")).to_have_attribute("aria-selected", "true")
    page.keyboard.press("Enter")
    expect(tab(page, "Pricing")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#package-panel-pricing")).to_be_visible()

    page.keyboard.press("End")
    expect(tab(page, "Scaling")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator("#package-panel-scaling")).to_be_visible()

    page.keyboard.press("ArrowRight")  # wraps around
    expect(tab(page, "Summary")).to_be_focused()
    page.keyboard.press("ArrowLeft")
    expect(tab(page, "Scaling")).to_be_focused()


def test_an_invalid_price_reopens_the_page_on_the_pricing_tab_marked_with_the_error(
    package_page,
):
    page = package_page
    tab(page, "Pricing").click()
    page.fill("#id_prices-0-price_USD", "0")
    page.fill("#id_prices-0-setup_fee_EUR", "-5")

    page.locator("input[name=_continue]").first.click()
    page.wait_for_load_state()

    pricing = tab(page, "Pricing")
    expect(pricing).to_have_attribute("aria-selected", "true")
    expect(pricing).to_have_attribute("data-has-errors", "")
    expect(pricing.locator(".tab-badge-error")).to_have_text("!")
    expect(page.locator("#package-panel-summary")).to_be_hidden()
    panel = page.locator("#package-panel-pricing")
    expect(panel).to_be_visible()
    expect(panel.locator(".field-price_USD .errorlist")).to_contain_text("above zero")
    expect(panel.locator(".field-setup_fee_EUR .errorlist")).to_contain_text("cannot be negative")
    expect(tab(page, "Summary").locator(".tab-badge-error")).to_have_count(0)


def test_choosing_a_provider_instance_shows_its_plugin_options_in_place(package_page):
    page = package_page
    manual = ManualInstanceFactory(name="By hand")
    webhook = WebhookInstanceFactory(name="Panel")
    page.reload()
    tab(page, "Provisioning").click()
    expect(page.locator("[data-plugin-options=webhook]")).to_be_hidden()

    page.select_option("#id_provider_instance", str(webhook.pk))
    expect(page.locator("#id_options-webhook-plan_code")).to_be_visible()
    expect(page.locator("[data-plugin-options=manual]")).to_be_hidden()

    page.select_option("#id_provider_instance", str(manual.pk))
    expect(page.locator("#id_options-manual-target_hours")).to_have_value("24")
    expect(page.locator("[data-plugin-options=webhook]")).to_be_hidden()
