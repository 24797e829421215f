"""The visibility and orderability rules the checkout reuses, called directly."""

from __future__ import annotations

import pytest
from django.http import Http404

from catalog.availability import Reason, package_orderability
from catalog.models import Package, PackagePrice
from storefront.selectors import package_for_customer_or_404, visible_catalog_or_404
from tests.factories import CatalogFactory, priced_package

pytestmark = pytest.mark.django_db


def test_an_orderable_package_has_no_reason(catalog):
    package = priced_package(catalog=catalog)

    assert package_orderability(package, "USD") == (True, "")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"status": Package.Status.DRAFT}, Reason.INACTIVE),
        ({"status": Package.Status.DISABLED}, Reason.INACTIVE),
        ({"retired": True}, Reason.RETIRED),
        ({"stock_qty": 0}, Reason.SOLD_OUT),
    ],
)
def test_each_state_that_stops_an_order_gives_its_reason(catalog, changes, reason):
    package = priced_package(catalog=catalog, **changes)

    assert package_orderability(package, "USD") == (False, reason)


def test_a_package_with_no_enabled_option_cannot_be_ordered(catalog):
    package = priced_package(catalog=catalog)
    PackagePrice.objects.filter(package=package).update(enabled=False)

    assert package_orderability(package, "USD") == (False, Reason.NO_PRICING)


def test_a_package_not_priced_in_the_currency_cannot_be_ordered_in_it(catalog):
    package = priced_package(catalog=catalog, amounts=(("USD", "9.00"),))

    assert package_orderability(package, "USD").orderable
    assert package_orderability(package, "EUR") == (False, "This package is not sold in EUR.")


def test_a_pricing_option_of_another_package_is_refused(catalog):
    package = priced_package(catalog=catalog)
    other = priced_package(catalog=catalog)

    result = package_orderability(package, "USD", other.prices.get())

    assert result == (False, Reason.PRICE_NOT_SOLD)


def test_a_disabled_pricing_option_is_refused(catalog):
    package = priced_package(catalog=catalog)
    extra = priced_package(catalog=catalog).prices.get()
    extra.package = package
    extra.name = "Old"
    extra.enabled = False
    extra.save()

    assert package_orderability(package, "USD", extra) == (False, Reason.PRICE_NOT_SOLD)


def test_hidden_catalogs_are_found_by_their_slug():
    hidden = CatalogFactory(status="hidden")

    assert visible_catalog_or_404(hidden.slug) == hidden
    with pytest.raises(Http404):
        visible_catalog_or_404("missing")


def test_inactive_packages_are_found_only_for_staff(catalog, staff_user, customer):
    package = priced_package(catalog=catalog, status=Package.Status.DRAFT)

    assert package_for_customer_or_404(catalog.slug, package.slug, staff_user) == package
    with pytest.raises(Http404):
        package_for_customer_or_404(catalog.slug, package.slug, customer)
    with pytest.raises(Http404):
        package_for_customer_or_404(catalog.slug, package.slug, None)
