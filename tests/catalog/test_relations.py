"""Related objects held in memory (catalog.relations): what `.all()` gives, without its queryset."""

from __future__ import annotations

import pytest
from django.db.models import Prefetch

from catalog.models import Package, PackagePrice
from catalog.relations import related_objects, relation_cache_fill
from catalog.selectors import package_for_order
from tests.factories import PackagePriceFactory, VariantFactory, priced_package

pytestmark = pytest.mark.django_db


def read(package: Package) -> Package:
    fresh = package_for_order(catalog_slug=package.catalog.slug, package_slug=package.slug)
    assert fresh is not None
    return fresh


def test_a_relation_read_for_an_order_gives_its_objects_without_a_query_or_a_queryset(
    django_assert_num_queries,
):
    package = priced_package()
    PackagePriceFactory(package=package, name="Annual")
    fresh = read(package)
    with django_assert_num_queries(0):
        given = list(related_objects(fresh, "prices"))
    assert [price.pk for price in given] == [price.pk for price in package.prices.all()]
    # No queryset was built for it: the related manager's is built when first asked for.
    assert fresh._prefetched_objects_cache.pending("prices") is not None
    # The same instances `.all()` then gives, in the same order.
    with django_assert_num_queries(0):
        assert list(fresh.prices.all()) == given
        assert all(a is b for a, b in zip(fresh.prices.all(), given, strict=True))


def test_a_relation_whose_queryset_was_built_gives_the_same_objects():
    fresh = read(priced_package())
    from_queryset = list(fresh.prices.all())
    assert fresh._prefetched_objects_cache.pending("prices") is None
    assert list(related_objects(fresh, "prices")) == from_queryset


def test_a_relation_written_to_since_it_was_read_is_read_again():
    fresh = read(priced_package())
    assert list(related_objects(fresh, "variants")) == []
    variant = VariantFactory()
    fresh.variants.add(variant)  # forgets the objects read, as prefetch_related()'s
    assert list(related_objects(fresh, "variants")) == [variant]


def test_a_relation_not_filled_is_read_as_all_reads_it(django_assert_num_queries):
    package = priced_package()
    price = package.prices.get()
    with django_assert_num_queries(1):
        assert list(related_objects(package, "prices")) == [price]
    prefetched = Package.objects.prefetch_related(
        Prefetch("prices", queryset=PackagePrice.objects.filter(enabled=True))
    ).get(pk=package.pk)
    with django_assert_num_queries(0):
        assert list(related_objects(prefetched, "prices")) == list(prefetched.prices.all())


def test_objects_filled_by_hand_are_given_back_in_their_order():
    package = priced_package()
    second = PackagePriceFactory(package=package, name="Annual")
    first = package.prices.exclude(pk=second.pk).get()
    relation_cache_fill(package, "prices", [second, first])
    assert list(related_objects(package, "prices")) == [second, first]
    assert list(package.prices.all()) == [second, first]
