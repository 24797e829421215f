"""The checkout and the customer area read a fixed number of queries, whatever the size."""

from __future__ import annotations

from functools import partial

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from djmoney.money import Money

from catalog.models import Variant, VariantOption
from subscriptions.models import InvoiceNumberCounter
from subscriptions.ordering import order_place
from tests.factories import (
    PackagePriceAmountFactory,
    PackagePriceFactory,
    PackageQuotaFactory,
    VariantFactory,
    VariantOptionFactory,
    VariantPriceAmountFactory,
    VariantPriceFactory,
    priced_package,
)

pytestmark = pytest.mark.django_db

# session, user, then the package with all a quote reads (catalog.selectors.package_for_order):
# on PostgreSQL one statement, the package with its catalog and, as JSON columns, its quotas,
# its pricing options with their amounts and its variants down to their prices' amounts;
# elsewhere three, the package with its catalog and quotas (one join), its pricing options
# with their amounts (one join), its variants down to their prices' amounts (one join).
CHECKOUT_REVIEW_QUERIES = {"sqlite": 5, "postgresql": 3}
# The review's reads, then the writes: the order, its lines, its services, the year's
# invoice counter (moved and read in one statement), the invoice and its lines, the
# account-credit check, the services' "ordered" events, and the one task that sends the
# "order placed" and "invoice created" emails. It was 26: the checkout token is now checked
# by the database's unique key, the invoice is written once with its number, the quotas
# come with the package, and the redirect reads the invoice order_place wrote. Counted
# outside a test transaction, as a server runs it: with the transaction's BEGIN and COMMIT
# (16 in all). On PostgreSQL, writable CTEs join statements: the order with its services
# (bulk.instances_insert_returning_with_parent), the counter with the invoice (invoicing.
# invoice_issue_new), and the order's lines, the invoice's lines, the events and the task
# row (bulk.rows_together): 9, that is BEGIN, order and services, counter and invoice,
# account credit, the rest, COMMIT after the three reads (it was 11 with the package's
# three reads).
CHECKOUT_PLACE_QUERIES = {"sqlite": 16, "postgresql": 9}
# A package with stock and a per-user limit (bench/checkout.py's stock run) adds the stock
# take: one UPDATE whose WHERE checks the stock left and counts what the customer holds
# (catalog.stock.stock_take_at_once); it was two statements, the package row's lock that
# read both, then the UPDATE. And the customer's lock, taken first so that what they hold
# is counted by one order at a time: on PostgreSQL the order's INSERT takes it, reading
# its customer_id FOR UPDATE (ordering._customer_lock_sql); on SQLite one more statement.
CHECKOUT_PLACE_STOCK_QUERIES = {"sqlite": 16 + 2, "postgresql": 9 + 1}
ACCOUNT_QUERIES = 5  # session, user, orders, services, invoices


def package_with(size: int):
    """A package with `size` extra pricing options, `size` quotas and `size` variants of `size`
    options each."""
    package = priced_package()
    for _ in range(size):
        PackageQuotaFactory(package=package, limit=10)
    for n in range(size):
        extra = PackagePriceFactory(package=package, name=f"Plan {n}")
        PackagePriceAmountFactory(package_price=extra, price=Money("20.00", "USD"))
    chosen = {}
    for _ in range(size):
        variant = VariantFactory(type=Variant.Type.SELECT)
        package.variants.add(variant)
        for _ in range(size):
            option = VariantOptionFactory(variant=variant)
            for name in ["Monthly", *(f"Plan {n}" for n in range(size))]:
                VariantPriceAmountFactory(
                    variant_price=VariantPriceFactory(option=option, name=name),
                    price=Money("1.00", "USD"),
                )
            chosen.setdefault(f"variant_{variant.code}", option.pk)
    return package, package.prices.get(name="Monthly"), chosen


def count_queries(call) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = call()
    assert response.status_code in (200, 302), response.status_code
    return len(queries)


def checkout_counts(client, size: int) -> tuple[int, int]:
    package, monthly, chosen = package_with(size)
    url = reverse("subscriptions:checkout", args=[package.catalog.slug, package.slug])
    data = {"price": monthly.pk, **chosen}
    review = count_queries(lambda: client.get(url, data))
    place = count_queries(lambda: client.post(url, {**data, "checkout_token": f"t{size}"}))
    return review, place


@pytest.mark.django_db(transaction=True)
def test_the_checkout_reads_the_same_number_of_queries_for_1_and_6_variants(customer_client):
    # The year's invoice counter exists after its first invoice; count the usual checkout.
    InvoiceNumberCounter.objects.create(year=timezone.now().year)
    small = checkout_counts(customer_client, 1)
    large = checkout_counts(customer_client, 6)
    vendor = connection.vendor
    assert small == large == (CHECKOUT_REVIEW_QUERIES[vendor], CHECKOUT_PLACE_QUERIES[vendor])


@pytest.mark.django_db(transaction=True)
def test_an_order_of_a_package_with_stock_and_a_per_user_limit_adds_its_locks(
    customer_client,
):
    InvoiceNumberCounter.objects.create(year=timezone.now().year)
    package, monthly, chosen = package_with(1)
    package.stock_qty, package.per_user_limit = 5, 2
    package.save(update_fields=["stock_qty", "per_user_limit"])
    url = reverse("subscriptions:checkout", args=[package.catalog.slug, package.slug])
    data = {"price": monthly.pk, **chosen}
    posts = [{**data, "checkout_token": token} for token in ("first", "second")]
    counts = [count_queries(partial(customer_client.post, url, posted)) for posted in posts]
    assert counts == [CHECKOUT_PLACE_STOCK_QUERIES[connection.vendor]] * 2
    package.refresh_from_db()
    assert package.stock_qty == 3


def test_the_account_page_reads_the_same_number_of_queries_for_1_and_10_orders(
    customer_client, customer
):
    package, monthly, chosen = package_with(1)
    options = list(VariantOption.objects.filter(pk__in=chosen.values()))

    def place():
        order_place(customer=customer, package=package, price=monthly, variant_options=options,
                    quantity=1, currency="USD", checkout_fields={})  # fmt: skip

    url = reverse("subscriptions:account")
    place()
    one = count_queries(lambda: customer_client.get(url))
    for _ in range(9):
        place()
    ten = count_queries(lambda: customer_client.get(url))
    assert one == ten == ACCOUNT_QUERIES
