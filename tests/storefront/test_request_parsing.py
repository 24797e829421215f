"""Numbers customers send are parsed with bounds: odd input is a choice not made, never a 500."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from catalog.selection import parse_selection
from tests.factories import priced_package

pytestmark = pytest.mark.django_db

# NUL bytes never reach the page (the middleware answers 400); the parser refuses them anyway.
HOSTILE = ["²", "٣", "9" * 5000, "-1", "1.5", "1e3", "0x10", " ", "1\u200b2"]


def query(**values: str) -> QueryDict:
    data = QueryDict(mutable=True)
    for key, value in values.items():
        data[key] = value
    return data


@pytest.mark.parametrize("value", HOSTILE)
def test_a_package_page_with_an_odd_number_in_any_parameter_is_served(client, value):
    package = priced_package()
    url = package.get_absolute_url()

    for name in ("quantity", "price", f"variant_{package.slug}"):
        response = client.get(url, {name: value})

        assert response.status_code == 200, (name, value)


def test_a_superscript_two_is_no_quantity():
    # str.isdigit() says yes, int() says no: the parser must side with int().
    assert parse_selection(query(quantity="²")).quantity == 0


def test_a_number_past_pythons_conversion_limit_is_no_price():
    assert parse_selection(query(price="9" * 5000)).price_id is None


def test_an_id_beyond_a_bigint_is_no_price():
    assert parse_selection(query(price=str(2**63))).price_id is None


def test_plain_digits_are_parsed():
    selection = parse_selection(query(price="12", quantity="3", variant_os="7"))

    assert (selection.price_id, selection.quantity, selection.variants) == (12, 3, {"os": [7]})


def test_a_variant_value_that_is_no_id_is_kept_as_text_for_the_refusal():
    assert parse_selection(query(variant_os="debian")).variants == {"os": ["debian"]}


def test_a_nul_byte_in_a_checkout_token_leaves_no_token():
    assert parse_selection(query(checkout_token="abc\x00def")).checkout_token == ""
