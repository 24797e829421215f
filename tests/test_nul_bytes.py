"""A NUL character in any input is refused with a 400 and writes nothing.

PostgreSQL refuses NUL in text (a DataError, so a 500 before this guard); each
case runs on the default database and again on PostgreSQL.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse

from subscriptions.models import Order
from tests.factories import shop_package

DATABASES = [
    pytest.param("any", id="default-database"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
pytestmark = [pytest.mark.django_db, pytest.mark.parametrize("database", DATABASES)]


@pytest.fixture(autouse=True)
def on_database(database):
    if database != "any":
        assert connection.vendor == database


def checkout_url(package) -> str:
    return reverse("subscriptions:checkout", args=[package.catalog.slug, package.slug])


def assert_refused(response) -> None:
    assert response.status_code == 400
    assert "NUL character" in response.content.decode()


def test_a_nul_in_the_checkout_token_is_refused_and_orders_nothing(customer_client):
    package, monthly, options = shop_package()
    data = {"price": monthly.pk, "variant_region": options["eu"].pk, "checkout_token": "t\x001"}

    assert_refused(customer_client.post(checkout_url(package), data))

    assert not Order.objects.exists()


def test_a_nul_in_a_parameter_name_is_refused(customer_client):
    package, monthly, _ = shop_package()
    response = customer_client.post(checkout_url(package), {"price": monthly.pk, "x\x00": "1"})
    assert_refused(response)
    assert not Order.objects.exists()


def test_a_nul_in_a_query_string_is_refused(client):
    package, monthly, _ = shop_package()
    url = reverse("storefront:package", args=[package.catalog.slug, package.slug])
    assert_refused(client.get(url, {"price": f"{monthly.pk}\x00"}))
    assert_refused(client.get(reverse("storefront:index"), {"q": "\x00"}))


def test_a_nul_in_the_sign_up_form_is_refused_and_creates_no_account(client):
    response = client.post(
        reverse("signup"),
        {
            "email": "nul\x00@example.com",
            "password1": "a-long-pass-1",
            "password2": "a-long-pass-1",
        },
    )
    assert_refused(response)
    assert not get_user_model().objects.filter(email__startswith="nul").exists()


def test_a_nul_in_a_cookie_is_refused(client):
    client.cookies["sessionid"] = "abcdefgh\x00ijkl"
    assert_refused(client.get(reverse("storefront:index")))


def test_an_admin_search_for_a_nul_is_refused(staff_client):
    assert_refused(staff_client.get("/admin/subscriptions/order/", {"q": "\x00"}))
