"""The checkout and the change-package form answer odd numbers with a refusal, writing nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from subscriptions.models import Order
from subscriptions.ordering import order_place
from tests.factories import priced_package

pytestmark = pytest.mark.django_db

# NUL bytes never reach these views: the middleware answers 400 (tests/test_nul_bytes.py).
HOSTILE = ["²", "٣", "9" * 5000, "-1", "1.5", "1\u200b2", "\ufeff1"]


def checkout_url(package) -> str:
    return reverse("subscriptions:checkout", args=[package.catalog.slug, package.slug])


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("name", ["quantity", "price", "variant_os"])
def test_the_checkout_page_with_an_odd_number_is_a_page_not_an_error(customer_client, name, value):
    package = priced_package()

    response = customer_client.get(checkout_url(package), {name: value})

    assert response.status_code == 200


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("name", ["quantity", "price", "variant_os", "checkout_token"])
def test_posting_an_odd_number_to_the_checkout_places_no_order(customer_client, name, value):
    package = priced_package()
    price = package.prices.get()
    data = {"price": str(price.pk), "quantity": "1", "checkout_token": "t-1", name: value}

    response = customer_client.post(checkout_url(package), data)

    assert response.status_code in (302, 409)
    if name in ("quantity", "price", "variant_os"):
        assert response.status_code == 409
        assert not Order.objects.exists()


@pytest.mark.parametrize("value", HOSTILE)
def test_changing_package_to_an_odd_id_is_refused(customer_client, customer, value):
    package = priced_package()
    order = order_place(
        customer=customer,
        package=package,
        price=package.prices.get(),
        variant_options=[],
        quantity=1,
        currency="USD",
    )
    service = order.services.get()

    response = customer_client.post(
        reverse("subscriptions:service_change_package", args=[service.pk]), {"package": value}
    )

    assert response.status_code == 409
    assert not service.plan_changes.exists()
