"""Small builders for storefront tests."""

from __future__ import annotations

from decimal import Decimal

from djmoney.money import Money

from catalog.models import Package, PackagePrice, PriceType
from tests.factories import (
    PackageFactory,
    PackagePriceAmountFactory,
    PackagePriceFactory,
    VariantPriceAmountFactory,
    VariantPriceFactory,
)


def make_package(
    *, price_name="Monthly", amounts=(("USD", "9.00"), ("EUR", "8.00")), **package_kwargs
) -> Package:
    """An active package with one recurring monthly option priced in each currency."""
    package = PackageFactory(**package_kwargs)
    price = PackagePriceFactory(package=package, name=price_name)
    for currency, amount in amounts:
        PackagePriceAmountFactory(package_price=price, price=Money(Decimal(amount), currency))
    return package


def variant_price(option, name: str, **amounts: str) -> None:
    """Give `option` a variant price called `name` with an amount per currency."""
    price = VariantPriceFactory(option=option, name=name)
    for currency, amount in amounts.items():
        VariantPriceAmountFactory(variant_price=price, price=Money(Decimal(amount), currency))


def free_option(package, name="Free trial", **kwargs) -> PackagePrice:
    return PackagePriceFactory(
        package=package,
        name=name,
        type=PriceType.FREE,
        time_interval=None,
        billing_period="",
        **kwargs,
    )


def order_button(html: str) -> str:
    """The page's order button tag, to check whether it is disabled."""
    start = html.index("data-order-button")
    return html[html.rindex("<button", 0, start) : html.index(">", start)]


def section(html: str, heading_id: str) -> str:
    start = html.index(f'id="{heading_id}"')
    return html[start : html.find("</section>", start)]
