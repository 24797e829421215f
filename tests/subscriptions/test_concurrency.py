"""Stock and per-user limits under concurrent orders, on a real PostgreSQL server.

Each thread has its own database connection (Django's are per thread), so
these are real concurrent transactions racing for the same rows.
"""

from __future__ import annotations

import pytest
from django.db import connection

from catalog.models import Package
from subscriptions.models import Order, Service
from subscriptions.ordering import order_place
from tests.factories import customers, shop_package
from tests.support.concurrency import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def order_call(customer, package, price, option, **kwargs):
    return lambda: order_place(
        customer=customer, package=package, price=price, variant_options=[option],
        quantity=1, currency="USD", checkout_fields={}, **kwargs,
    )  # fmt: skip


def test_forty_concurrent_orders_at_a_stock_of_ten_sell_exactly_ten():
    assert connection.vendor == "postgresql"
    package, monthly, options = shop_package(stock_qty=10)

    outcomes = race([order_call(c, package, monthly, options["eu"]) for c in customers(40)])

    assert outcomes.count("ok") == 10, outcomes
    assert set(outcomes) == {"ok", "sold_out"}, outcomes
    assert Package.objects.get(pk=package.pk).stock_qty == 0
    assert Order.objects.count() == 10
    assert Service.objects.filter(took_stock=True).count() == 10


def test_with_oversell_every_order_passes_and_stock_stops_at_zero():
    package, monthly, options = shop_package(stock_qty=10, oversell_enabled=True)

    outcomes = race([order_call(c, package, monthly, options["eu"]) for c in customers(40)])

    assert outcomes.count("ok") == 40, outcomes
    assert Package.objects.get(pk=package.pk).stock_qty == 0
    assert Service.objects.filter(took_stock=True).count() == 10


@pytest.mark.parametrize("stock", [-1, 100], ids=["untracked stock", "tracked stock"])
def test_one_customer_double_submitting_cannot_pass_the_per_user_limit(stock):
    # With stock, the limit is checked in the statement that takes it (after the customer's
    # lock, which the order's INSERT takes on PostgreSQL).
    package, monthly, options = shop_package(per_user_limit=1, stock_qty=stock)
    (customer,) = customers(1)

    outcomes = race(
        [
            order_call(customer, package, monthly, options["eu"], checkout_token=f"t{n}")
            for n in range(10)
        ]
    )

    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) == {"ok", "per_user_limit"}, outcomes
    assert Service.objects.filter(customer=customer).count() == 1
    if stock > 0:
        assert Package.objects.get(pk=package.pk).stock_qty == stock - 1


def test_the_same_checkout_submitted_twice_at_once_places_one_order():
    package, monthly, options = shop_package()
    (customer,) = customers(1)

    outcomes = race(
        [order_call(customer, package, monthly, options["eu"], checkout_token="same")] * 2
    )

    assert outcomes == ["ok", "ok"]
    assert Order.objects.count() == 1
