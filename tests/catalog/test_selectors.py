"""The package read for an order, whose SQL is built once per process and reused."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from djmoney.money import Money

from catalog.models import Package, PackagePriceAmount
from catalog.selectors import PreparedRows, package_for_order, packages_for_order
from tests.factories import (
    PackagePriceAmountFactory,
    PackagePriceFactory,
    PackageQuotaFactory,
    QuotaFactory,
    VariantFactory,
    VariantOptionFactory,
    VariantPriceAmountFactory,
    VariantPriceFactory,
    priced_package,
)

pytestmark = pytest.mark.django_db


def read(package: Package) -> Package | None:
    return package_for_order(catalog_slug=package.catalog.slug, package_slug=package.slug)


def test_each_package_is_read_with_its_own_prices_though_the_query_is_built_once():
    first = priced_package(amounts=(("USD", "9.00"),))
    second = priced_package(amounts=(("USD", "25.00"),))
    read(first)  # the first read builds the SQL; the second reuses it with its own slugs
    second_read = read(second)
    assert second_read is not None and second_read.pk == second.pk
    assert second_read.catalog.slug == second.catalog.slug
    [price] = second_read.prices.all()
    assert [amount.price for amount in price.amounts.all()] == [Money("25.00", "USD")]


def test_a_staff_edit_shows_on_the_next_read():
    package = priced_package(amounts=(("USD", "9.00"),))
    read(package)
    PackagePriceAmount.objects.filter(package_price__package=package).update(price=Decimal("11.00"))
    fresh = read(package)
    assert fresh is not None
    assert fresh.prices.all()[0].amounts.all()[0].price == Money("11.00", "USD")


def test_a_package_not_active_is_not_read_for_an_order():
    package = priced_package(status=Package.Status.DRAFT)
    assert read(package) is None


def test_the_quotas_come_with_their_quota():
    package = priced_package()
    value = PackageQuotaFactory(package=package, limit=5)
    fresh = read(package)
    assert fresh is not None
    [quota] = fresh.quotas.all()
    assert (quota.limit, quota.quota.code) == (5, value.quota.code)


def test_the_relations_read_answer_without_a_query_and_a_filter_still_queries_its_own(
    django_assert_num_queries,
):
    package = priced_package(amounts=(("USD", "9.00"), ("EUR", "8.00")))
    other = priced_package(amounts=(("USD", "30.00"),))
    fresh = read(package)
    assert fresh is not None
    with django_assert_num_queries(0):
        [price] = fresh.prices.all()
        assert sorted(str(a.price) for a in price.amounts.all()) == ["$9.00", "€8.00"]
        assert "prices" in fresh._prefetched_objects_cache
        assert fresh._prefetched_objects_cache.get("prices")[0] == price
    # Anything past the rows read queries as the related manager would: this package's only.
    with django_assert_num_queries(1):
        assert [a.price for a in price.amounts.filter(price_currency="USD")] == [
            Money("9.00", "USD")
        ]
    assert other.prices.get().pk != price.pk


def test_a_write_to_a_relation_read_forgets_the_rows_read():
    package = priced_package()
    fresh = read(package)
    assert fresh is not None and list(fresh.variants.all()) == []
    variant = VariantFactory()
    fresh.variants.add(variant)
    assert list(fresh.variants.all()) == [variant]


def amounts(amounts) -> list[tuple]:
    # str() of each Decimal: 9.00 must not come back as 9 (Money compares them equal).
    return [(a.pk, str(a.price.amount), a.price.currency.code, str(a.setup_fee.amount))
            for a in amounts.all()]  # fmt: skip


def shape(package: Package) -> tuple:
    """Every row a quote reads, in the order it reads them."""
    return (
        (package.pk, package.name, package.catalog.slug),
        [(q.pk, q.limit, str(q.overage_price.amount), q.quota.code) for q in package.quotas.all()],
        [(p.pk, p.name, p.enabled, amounts(p.amounts)) for p in package.prices.all()],
        [
            (
                v.pk,
                v.code,
                [
                    (
                        o.pk,
                        o.value,
                        [(vp.pk, vp.name, amounts(vp.amounts)) for vp in o.prices.all()],
                    )
                    for o in v.options.all()
                ],
            )
            for v in package.variants.all()
        ],  # fmt: skip
    )


def test_it_reads_what_the_orm_prefetches_in_the_same_order():
    # Sort orders against the rows' ids, so that only each model's ordering sorts them.
    package = priced_package(amounts=(("USD", "9.00"), ("EUR", "8.50")))
    for n in range(3):
        PackageQuotaFactory(
            package=package, quota=QuotaFactory(sort_order=-n), limit=n, overage_price=Money("0.25", "USD")
        )  # fmt: skip
        price = PackagePriceFactory(package=package, name=f"Plan {n}", sort_order=-n)
        PackagePriceAmountFactory(package_price=price, price=Money("20.10", "USD"))
        variant = VariantFactory(sort_order=-n)
        package.variants.add(variant)
        for m in range(2):
            option = VariantOptionFactory(variant=variant, sort_order=-m)
            for name in ["Monthly", f"Plan {n}"]:
                VariantPriceAmountFactory(
                    variant_price=VariantPriceFactory(option=option, name=name),
                    price=Money("1.50", "USD"),
                )
    VariantFactory()  # another package's variant, not read
    fresh = read(package)
    assert fresh is not None
    expected = packages_for_order().prefetch_related("quotas__quota").get(pk=package.pk)
    assert shape(fresh) == shape(expected)


def test_a_package_with_no_quotas_prices_or_variants_reads_empty_lists():
    package = priced_package(amounts=())
    package.prices.all().delete()
    fresh = read(package)
    assert fresh is not None
    assert shape(fresh)[1:] == ([], [], [])


def test_a_read_nested_as_json_refuses_a_column_json_would_change():
    # A uuid (and created_at) would come back from JSON as a string, not as the driver gives it.
    rows = PreparedRows(lambda pk: Package.objects.filter(pk=pk), [("", Package)], -1)
    with pytest.raises(ImproperlyConfigured, match="Package.uuid"):
        rows.json_sql()
