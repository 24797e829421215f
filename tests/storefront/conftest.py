from __future__ import annotations

import pytest
from django.core.cache import cache
from djmoney.money import Money

from catalog.models import Variant
from storefront.cache import catalog_changed
from tests.factories import (
    CatalogFactory,
    PackagePriceAmountFactory,
    PackagePriceFactory,
    VariantFactory,
    VariantOptionFactory,
    priced_package,
    variant_price,
)


@pytest.fixture(autouse=True)
def empty_page_cache():
    """Each test starts with no cached page, whatever an earlier test rendered."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def catalog(db):
    """A catalog, with a catalog version recorded so that pages are served from the cache.

    Inside a test's transaction nothing commits, so edits do not replace the
    version: tests that edit between requests use a transactional database.
    """
    catalog = CatalogFactory(name="Video services", slug="video")
    catalog_changed()
    return catalog


@pytest.fixture
def vps(catalog):
    """A package sold monthly and yearly in USD and EUR, with an operating-system choice."""
    package = priced_package(
        catalog=catalog,
        name="VPS M",
        slug="vps-m",
        short_description="2 vCPU, 4 GB RAM.",
        amounts=(("USD", "12.00"), ("EUR", "11.00")),
    )
    annual = PackagePriceFactory(
        package=package, name="Annual", billing_period="year", sort_order=1
    )
    PackagePriceAmountFactory(package_price=annual, price=Money("120.00", "USD"))
    PackagePriceAmountFactory(package_price=annual, price=Money("110.00", "EUR"))
    os_variant = VariantFactory(name="Operating system", code="os", type=Variant.Type.SELECT)
    debian = VariantOptionFactory(variant=os_variant, name="Debian 12", value="debian-12")
    windows = VariantOptionFactory(variant=os_variant, name="Windows Server", value="windows")
    variant_price(debian, "Monthly", USD="0", EUR="0")
    variant_price(debian, "Annual", USD="0", EUR="0")
    variant_price(windows, "Monthly", USD="15.00", EUR="14.00")
    variant_price(windows, "Annual", USD="150.00", EUR="140.00")
    package.variants.add(os_variant)
    return package
