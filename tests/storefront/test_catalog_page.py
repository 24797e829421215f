"""The store index and a catalog page: cards, starting prices and the comparison table."""

from __future__ import annotations

import pytest
from django.urls import reverse
from djmoney.money import Money

from catalog.demo import load_large_catalog
from catalog.models import Feature
from storefront.cache import catalog_changed
from storefront.selectors import CATALOG_PAGE_SIZE
from tests.factories import (
    CatalogFactory,
    FeatureFactory,
    PackageFeatureFactory,
    PackagePriceAmountFactory,
    PackagePriceFactory,
    PackageQuotaFactory,
    QuotaFactory,
    free_option,
    priced_package,
)
from tests.support.html import section

pytestmark = pytest.mark.django_db


def catalog_page(client, catalog) -> str:
    response = client.get(reverse("storefront:catalog", args=[catalog.slug]))
    assert response.status_code == 200
    return response.content.decode()


class TestIndex:
    def test_each_catalog_shows_its_description_and_cheapest_offer(self, client, catalog):
        catalog.description = "<p>Meetings and <strong>webinars</strong>.</p>"
        catalog.save()
        priced_package(catalog=catalog, amounts=(("USD", "39.00"), ("EUR", "36.00")))
        priced_package(catalog=catalog, amounts=(("USD", "12.00"), ("EUR", "11.00")))

        html = client.get(reverse("storefront:index")).content.decode()

        assert "<p>Meetings and <strong>webinars</strong>.</p>" in html
        assert "from 12.00\xa0USD / month" in html
        assert "2 packages" in html

    def test_the_cheapest_offer_ignores_packages_customers_cannot_order(self, client, catalog):
        priced_package(catalog=catalog, amounts=(("USD", "1.00"), ("EUR", "1.00")), stock_qty=0)
        priced_package(catalog=catalog, amounts=(("USD", "5.00"), ("EUR", "4.00")), hidden=True)
        priced_package(catalog=catalog, amounts=(("USD", "20.00"), ("EUR", "18.00")))

        html = client.get(reverse("storefront:index")).content.decode()

        assert "from 20.00\xa0USD / month" in html

    def test_the_index_says_so_when_nothing_is_on_sale(self, client, db):
        html = client.get(reverse("storefront:index")).content.decode()

        assert "Nothing is on sale yet." in html

    def test_the_index_has_a_title_description_and_canonical_link(self, client, db):
        html = client.get(reverse("storefront:index")).content.decode()

        assert "<title>Store</title>" in html
        assert '<meta name="description" content="Browse our catalogs' in html
        assert '<link rel="canonical" href="http://testserver/store/">' in html


class TestCards:
    def test_a_card_shows_name_short_description_tier_and_starting_price(self, client, catalog):
        package = priced_package(
            catalog=catalog,
            name="Webinar Premium",
            short_description="Up to 1000 attendees.",
            tier=2,
            amounts=(("USD", "78.00"), ("EUR", "72.00")),
        )
        annual = PackagePriceFactory(package=package, name="Annual", billing_period="year")
        PackagePriceAmountFactory(package_price=annual, price=Money("780.00", "USD"))

        html = catalog_page(client, catalog)

        assert "Webinar Premium" in html
        assert "Up to 1000 attendees." in html
        assert "Tier 2" not in html  # the tier ranks packages for staff; customers see Upgrade
        assert "from 78.00\xa0USD / month" in html

    def test_a_card_shows_a_trial_badge(self, client, catalog):
        priced_package(catalog=catalog, trial_period=14, trial_interval="day")

        assert '<li class="badge badge-trial">14-day trial</li>' in catalog_page(client, catalog)

    def test_a_package_sold_only_for_free_says_free(self, client, catalog):
        package = priced_package(catalog=catalog, amounts=())
        package.prices.all().delete()
        free_option(package)

        assert '<strong class="price">Free</strong>' in catalog_page(client, catalog)

    def test_packages_are_listed_in_staff_order(self, client, catalog):
        priced_package(catalog=catalog, name="Zeta", sort_order=1)
        priced_package(catalog=catalog, name="Alpha", sort_order=2)

        html = catalog_page(client, catalog)

        assert html.index("Zeta") < html.index("Alpha")

    def test_the_page_has_a_title_description_and_canonical_link(self, client):
        catalog = CatalogFactory(
            name="VPS hosting", slug="vps", description="<p>Fast <b>NVMe</b> servers.</p>"
        )

        html = catalog_page(client, catalog)

        assert "<title>VPS hosting – Store</title>" in html
        assert '<meta name="description" content="Fast NVMe servers.">' in html
        assert '<link rel="canonical" href="http://testserver/store/vps/">' in html


