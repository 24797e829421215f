"""The Pricing tab on a 1280 px screen: every option and currency in view, and it saves."""

from __future__ import annotations

import pytest
from django.urls import reverse
from djmoney.money import Money
from playwright.sync_api import expect

from catalog.models import PackagePrice
from tests.factories import priced_package

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def pricing_tab(admin_page, live_server):
    package = priced_package()
    admin_page.set_viewport_size({"width": 1280, "height": 900})
    admin_page.goto(live_server.url + reverse("admin:catalog_package_change", args=[package.pk]))
    admin_page.get_by_role("tab", name="Pricing").click()
    return admin_page, package


def test_the_pricing_grid_fits_a_1280_px_screen(pricing_tab):
    page, _ = pricing_tab
    grid = page.locator("#prices-group .tabular")
    expect(grid).to_be_visible()

    assert grid.evaluate("box => box.scrollWidth <= box.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    # Every amount input, of both currencies, is inside the screen.
    rights = page.locator("#prices-0 input.amount-input").evaluate_all(
        "inputs => inputs.map(input => input.getBoundingClientRect().right)"
    )
    assert len(rights) == 6
    assert max(rights) <= 1280


def test_the_grid_says_what_the_setup_and_signup_fees_are_charged_for(pricing_tab):
    page, _ = pricing_tab
    header = page.locator("#prices-group thead")

    expect(header.get_by_text("Charged once per service")).to_be_visible()
    expect(header.get_by_text("Charged once per order")).to_be_visible()
    expect(page.get_by_role("spinbutton", name="Signup fee (EUR)").first).to_be_visible()


def test_amounts_typed_in_the_grid_are_saved_and_a_new_option_can_be_added(pricing_tab):
    page, package = pricing_tab
    page.fill("#id_prices-0-setup_fee_USD", "4.00")
    page.fill("#id_prices-0-signup_fee_EUR", "2.50")
    page.get_by_role("button", name="Add another pricing option").click()
    page.fill("#id_prices-2-name", "Annual")
    page.select_option("#id_prices-2-type", "onetime")
    page.fill("#id_prices-2-price_USD", "90.00")

    page.locator("input[name=_continue]").first.click()
    page.wait_for_load_state()

    expect(page.locator(".messagelist .success")).to_be_visible()
    monthly = PackagePrice.objects.get(package=package, name="Monthly")
    assert monthly.amounts.get(price_currency="USD").setup_fee == Money("4.00", "USD")
    assert monthly.amounts.get(price_currency="EUR").signup_fee == Money("2.50", "EUR")
    annual = PackagePrice.objects.get(package=package, name="Annual")
    assert annual.amounts.get().price == Money("90.00", "USD")
