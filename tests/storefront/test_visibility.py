"""DESIGN.md's visibility table, state by state, on every page customers open."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from catalog.models import Catalog, Package
from catalog.services import package_set_scaling_targets
from tests.factories import CatalogFactory, priced_package
from tests.support.html import order_button
from tests.support.urls import catalog_url, package_url


@pytest.mark.django_db
class TestCatalogs:
    def test_the_index_lists_visible_catalogs_in_staff_order(self, client):
        CatalogFactory(name="Second", sort_order=2)
        CatalogFactory(name="First", sort_order=1)

        html = client.get(reverse("storefront:index")).content.decode()

        assert html.index("First") < html.index("Second")

    def test_a_hidden_catalog_is_not_on_the_index_but_its_link_works(self, client):
        hidden = CatalogFactory(name="Partner deals", status=Catalog.Status.HIDDEN)
        priced_package(catalog=hidden, name="Partner VPS")

        index = client.get(reverse("storefront:index"))
        page = client.get(catalog_url(hidden))

        assert "Partner deals" not in index.content.decode()
        assert page.status_code == 200
        assert "Partner VPS" in page.content.decode()
        assert '<meta name="robots" content="noindex">' in page.content.decode()

    def test_pages_answer_head_requests(self, client, catalog):
        package = priced_package(catalog=catalog)

        for url in (reverse("storefront:index"), catalog_url(catalog), package_url(package)):
            assert client.head(url).status_code == 200

    def test_an_unknown_catalog_is_a_friendly_404(self, client):
        response = client.get("/store/no-such-catalog/")

        assert response.status_code == 404
        assert "We couldn’t find that page" in response.content.decode()


@pytest.mark.django_db
class TestPackages:
    def test_an_active_package_is_listed_and_orderable(self, client, catalog):
        package = priced_package(catalog=catalog, name="Meet Standard")

        listing = client.get(catalog_url(catalog)).content.decode()
        page = client.get(package_url(package)).content.decode()

        assert "Meet Standard" in listing
        assert "disabled" not in order_button(page)

    def test_a_hidden_package_is_not_listed_but_its_page_is_orderable(self, client, catalog):
        priced_package(catalog=catalog, name="Listed one")
        hidden = priced_package(catalog=catalog, name="Private deal", hidden=True)

        listing = client.get(catalog_url(catalog)).content.decode()
        response = client.get(package_url(hidden))

        assert "Private deal" not in listing
        assert response.status_code == 200
        assert "disabled" not in order_button(response.content.decode())
        assert '<meta name="robots" content="noindex">' in response.content.decode()

    def test_a_retired_package_is_not_listed_and_its_page_says_it_is_no_longer_sold(
        self, client, catalog
    ):
        priced_package(catalog=catalog, name="Listed one")
        retired = priced_package(catalog=catalog, name="Classic", retired=True)

        listing = client.get(catalog_url(catalog)).content.decode()
        page = client.get(package_url(retired)).content.decode()

        assert "Classic" not in listing
        assert "This package is no longer sold." in page
        assert "disabled" in order_button(page)

    @pytest.mark.parametrize("status", [Package.Status.DRAFT, Package.Status.DISABLED])
    def test_an_inactive_package_is_a_404_for_customers(self, client, catalog, status):
        package = priced_package(catalog=catalog, name="Unpublished", status=status)

        listing = client.get(catalog_url(catalog)).content.decode()
        response = client.get(package_url(package))

        assert "Unpublished" not in listing
        assert response.status_code == 404

    @pytest.mark.parametrize("status", [Package.Status.DRAFT, Package.Status.DISABLED])
    def test_staff_preview_an_inactive_package_under_a_banner(self, staff_client, catalog, status):
        package = priced_package(catalog=catalog, name="Unpublished", status=status)

        response = staff_client.get(package_url(package))
        html = response.content.decode()

        assert response.status_code == 200
        assert 'class="preview-banner"' in html
        assert f"Preview: this package is {status}" in html
        assert "disabled" in order_button(html)

    def test_customers_see_no_preview_banner_on_a_public_package(self, client, catalog):
        package = priced_package(catalog=catalog)

        html = client.get(package_url(package)).content.decode()

        assert "preview-banner" not in html

    def test_staff_reach_a_draft_package_through_view_on_site(self, staff_client, catalog):
        package = priced_package(catalog=catalog, status=Package.Status.DRAFT)
        content_type = ContentType.objects.get_for_model(Package)

        response = staff_client.get(f"/admin/r/{content_type.pk}/{package.pk}/", follow=True)

        assert response.redirect_chain[-1][0].endswith(package_url(package))
        assert response.status_code == 200
        assert "preview-banner" in response.content.decode()

    def test_a_package_is_a_404_under_another_catalogs_slug(self, client, catalog):
        package = priced_package(catalog=catalog)
        other = CatalogFactory()

        response = client.get(reverse("storefront:package", args=[other.slug, package.slug]))

        assert response.status_code == 404

    def test_a_sold_out_package_is_listed_marked_and_cannot_be_ordered(self, client, catalog):
        package = priced_package(catalog=catalog, name="VPS XL", stock_qty=0)

        listing = client.get(catalog_url(catalog)).content.decode()
        page = client.get(package_url(package)).content.decode()

        assert "VPS XL" in listing
        assert '<li class="badge badge-sold-out">Sold out</li>' in listing
        assert "disabled" in order_button(page)
        assert "This package is sold out." in page

    def test_a_package_out_of_stock_with_oversell_can_still_be_ordered(self, client, catalog):
        package = priced_package(catalog=catalog, stock_qty=0, oversell_enabled=True)

        page = client.get(package_url(package)).content.decode()

        assert "disabled" not in order_button(page)
        assert "Sold out" not in page

    def test_a_package_with_little_stock_says_how_many_are_left(self, client, catalog):
        priced_package(catalog=catalog, stock_qty=3)

        listing = client.get(catalog_url(catalog)).content.decode()

        assert '<li class="badge badge-stock">3 left</li>' in listing


@pytest.mark.django_db
def test_scaling_targets_leave_out_retired_sold_out_and_inactive_packages(client, catalog):
    package = priced_package(catalog=catalog, name="Base", tier=1)
    targets = {
        "Bigger": priced_package(catalog=catalog, name="Bigger", tier=2),
        "Secret": priced_package(catalog=catalog, name="Secret", tier=3, hidden=True),
        "Smaller": priced_package(catalog=catalog, name="Smaller", tier=0),
        "Old": priced_package(catalog=catalog, name="Old", tier=2, retired=True),
        "Gone": priced_package(catalog=catalog, name="Gone", tier=2, stock_qty=0),
        "Draft": priced_package(catalog=catalog, name="Draft", status=Package.Status.DRAFT),
    }
    package_set_scaling_targets(package=package, targets=targets.values())

    html = client.get(package_url(package)).content.decode()
    section = html[html.index('id="scaling-heading"') :]

    assert '>Bigger</a> <span class="badge">Upgrade</span>' in section
    assert ">Secret</a>" in section
    assert '>Smaller</a> <span class="badge">Downgrade</span>' in section
    for name in ("Old", "Gone", "Draft"):
        assert f">{name}</a>" not in section