class TestComparison:
    def test_features_and_quotas_line_up_with_units_unlimited_and_overages(self, client, catalog):
        basic = priced_package(catalog=catalog, name="Basic", sort_order=1)
        pro = priced_package(catalog=catalog, name="Pro", sort_order=2, overages_enabled=True)
        recording = FeatureFactory(name="Recording", value_type=Feature.ValueType.BOOLEAN)
        quality = FeatureFactory(name="Quality", value_type=Feature.ValueType.TEXT)
        storage = QuotaFactory(name="Storage", unit="GB")
        PackageFeatureFactory(package=basic, feature=recording, value="no")
        PackageFeatureFactory(package=pro, feature=recording, value="yes")
        PackageFeatureFactory(package=pro, feature=quality, value="1080p")
        PackageQuotaFactory(package=basic, quota=storage, limit=10)
        PackageQuotaFactory(
            package=pro, quota=storage, limit=None, overage_price=Money("0.10", "USD")
        )

        table = section(catalog_page(client, catalog), "compare-heading")

        assert '<th scope="col"><a href="/store/video/' in table
        recording_row = table[
            table.index(">Recording</th>") : table.index("</tr>", table.index(">Recording</th>"))
        ]
        assert recording_row.index('<td class="no"><span>Not included</span></td>') < (
            recording_row.index('<td class="yes"><span>Included</span></td>')
        )
        quality_row = table[
            table.index(">Quality</th>") : table.index("</tr>", table.index(">Quality</th>"))
        ]
        assert quality_row.index("Not included") < quality_row.index("1080p")
        storage_row = table[
            table.index(">Storage ") : table.index("</tr>", table.index(">Storage "))
        ]
        assert '<span class="muted">(GB)</span>' in storage_row
        assert storage_row.index("10 GB") < storage_row.index("unlimited")

    def test_the_overage_price_per_unit_shows_where_overages_are_enabled(self, client, catalog):
        billed = priced_package(catalog=catalog, name="Billed", overages_enabled=True)
        capped = priced_package(catalog=catalog, name="Capped", overages_enabled=False)
        storage = QuotaFactory(name="Storage", unit="GB")
        PackageQuotaFactory(
            package=billed, quota=storage, limit=100, overage_price=Money("0.10", "USD")
        )
        PackageQuotaFactory(
            package=capped, quota=storage, limit=50, overage_price=Money("0.20", "USD")
        )

        table = section(catalog_page(client, catalog), "compare-heading")

        assert "100 GB<br><small>then 0.10\xa0USD per GB</small>" in table
        assert "0.20" not in table

    def test_no_table_is_drawn_when_no_package_has_features_or_quotas(self, client, catalog):
        priced_package(catalog=catalog)

        assert "compare-heading" not in catalog_page(client, catalog)


class TestPages:
    """A large catalog is read a page of packages at a time, each with its own comparison."""

    @pytest.fixture
    def large(self, db):
        catalog, _ = load_large_catalog(packages=50)
        catalog_changed()
        return catalog

    def test_the_first_page_shows_a_page_of_packages_and_links_to_the_others(self, client, large):
        html = catalog_page(client, large)

        assert html.count('class="package-card"') == CATALOG_PAGE_SIZE
        assert "Packages 1–24 of 50." in html
        assert f'href="/store/{large.slug}/?page=2" rel="next"' in html
        assert f'href="/store/{large.slug}/?page=3"' in html
        assert 'rel="prev"' not in html
        compare = section(html, "compare-heading")
        assert compare.count('<th scope="col"><a href=') == CATALOG_PAGE_SIZE

    def test_the_last_page_shows_the_rest_and_points_back(self, client, large):
        response = client.get(reverse("storefront:catalog", args=[large.slug]), {"page": "3"})
        html = response.content.decode()

        assert html.count('class="package-card"') == 2
        assert "Packages 49–50 of 50." in html
        assert f'href="/store/{large.slug}/?page=2" rel="prev"' in html
        assert '<link rel="canonical" href="http://testserver/store/catalog-0/?page=3">' in html

    @pytest.mark.parametrize("number", ["0", "4", "x", "-1", "1.5", "9999999", "٣"])
    def test_a_page_that_does_not_exist_is_not_found(self, client, large, number):
        response = client.get(reverse("storefront:catalog", args=[large.slug]), {"page": number})

        assert response.status_code == 404

    def test_a_small_catalog_has_no_page_links(self, client, catalog):
        priced_package(catalog=catalog)

        html = catalog_page(client, catalog)

        assert 'class="pagination"' not in html
        assert "Packages 1–" not in html
