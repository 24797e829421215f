"""Each page's query count is fixed, whatever the size of the catalog."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.urls import reverse
from djmoney.money import Money

from catalog.models import (
    Catalog,
    Feature,
    Package,
    PackageFeature,
    PackagePrice,
    PackagePriceAmount,
    PackageQuota,
    PackageScaling,
    Quota,
    ServiceType,
    Variant,
    VariantOption,
    VariantPrice,
    VariantPriceAmount,
)
from storefront.cache import catalog_changed

pytestmark = pytest.mark.django_db

PRICE_NAMES = ["Monthly", "Quarterly", "Annual"]
# Uncached pages: the version, then each selector's own queries.
INDEX_QUERIES = 5  # version, catalogs, packages, prices, amounts
CATALOG_QUERIES = 7  # version, catalog, packages, prices, amounts, features, quotas
# version, package, prices, amounts, features, quotas, variants, options,
# variant prices, variant amounts, scaling targets, their prices, their amounts
PACKAGE_QUERIES = 13


def build_store(size: int) -> tuple[Catalog, Package]:
    """`size` packages in one catalog, more catalogs, and every related row there can be.

    Written with bulk_create: building 200 packages one save at a time would
    make the test slow, not more telling.
    """
    catalogs = Catalog.objects.bulk_create(
        Catalog(name=f"Catalog {i}", slug=f"catalog-{i}", sort_order=i)
        for i in range(max(2, size // 20))
    )
    main = catalogs[0]
    packages = Package.objects.bulk_create(
        Package(
            catalog=catalogs[0] if i < size else catalogs[i - size + 1],
            name=f"Package {i}",
            slug=f"package-{i}",
            service_type=ServiceType.MEET,
            status=Package.Status.ACTIVE,
            short_description=f"Package number {i}.",
            tier=i % 5,
            stock_qty=[-1, 3, 0][i % 3],
            trial_period=14 if i % 2 else 0,
            overages_enabled=bool(i % 2),
            sort_order=i,
        )
        for i in range(size + len(catalogs) - 1)
    )
    prices = PackagePrice.objects.bulk_create(
        PackagePrice(
            package=package,
            name=name,
            time_interval=1 + n,
            billing_period="month",
            sort_order=n,
            enabled=n < 2 or package.pk % 2 == 0,
        )
        for package in packages
        for n, name in enumerate(PRICE_NAMES)
    )
    PackagePriceAmount.objects.bulk_create(
        PackagePriceAmount(
            package_price=price,
            price=Money(Decimal(5 + price.pk % 50), currency),
            setup_fee=Money(Decimal(price.pk % 3), currency),
            signup_fee=Money(0, currency),
        )
        for price in prices
        for currency in ("USD", "EUR")
    )
    features = Feature.objects.bulk_create(
        Feature(code=f"feature-{i}", name=f"Feature {i}", sort_order=i) for i in range(4)
    )
    quotas = Quota.objects.bulk_create(
        Quota(code=f"quota-{i}", name=f"Quota {i}", unit="GB", sort_order=i) for i in range(3)
    )
    PackageFeature.objects.bulk_create(
        PackageFeature(package=package, feature=feature, value="yes" if package.pk % 2 else "no")
        for package in packages
        for feature in features
    )
    PackageQuota.objects.bulk_create(
        PackageQuota(
            package=package,
            quota=quota,
            limit=None if quota.sort_order == 0 else 100,
            overage_price=Money("0.10", "USD") if package.overages_enabled else None,
        )
        for package in packages
        for quota in quotas
    )
    variants = Variant.objects.bulk_create(
        Variant(name=f"Variant {i}", code=f"variant-{i}", type=list(Variant.Type)[i % 3])
        for i in range(5)
    )
    options = VariantOption.objects.bulk_create(
        VariantOption(variant=variant, name=f"Option {i}", value=f"value-{i}")
        for variant in variants
        for i in range(4)
    )
    variant_prices = VariantPrice.objects.bulk_create(
        VariantPrice(option=option, name=name) for option in options for name in PRICE_NAMES
    )
    VariantPriceAmount.objects.bulk_create(
        VariantPriceAmount(
            variant_price=variant_price,
            price=Money(Decimal(variant_price.pk % 4), currency),
            setup_fee=Money(0, currency),
        )
        for variant_price in variant_prices
        for currency in ("USD", "EUR")
    )
    featured = packages[1]
    for package in packages:
        package.variants.add(*variants)
    PackageScaling.objects.bulk_create(
        PackageScaling(from_package=featured, to_package=target)
        for target in packages
        if target != featured
    )
    catalog_changed()
    return main, featured


@pytest.fixture(params=[3, 200], ids=["3-packages", "200-packages"])
def store(request, db):
    return build_store(request.param)


def assert_pages_queries(client, url, expected, django_assert_num_queries) -> str:
    cache.clear()
    with django_assert_num_queries(expected):
        response = client.get(url)
    assert response.status_code == 200
    with django_assert_num_queries(1):  # served from the cache: only the version is read
        assert client.get(url).status_code == 200
    return response.content.decode()


def test_the_index_query_count_is_fixed(client, store, django_assert_num_queries):
    html = assert_pages_queries(
        client, reverse("storefront:index"), INDEX_QUERIES, django_assert_num_queries
    )

    assert "from " in html


def test_the_catalog_page_query_count_is_fixed(client, store, django_assert_num_queries):
    catalog, _ = store
    html = assert_pages_queries(
        client,
        reverse("storefront:catalog", args=[catalog.slug]),
        CATALOG_QUERIES,
        django_assert_num_queries,
    )

    assert (
        html.count('class="package-card')
        == Package.objects.listed().filter(catalog=catalog).count()
    )
    assert "Quota 0" in html


def test_the_package_page_query_count_is_fixed(client, store, django_assert_num_queries):
    catalog, package = store
    html = assert_pages_queries(
        client,
        reverse("storefront:package", args=[catalog.slug, package.slug]),
        PACKAGE_QUERIES,
        django_assert_num_queries,
    )

    assert 'name="variant_variant-0"' in html
    assert 'id="scaling-heading"' in html


def test_a_staff_preview_query_count_is_fixed(staff_client, store, django_assert_num_queries):
    catalog, package = store
    Package.objects.filter(pk=package.pk).update(status=Package.Status.DRAFT)
    url = reverse("storefront:package", args=[catalog.slug, package.slug])

    # Staff pages are never cached: the session and the user, then the package's
    # queries less the version.
    with django_assert_num_queries(2 + PACKAGE_QUERIES - 1):
        response = staff_client.get(url)

    assert "preview-banner" in response.content.decode()
