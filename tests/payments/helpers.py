"""Builders of the payment tests."""

from __future__ import annotations

import itertools
import threading

from django.core.exceptions import ValidationError
from django.db import connection

from subscriptions.services import order_place
from tests.subscriptions.helpers import shop_package

_packages = itertools.count()


def place_order(customer, *, quantity=1, stock_qty=5, currency="USD", **package_kwargs):
    """An order of the shop package (America region): its invoice is unpaid, 19 USD a unit."""
    package, monthly, options = shop_package(
        variant_code=f"region{next(_packages)}",
        stock_qty=stock_qty,
        allow_quantity="multiple",
        **package_kwargs,
    )
    return order_place(
        customer=customer,
        package=package,
        price=monthly,
        variant_options=[options["us"]],
        quantity=quantity,
        currency=currency,
        checkout_fields={},
    )


def race(calls) -> list[str]:
    """Run the calls at once, each in its own thread and connection; their outcomes."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[str] = [""] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=30)
            call()
            outcomes[index] = "ok"
        except ValidationError as error:
            outcomes[index] = error.code
        except Exception as error:  # surfaced in the assertion message
            outcomes[index] = f"{type(error).__name__}: {error}"
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes
