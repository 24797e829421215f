"""Editing the catalog after an order never changes the order, its invoice or its services."""

from __future__ import annotations

import pytest
from djmoney.money import Money

from catalog.models import PackagePriceAmount, VariantPriceAmount
from subscriptions.models import Order
from tests.factories import place, shop_package, usd

pytestmark = pytest.mark.django_db


def test_catalog_edits_do_not_change_what_was_bought(customer):
    package, monthly, options = shop_package()
    order = place(customer, package, monthly, [options["eu"]])
    before_lines = list(order.lines.values_list("description", "unit_amount", "amount"))
    before_invoice = list(order.invoices.get().lines.values_list("description", "amount"))

    PackagePriceAmount.objects.filter(package_price=monthly).update(
        price=99, setup_fee=50, signup_fee=20
    )
    VariantPriceAmount.objects.update(price=77)
    options["eu"].name = "Somewhere else"
    options["eu"].value = "xx"
    options["eu"].save()
    monthly.name = "Renamed"
    monthly.save()
    package.name = "New name"
    package.trial_period = 30
    package.save()

    order = Order.objects.get(pk=order.pk)
    assert list(order.lines.values_list("description", "unit_amount", "amount")) == before_lines
    assert list(order.invoices.get().lines.values_list("description", "amount")) == before_invoice
    assert order.total == usd(10 + 2 + 5 + 1 + 3)
    assert (order.package_name, order.price_name) != ("New name", "Renamed")
    service = order.services.get()
    assert service.recurring_amount == usd(12)
    assert service.price_name == "Monthly"
    assert service.variants == [
        {"code": "region", "name": "Region", "option": "Europe", "value": "eu"}
    ]
    assert service.trial_period == 0
    assert order.invoices.get().total == Money(21, "USD")
