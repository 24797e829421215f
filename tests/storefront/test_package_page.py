"""The package page: pricing options, variants, order form and what it says."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse
from djmoney.money import Money

from catalog.models import Package, PackagePrice, Variant
from tests.factories import (
    FeatureFactory,
    PackageFeatureFactory,
    PackagePriceAmountFactory,
    PackagePriceFactory,
    PackageQuotaFactory,
    QuotaFactory,
    VariantFactory,
    VariantOptionFactory,
    free_option,
    priced_package,
    variant_price,
)
from tests.support.html import order_button, section
from tests.support.urls import package_url

pytestmark = pytest.mark.django_db


def page(client, package, **query) -> str:
    response = client.get(package_url(package, **query))
    assert response.status_code == 200
    return response.content.decode()


def checked_price(html: str) -> str:
    match = re.search(r'name="price" value="(\d+)" checked', html)
    return match.group(1) if match else ""


def variant_select(html: str, code: str) -> str:
    start = html.index(f'name="variant_{code}"')
    return html[start : html.index("</select>", start)]


def use_currency(client, code: str) -> None:
    client.post(reverse("storefront:set_currency"), {"currency": code})


class TestPricingOptionSelection:
    def test_the_first_option_in_staff_order_is_selected_by_default(self, client, vps):
        monthly = vps.prices.get(name="Monthly")

        html = page(client, vps)

        assert checked_price(html) == str(monthly.pk)

    def test_a_price_query_parameter_selects_that_option(self, client, vps):
        annual = vps.prices.get(name="Annual")

        html = page(client, vps, price=annual.pk)

        assert checked_price(html) == str(annual.pk)
        assert "Windows Server (+150.00\xa0USD / year)" in variant_select(html, "os")

    def test_variant_prices_follow_the_selected_option(self, client, vps):
        annual = vps.prices.get(name="Annual")

        monthly_html = page(client, vps)
        annual_html = page(client, vps, price=annual.pk)

        assert "Windows Server (+15.00\xa0USD / month)" in variant_select(monthly_html, "os")
        assert "Windows Server (+150.00\xa0USD / year)" in variant_select(annual_html, "os")
        assert "Debian 12 (included)" in variant_select(annual_html, "os")

    def test_an_unknown_or_malformed_price_parameter_falls_back_to_the_default(self, client, vps):
        monthly = vps.prices.get(name="Monthly")

        assert checked_price(page(client, vps, price=999999)) == str(monthly.pk)
        assert checked_price(page(client, vps, price="abc")) == str(monthly.pk)

    def test_a_disabled_option_is_not_offered(self, client, vps):
        PackagePrice.objects.filter(package=vps, name="Annual").update(enabled=False)
        annual = vps.prices.get(name="Annual")

        html = page(client, vps, price=annual.pk)

        assert "Annual" not in section(html, "order-heading")
        assert checked_price(html) == str(vps.prices.get(name="Monthly").pk)

    def test_every_enabled_option_shows_its_price_period_and_fees(self, client, catalog):
        package = priced_package(catalog=catalog, amounts=())
        quarterly = package.prices.get()
        quarterly.time_interval = 3
        quarterly.save()
        PackagePriceAmountFactory(
            package_price=quarterly,
            price=Money("30.00", "USD"),
            setup_fee=Money("5.00", "USD"),
            signup_fee=Money("2.50", "USD"),
        )
        once = PackagePriceFactory(
            package=package, name="Lifetime", type="onetime", time_interval=None, billing_period=""
        )
        PackagePriceAmountFactory(package_price=once, price=Money("300.00", "USD"))
        free_option(package)

        html = section(page(client, package), "order-heading")

        assert "30.00\xa0USD / 3 months" in html
        assert "Plus setup fee 5.00\xa0USD and signup fee 2.50\xa0USD." in html
        assert "300.00\xa0USD one-time" in html
        assert '<span class="price-amount" data-price-text>Free</span>' in html

    def test_the_no_javascript_update_button_reloads_this_page_with_the_choices(self, client, vps):
        annual = vps.prices.get(name="Annual")
        windows = vps.variants.get().options.get(name="Windows Server")

        html = page(client, vps, price=annual.pk, variant_os=windows.pk)

        assert f'formaction="{package_url(vps)}"' in html
        assert f'<option value="{windows.pk}" selected>' in html


class TestVariants:
    def test_an_option_without_a_price_of_the_selected_options_name_is_not_offered(
        self, client, vps
    ):
        os_variant = vps.variants.get()
        freebsd = VariantOptionFactory(variant=os_variant, name="FreeBSD", value="freebsd")
        variant_price(freebsd, "monthly", USD="1.00", EUR="1.00")  # not "Monthly": no match
        variant_price(freebsd, "Annual", USD="10.00", EUR="9.00")

        monthly_html = page(client, vps)
        annual_html = page(client, vps, price=vps.prices.get(name="Annual").pk)

        assert "FreeBSD" not in variant_select(monthly_html, "os")
        assert "FreeBSD (+10.00\xa0USD / year)" in variant_select(annual_html, "os")

    def test_an_option_without_an_amount_in_the_customers_currency_is_not_offered(
        self, client, vps
    ):
        os_variant = vps.variants.get()
        usd_only = VariantOptionFactory(variant=os_variant, name="Arch", value="arch")
        variant_price(usd_only, "Monthly", USD="1.00")

        usd_html = page(client, vps)
        use_currency(client, "EUR")
        eur_html = page(client, vps)

        assert "Arch (+1.00\xa0USD / month)" in variant_select(usd_html, "os")
        assert "Arch" not in variant_select(eur_html, "os")

    def test_a_variant_left_with_no_option_is_not_shown(self, client, vps):
        region = VariantFactory(name="Region", code="region")
        option = VariantOptionFactory(variant=region, name="Frankfurt")
        variant_price(option, "Annual", USD="0", EUR="0")
        vps.variants.add(region)

        html = page(client, vps)

        assert 'name="variant_region"' not in html

    def test_hidden_variants_and_staff_descriptions_never_reach_customers(self, client, vps):
        secret = VariantFactory(
            name="Internal pool", code="pool", visibility=Variant.Visibility.HIDDEN
        )
        option = VariantOptionFactory(variant=secret, name="Pool A")
        variant_price(option, "Monthly", USD="0", EUR="0")
        vps.variants.add(secret)
        Variant.objects.filter(code="os").update(description="Images built by the platform team")

        html = page(client, vps)

        assert "Internal pool" not in html
        assert "Pool A" not in html
        assert "platform team" not in html

    def test_radio_and_checkbox_variants_post_option_ids_under_the_variant_code(self, client, vps):
        backup = VariantFactory(name="Backups", code="backup", type=Variant.Type.CHECKBOX)
        daily = VariantOptionFactory(variant=backup, name="Daily backups")
        variant_price(daily, "Monthly", USD="3.00", EUR="3.00")
        region = VariantFactory(name="Region", code="region", type=Variant.Type.RADIO)
        fra = VariantOptionFactory(variant=region, name="Frankfurt")
        ams = VariantOptionFactory(variant=region, name="Amsterdam")
        variant_price(fra, "Monthly", USD="0", EUR="0")
        variant_price(ams, "Monthly", USD="1.00", EUR="1.00")
        vps.variants.add(backup, region)

        html = page(client, vps)

        assert (
            f'type="checkbox" id="variant-backup-{daily.pk}" name="variant_backup" value="{daily.pk}">'
            in html
        )
        assert (
            f'type="radio" id="variant-region-{fra.pk}" name="variant_region" value="{fra.pk}" checked>'
            in html
        )
        assert (
            f'type="radio" id="variant-region-{ams.pk}" name="variant_region" value="{ams.pk}">'
            in html
        )
        assert 'Daily backups <span class="muted">(+3.00\xa0USD / month)</span>' in html


class TestOrderForm:
    def test_the_order_form_asks_the_checkout_with_get(self, client, vps):
        html = page(client, vps)

        checkout = reverse("subscriptions:checkout", args=[vps.catalog.slug, vps.slug])
        assert f'<form id="order-form" method="get" action="{checkout}"' in html

    def test_the_order_form_falls_back_to_this_page_when_no_checkout_is_installed(
        self, client, vps, monkeypatch
    ):
        from django.urls import NoReverseMatch

        from storefront import views

        real_reverse = views.reverse

        def reverse_without_checkout(name, *args, **kwargs):
            if name == "subscriptions:checkout":
                raise NoReverseMatch(name)
            return real_reverse(name, *args, **kwargs)

        monkeypatch.setattr(views, "reverse", reverse_without_checkout)

        html = page(client, vps)

        assert f'<form id="order-form" method="get" action="{package_url(vps)}"' in html

    def test_quantity_is_asked_only_when_the_package_allows_several(self, client, catalog):
        single = priced_package(catalog=catalog)
        several = priced_package(
            catalog=catalog, allow_quantity=Package.Quantity.MULTIPLE, per_user_limit=5
        )

        assert 'name="quantity"' not in page(client, single)
        html = page(client, several)
        assert 'name="quantity" value="1" min="1" max="5"' in html
        assert "Limit: 5 per customer." in html

    def test_the_per_user_limit_is_not_mentioned_when_there_is_none(self, client, catalog):
        package = priced_package(catalog=catalog)

        assert "per customer" not in page(client, package)

    @pytest.mark.parametrize(
        ("changes", "reason"),
        [
            ({"stock_qty": 0}, "This package is sold out."),
            ({"retired": True}, "This package is no longer sold."),
        ],
    )
    def test_the_order_button_is_disabled_with_the_reason(self, client, catalog, changes, reason):
        package = priced_package(catalog=catalog, **changes)

        html = page(client, package)

        assert "disabled" in order_button(html)
        assert f'data-order-reason role="status">{reason}</p>' in html

    def test_the_order_button_says_when_nothing_is_priced_in_the_customers_currency(
        self, client, catalog
    ):
        package = priced_package(catalog=catalog, amounts=(("USD", "9.00"),))
        use_currency(client, "EUR")

        html = page(client, package)

        assert "disabled" in order_button(html)
        assert "This package is not sold in EUR." in html
        assert "Not sold in EUR" in html

    def test_the_order_button_says_when_the_chosen_option_is_not_sold_in_this_currency(
        self, client, vps
    ):
        eur_less = PackagePriceFactory(package=vps, name="Biennial", time_interval=2, sort_order=5)
        PackagePriceAmountFactory(package_price=eur_less, price=Money("200.00", "USD"))
        use_currency(client, "EUR")

        default_html = page(client, vps)
        chosen_html = page(client, vps, price=eur_less.pk)

        assert "disabled" not in order_button(default_html)
        assert "disabled" in order_button(chosen_html)
        assert "The “Biennial” option is not sold in EUR." in chosen_html
        assert f'value="{eur_less.pk}" checked disabled>' in chosen_html

    def test_the_order_button_says_when_no_pricing_option_is_enabled(self, client, catalog):
        package = priced_package(catalog=catalog)
        PackagePrice.objects.filter(package=package).update(enabled=False)

        html = page(client, package)

        assert "disabled" in order_button(html)
        assert "This package has no pricing option on sale." in html

    def test_a_free_option_is_orderable_in_any_currency(self, client, catalog):
        package = priced_package(catalog=catalog, amounts=())
        PackagePrice.objects.filter(package=package).delete()
        free_option(package)
        use_currency(client, "EUR")

        html = page(client, package)

        assert "disabled" not in order_button(html)


class TestContent:
    def test_the_trial_is_described_in_words(self, client, catalog):
        outside = priced_package(catalog=catalog, trial_period=14, trial_interval="day")
        inside = priced_package(
            catalog=catalog,
            trial_period=1,
            trial_interval="month",
            trial_mode=Package.TrialMode.INSIDE,
        )

        assert "Free trial: 14 days before your first paid period." in page(client, outside)
        assert "Trial: the first 1 month of your first paid period." in page(client, inside)

    def test_customers_read_no_staff_wording(self, client, catalog):
        # Found by a new customer: "Tier 2" and "Extensible (any other service)" on the page.
        package = priced_package(catalog=catalog, tier=2, service_type="extensible")

        html = page(client, package)

        assert "Tier 2" not in html
        assert "Extensible" not in html
        assert "any other service" not in html

    def test_the_kind_of_service_is_shown_when_it_means_something(self, client, catalog):
        assert "Web meeting" in page(client, priced_package(catalog=catalog, service_type="meet"))

    def test_features_and_quotas_are_listed_with_units_and_overage_prices(self, client, catalog):
        package = priced_package(catalog=catalog, overages_enabled=True)
        PackageFeatureFactory(package=package, feature=FeatureFactory(name="Recording"))
        PackageQuotaFactory(
            package=package,
            quota=QuotaFactory(name="Storage", unit="GB", reset_period="month"),
            limit=100,
            overage_price=Money("0.10", "USD"),
        )
        PackageQuotaFactory(package=package, quota=QuotaFactory(name="Rooms"), limit=None)

        html = page(client, package)

        assert '<th scope="row">Recording</th><td>Included</td>' in html
        assert "<td>100 GB per month</td>" in html
        assert "<td>then 0.10\xa0USD per GB</td>" in html
        assert "<td>unlimited</td>" in html

    def test_the_head_has_a_title_a_description_and_a_canonical_link(self, client, vps):
        annual = vps.prices.get(name="Annual")

        html = page(client, vps, price=annual.pk)

        assert "<title>VPS M – Video services – Store</title>" in html
        assert '<meta name="description" content="2 vCPU, 4 GB RAM.">' in html
        assert f'<link rel="canonical" href="http://testserver{package_url(vps)}">' in html

    def test_the_script_data_carries_every_currency_and_no_staff_text(self, client, vps):
        Variant.objects.filter(code="os").update(description="staff only words")

        html = page(client, vps)
        raw = html[html.index('id="package-data"') :]
        data = json.loads(raw[raw.index(">") + 1 : raw.index("</script>")])

        monthly = next(p for p in data["prices"] if p["name"] == "Monthly")
        assert monthly["currencies"]["EUR"]["price"] == "11.00\xa0EUR / month"
        windows = next(o for o in data["variants"][0]["options"] if o["name"] == "Windows Server")
        assert windows["labels"]["Annual"]["EUR"] == "+140.00\xa0EUR / year"
        assert "staff only words" not in raw
