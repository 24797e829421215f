"""Each page's query count is fixed, whatever the size of the catalog."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse

from catalog.demo import load_large_catalog
from catalog.models import Package
from storefront.cache import catalog_changed
from storefront.selectors import CATALOG_PAGE_SIZE

pytestmark = pytest.mark.django_db

# Uncached pages: the version, then each selector's own queries, then the stock
# levels every catalog and package page reads per request (never cached).
INDEX_QUERIES = 5  # version, catalogs, packages, prices, amounts
# version, catalog, package count (pages), packages, prices, amounts, features, quotas, stock
CATALOG_QUERIES = 9
# version, package, prices, amounts, features, quotas, variants, options,
# variant prices, variant amounts, scaling targets, their prices, their amounts, stock
PACKAGE_QUERIES = 14
# Cached pages: the version, and the stock of the packages a page shows.
CACHED_QUERIES = 1
CACHED_STOCK_QUERIES = 2


@pytest.fixture(params=[3, 200], ids=["3-packages", "200-packages"])
def store(request, db):
    store = load_large_catalog(packages=request.param)
    catalog_changed()  # bulk writes send no signals
    return store


def assert_pages_queries(
    client, url, expected, django_assert_num_queries, cached=CACHED_STOCK_QUERIES
) -> str:
    cache.clear()
    with django_assert_num_queries(expected):
        response = client.get(url)
    assert response.status_code == 200
    with django_assert_num_queries(cached):
        assert client.get(url).status_code == 200
    return response.content.decode()


def test_the_index_query_count_is_fixed(client, store, django_assert_num_queries):
    html = assert_pages_queries(
        client,
        reverse("storefront:index"),
        INDEX_QUERIES,
        django_assert_num_queries,
        cached=CACHED_QUERIES,
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

    listed = Package.objects.listed().filter(catalog=catalog).count()
    assert html.count('class="package-card') == min(listed, CATALOG_PAGE_SIZE)
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
