"""Cached pages: a catalog edit shows on the very next request.

These tests commit for real (a transactional database): the version token is
replaced as an edit's transaction commits.
"""

from __future__ import annotations

import pytest
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from djmoney.money import Money

from catalog.models import Package, PackagePriceAmount
from catalog.stock import stock_lock, stock_release, stock_take
from storefront.cache import catalog_changed, current_version
from tests.factories import (
    CatalogFactory,
    VariantFactory,
    VariantOptionFactory,
    priced_package,
    variant_price,
)
from tests.support.urls import catalog_url, package_url

pytestmark = pytest.mark.django_db(transaction=True)


def main(response) -> str:
    html = response.content.decode()
    return html[html.index("<main") : html.index("</main>")]


def test_a_repeated_request_is_served_from_the_cache_with_two_queries(
    client, catalog, django_assert_num_queries
):
    priced_package(catalog=catalog, name="Cached one")
    first = main(client.get(catalog_url(catalog)))

    with django_assert_num_queries(2):  # the catalog version and the packages' stock
        second = main(client.get(catalog_url(catalog)))

    assert "Cached one" in second
    assert second == first


def test_renaming_a_package_shows_on_the_next_request(client, catalog):
    package = priced_package(catalog=catalog, name="Old name")
    client.get(catalog_url(catalog))
    client.get(package_url(package))

    package.name = "New name"
    package.save()

    assert "New name" in client.get(catalog_url(catalog)).content.decode()
    assert "New name" in client.get(package_url(package)).content.decode()


def test_a_price_change_shows_on_the_next_request(client, catalog):
    package = priced_package(catalog=catalog, amounts=(("USD", "9.00"),))
    assert "9.00\xa0USD" in client.get(package_url(package)).content.decode()

    amount = PackagePriceAmount.objects.get(package_price__package=package)
    amount.price = Money("7.00", "USD")
    amount.save()

    assert "7.00\xa0USD / month" in client.get(package_url(package)).content.decode()


def test_adding_a_variant_to_a_package_shows_on_the_next_request(client, catalog):
    package = priced_package(catalog=catalog)
    client.get(package_url(package))
    variant = VariantFactory(name="Region", code="region")
    option = VariantOptionFactory(variant=variant, name="Frankfurt")
    variant_price(option, "Monthly", USD="0", EUR="0")
    client.get(package_url(package))

    package.variants.add(variant)

    assert "Frankfurt" in client.get(package_url(package)).content.decode()


def test_deleting_a_package_shows_on_the_next_request(client, catalog):
    priced_package(catalog=catalog, name="Keeper")
    doomed = priced_package(catalog=catalog, name="Doomed")
    assert "Doomed" in client.get(catalog_url(catalog)).content.decode()

    doomed.delete()

    assert "Doomed" not in client.get(catalog_url(catalog)).content.decode()


def test_stock_taken_with_a_queryset_update_shows_on_the_next_request(client, catalog):
    package = priced_package(catalog=catalog, stock_qty=5)
    assert "5 left" in client.get(catalog_url(catalog)).content.decode()

    Package.objects.filter(pk=package.pk).update(stock_qty=F("stock_qty") - 5)

    listing = client.get(catalog_url(catalog)).content.decode()
    assert "5 left" not in listing
    assert "Sold out" in listing


def test_other_writes_without_signals_show_once_catalog_changed_is_called(client, catalog):
    package = priced_package(catalog=catalog, amounts=(("USD", "9.00"),))
    assert "9.00\xa0USD" in client.get(package_url(package)).content.decode()

    PackagePriceAmount.objects.filter(package_price__package=package).update(price=7)
    catalog_changed()

    assert "7.00\xa0USD / month" in client.get(package_url(package)).content.decode()


def test_every_edit_replaces_the_version_token(catalog):
    before = current_version()

    priced_package(catalog=catalog)

    assert current_version() not in (None, before)


def test_currencies_are_cached_apart(client, catalog):
    priced_package(catalog=catalog, amounts=(("USD", "9.00"), ("EUR", "8.00")))
    assert "9.00\xa0USD" in client.get(catalog_url(catalog)).content.decode()

    client.post(reverse("storefront:set_currency"), {"currency": "EUR"})

    assert "8.00\xa0EUR" in client.get(catalog_url(catalog)).content.decode()


def test_staff_previews_are_never_served_to_customers_from_the_cache(client, staff_client, catalog):
    package = priced_package(catalog=catalog, hidden=True)
    staff_html = staff_client.get(package_url(package)).content.decode()
    staff_client.logout()

    customer_html = client.get(package_url(package)).content.decode()

    assert "Staff note" in staff_html
    assert "Staff note" not in customer_html


def test_a_cached_page_carries_a_working_csrf_token_for_the_currency_switcher(catalog):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    priced_package(catalog=catalog)
    browser.get(catalog_url(catalog))  # builds the cached page
    html = browser.get(catalog_url(catalog)).content.decode()  # served from it
    token = html.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]

    response = browser.post(
        reverse("storefront:set_currency"), {"currency": "EUR", "csrfmiddlewaretoken": token}
    )

    assert response.status_code == 302
    assert browser.session["currency"] == "EUR"


