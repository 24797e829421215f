"""The currency switcher: remembered in the session, applied to every amount."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.urls import reverse

from catalog.currency import SESSION_KEY, format_money, get_currency
from tests.factories import priced_package
from tests.support.urls import package_url

SET_CURRENCY = reverse("storefront:set_currency")


@pytest.mark.django_db
class TestSwitching:
    def test_pages_use_the_store_default_currency_until_the_customer_picks_one(
        self, client, catalog
    ):
        package = priced_package(catalog=catalog, amounts=(("USD", "9.00"), ("EUR", "8.00")))

        html = client.get(package_url(package)).content.decode()

        assert "9.00\xa0USD / month" in html
        assert "8.00\xa0EUR" not in html

    def test_a_chosen_currency_is_kept_in_the_session_and_applied_to_every_page(
        self, client, catalog
    ):
        package = priced_package(catalog=catalog, amounts=(("USD", "9.00"), ("EUR", "8.00")))

        response = client.post(SET_CURRENCY, {"currency": "EUR", "next": package_url(package)})
        page = client.get(package_url(package)).content.decode()
        listing = client.get(reverse("storefront:catalog", args=[catalog.slug])).content.decode()
        index = client.get(reverse("storefront:index")).content.decode()

        assert response.status_code == 302
        assert response["Location"] == package_url(package)
        assert client.session[SESSION_KEY] == "EUR"
        assert "8.00\xa0EUR / month" in page
        assert "9.00\xa0USD" not in page
        assert "from 8.00\xa0EUR / month" in listing
        assert "from 8.00\xa0EUR / month" in index

    def test_the_switcher_marks_the_current_currency(self, client, catalog):
        client.post(SET_CURRENCY, {"currency": "EUR"})

        html = client.get(reverse("storefront:index")).content.decode()

        assert '<option value="EUR" selected>EUR</option>' in html
        assert '<option value="USD">USD</option>' in html

    def test_a_currency_the_store_does_not_sell_in_is_ignored(self, client):
        client.post(SET_CURRENCY, {"currency": "EUR"})

        response = client.post(SET_CURRENCY, {"currency": "GBP"})

        assert response.status_code == 302
        assert client.session[SESSION_KEY] == "EUR"

    def test_it_never_redirects_to_another_site(self, client):
        response = client.post(
            SET_CURRENCY, {"currency": "EUR", "next": "https://evil.example.com/"}
        )

        assert response["Location"] == reverse("storefront:index")

    def test_it_keeps_the_chosen_pricing_option_in_the_address_it_returns_to(self, client):
        response = client.post(SET_CURRENCY, {"currency": "EUR", "next": "/store/a/b/?price=7"})

        assert response["Location"] == "/store/a/b/?price=7"

    def test_scripts_get_json_instead_of_a_redirect(self, client):
        ok = client.post(SET_CURRENCY, {"currency": "EUR"}, headers={"accept": "application/json"})
        refused = client.post(
            SET_CURRENCY, {"currency": "XXX"}, headers={"accept": "application/json"}
        )

        assert ok.status_code == 200
        assert ok.json() == {"currency": "EUR"}
        assert refused.status_code == 400
        assert refused.json() == {"currency": "EUR"}

    def test_it_only_accepts_a_post(self, client):
        assert client.get(SET_CURRENCY + "?currency=EUR").status_code == 405

    def test_the_switcher_form_carries_a_csrf_token(self, client):
        html = client.get(reverse("storefront:index")).content.decode()

        assert 'name="csrfmiddlewaretoken"' in html


class TestGetCurrency:
    def request_with_session(self, session):
        request = RequestFactory().get("/")
        request.session = session
        return request

    def test_it_falls_back_to_the_default_for_a_currency_no_longer_sold(self, settings):
        settings.BILLING_CURRENCIES = ["USD", "EUR"]
        settings.BILLING_DEFAULT_CURRENCY = "USD"

        assert get_currency(self.request_with_session({SESSION_KEY: "GBP"})) == "USD"
        assert get_currency(self.request_with_session({SESSION_KEY: "EUR"})) == "EUR"
        assert get_currency(self.request_with_session({})) == "USD"


class TestLocaleFormatting:
    def test_amounts_follow_the_locale_separators(self):
        from djmoney.money import Money

        assert format_money(Money("1234.50", "USD"), "en") == "1,234.50\xa0USD"
        assert format_money(Money("1234.50", "EUR"), "de") == "1.234,50\xa0EUR"

    @pytest.mark.django_db
    def test_a_german_browser_gets_german_number_formatting(self, client, catalog):
        package = priced_package(catalog=catalog, amounts=(("USD", "1234.50"), ("EUR", "1000.00")))

        html = client.get(package_url(package), headers={"accept-language": "de"}).content.decode()

        assert "1.234,50\xa0USD / month" in html
        assert '<html lang="de">' in html
