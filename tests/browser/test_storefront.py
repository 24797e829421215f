"""The package page in a real browser: prices switch in place, without a reload."""

from __future__ import annotations

import pytest
from django.urls import reverse
from djmoney.money import Money
from playwright.sync_api import expect

from catalog.models import Variant
from catalog.services import package_set_scaling_targets
from tests.factories import (
    CatalogFactory,
    PackagePriceAmountFactory,
    PackagePriceFactory,
    VariantFactory,
    VariantOptionFactory,
    priced_package,
    variant_price,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def vps():
    catalog = CatalogFactory(name="VPS hosting", slug="vps")
    package = priced_package(
        catalog=catalog, name="VPS M", slug="vps-m", amounts=(("USD", "12.00"), ("EUR", "11.00"))
    )
    annual = PackagePriceFactory(package=package, name="Annual", billing_period="year")
    PackagePriceAmountFactory(package_price=annual, price=Money("120.00", "USD"))
    PackagePriceAmountFactory(package_price=annual, price=Money("110.00", "EUR"))
    os_variant = VariantFactory(name="Operating system", code="os", type=Variant.Type.SELECT)
    windows = VariantOptionFactory(variant=os_variant, name="Windows Server")
    variant_price(windows, "Monthly", USD="15.00", EUR="14.00")
    variant_price(windows, "Annual", USD="150.00", EUR="140.00")
    # Sold with the annual option only: it must appear and disappear with it.
    snapshots = VariantOptionFactory(variant=os_variant, name="Snapshots")
    variant_price(snapshots, "Annual", USD="20.00", EUR="18.00")
    package.variants.add(os_variant)
    bigger = priced_package(
        catalog=catalog, name="VPS L", tier=3, amounts=(("USD", "24.00"), ("EUR", "22.00"))
    )
    package_set_scaling_targets(package=package, targets=[bigger])
    return package, annual


def option_texts(page) -> list[str]:
    return page.locator("#variant-os option").all_inner_texts()


def test_switching_pricing_option_and_currency_updates_variant_prices_in_place(
    page, live_server, vps
):
    package, annual = vps
    url = live_server.url + reverse("storefront:package", args=["vps", package.slug])
    page.goto(url)
    page.evaluate("window.notReloaded = true")

    assert option_texts(page) == ["Windows Server (+15.00\xa0USD / month)"]
    assert page.locator("[data-js-hide]").first.is_hidden()

    page.check(f"#price-{annual.pk}")

    assert option_texts(page) == [
        "Windows Server (+150.00\xa0USD / year)",
        "Snapshots (+20.00\xa0USD / year)",
    ]
    assert page.url.endswith(f"?price={annual.pk}")

    page.select_option("#currency-select", "EUR")
    # Locator waits, not wait_for_function: the page's CSP forbids evaluating strings.
    expect(page.locator("#variant-os option").first).to_contain_text("EUR")

    assert option_texts(page) == [
        "Windows Server (+140.00\xa0EUR / year)",
        "Snapshots (+18.00\xa0EUR / year)",
    ]
    price_text = page.locator(f'[data-price-option="{annual.pk}"] [data-price-text]')
    assert price_text.inner_text() == "110.00\xa0EUR / year"
    assert page.locator("[data-scaling-price]").inner_text() == "from 22.00\xa0EUR / month"
    assert page.evaluate("window.notReloaded") is True  # all of it without a reload
    assert page.locator("[data-order-button]").is_enabled()

    # The currency was saved in the session: a fresh load shows the same page.
    page.reload()
    assert option_texts(page) == [
        "Windows Server (+140.00\xa0EUR / year)",
        "Snapshots (+18.00\xa0EUR / year)",
    ]


def test_the_order_button_follows_the_currency_of_the_chosen_option(page, live_server, vps):
    package, _ = vps
    usd_only = PackagePriceFactory(package=package, name="Biennial", time_interval=2, sort_order=9)
    PackagePriceAmountFactory(package_price=usd_only, price=Money("200.00", "USD"))
    page.goto(live_server.url + reverse("storefront:package", args=["vps", package.slug]))

    page.check(f"#price-{usd_only.pk}")
    assert page.locator("[data-order-button]").is_enabled()

    page.select_option("#currency-select", "EUR")
    expect(page.locator("[data-order-button]")).to_be_disabled()

    reason = page.locator("[data-order-reason]").inner_text()
    assert reason == "The “Biennial” option is not sold in EUR."
    assert page.locator(f"#price-{usd_only.pk}").is_disabled()


def test_a_sold_out_package_stays_unorderable_whatever_option_is_picked(page, live_server, vps):
    package, annual = vps
    package.stock_qty = 0
    package.save()
    page.goto(live_server.url + reverse("storefront:package", args=["vps", package.slug]))
    expect(page.locator("[data-order-button]")).to_be_disabled()

    page.check(f"#price-{annual.pk}")
    page.select_option("#currency-select", "EUR")

    expect(page.locator("[data-order-button]")).to_be_disabled()
    assert page.locator("[data-order-reason]").inner_text() == "This package is sold out."