def test_a_cached_page_sends_the_switcher_back_to_the_address_asked_for(client, catalog):
    package = priced_package(catalog=catalog)
    price = package.prices.get()
    client.get(package_url(package) + f"?price={price.pk}")

    html = client.get(package_url(package) + f"?price={price.pk}&utm=a<b").content.decode()

    assert f'name="next" value="{package_url(package)}?price={price.pk}&amp;utm=a%3Cb"' in html


def test_signed_in_customers_get_their_own_header_not_the_cached_one(client, customer, catalog):
    priced_package(catalog=catalog)
    anonymous = client.get(catalog_url(catalog)).content.decode()
    client.force_login(customer)

    signed_in = client.get(catalog_url(catalog)).content.decode()

    assert "Log in" in anonymous
    assert "My account" in signed_in
    assert "Log in" not in signed_in
    assert '<li class="package-card">' in signed_in  # the cached body, not escaped


def test_a_waiting_message_is_shown_even_when_the_page_is_cached(rf, catalog):
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.messages import add_message, constants
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.contrib.sessions.backends.db import SessionStore

    from storefront.views import catalog_detail

    def visit(message=None):
        request = rf.get(catalog_url(catalog))
        request.session = SessionStore()
        request.user = AnonymousUser()
        request._messages = FallbackStorage(request)
        if message:
            add_message(request, constants.INFO, message)
        return catalog_detail(request, catalog.slug).content.decode()

    priced_package(catalog=catalog)
    visit()
    visit()  # cached for plain visits by now

    assert "Your order was placed." in visit("Your order was placed.")


def test_compacting_keeps_preformatted_text_intact():
    from storefront.responses import compact_html

    html = "<div>\n    <p>a</p>\n\n    <pre>line\n    indented</pre>\n</div>"

    assert compact_html(html) == "<div>\n<p>a</p>\n<pre>line\n    indented</pre>\n</div>"


@pytest.mark.django_db(transaction=False)
def test_a_transaction_replaces_the_version_once_as_it_commits(
    django_capture_on_commit_callbacks,
):
    catalog_changed()
    before = current_version()

    with django_capture_on_commit_callbacks() as callbacks:
        catalog = CatalogFactory()
        priced_package(catalog=catalog)
        priced_package(catalog=catalog)
        Package.objects.update(stock_qty=3)
        assert current_version() == before  # nothing replaced inside the transaction

    assert len(callbacks) == 1
    callbacks[0]()
    assert current_version() not in (None, before)


def take_stock(package: Package, units: int) -> None:
    """As an order does: under the package row's lock, in its own transaction."""
    with transaction.atomic():
        stock_lock(package)
        stock_take(package, units)


def test_an_order_taking_stock_keeps_the_cached_pages_and_shows_the_new_count(client, catalog):
    package = priced_package(catalog=catalog, stock_qty=5, allow_quantity=Package.Quantity.MULTIPLE)
    assert "5 left" in client.get(catalog_url(catalog)).content.decode()
    assert 'max="5"' in client.get(package_url(package)).content.decode()
    version = current_version()

    take_stock(package, 2)

    assert current_version() == version
    assert "3 left" in client.get(catalog_url(catalog)).content.decode()
    page = client.get(package_url(package)).content.decode()
    assert "3 left" in page
    assert 'max="3"' in page


def test_the_last_unit_sold_disables_the_order_button_on_the_next_request(client, catalog):
    package = priced_package(catalog=catalog, stock_qty=1)
    page = client.get(package_url(package)).content.decode()
    assert "data-sold-out" not in page

    take_stock(package, 1)

    page = client.get(package_url(package)).content.decode()
    assert 'disabled aria-describedby="order-reason" data-sold-out=' in page
    assert "This package is sold out." in page
    listing = client.get(catalog_url(catalog)).content.decode()
    assert '<li class="badge badge-sold-out">Sold out</li>' in listing


def test_selling_out_or_coming_back_in_stock_changes_what_can_be_ordered(client, catalog):
    target = priced_package(catalog=catalog, name="Bigger", stock_qty=1)
    package = priced_package(catalog=catalog, name="Smaller")
    package.scalable_to.add(target)
    assert "Bigger" in main(client.get(package_url(package)))

    take_stock(target, 1)

    assert "Bigger" not in main(client.get(package_url(package)))

    stock_release(package_id=target.pk, units=1)

    assert "Bigger" in main(client.get(package_url(package)))


def test_a_signed_in_customer_sees_the_stock_of_now_too(client, catalog, django_user_model):
    package = priced_package(catalog=catalog, stock_qty=4)
    client.force_login(django_user_model.objects.create_user(username="buyer"))
    assert "4 left" in client.get(package_url(package)).content.decode()

    take_stock(package, 1)

    assert "3 left" in client.get(package_url(package)).content.decode()
