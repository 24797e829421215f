"""The catalog's rules as staff meet them: through the admin's pages and forms.

Pages are submitted the way a browser without JavaScript would: every field
the page renders, with its current value, plus the changes a test makes.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from djmoney.money import Money

from catalog.demo import load_demo
from catalog.models import (
    Catalog,
    NotificationEvent,
    Package,
    PackageFeature,
    PackagePrice,
    PackagePriceAmount,
    PackageQuota,
    PackageScaling,
    VariantPriceAmount,
)
from tests.factories import (
    CatalogFactory,
    FeatureFactory,
    ManualInstanceFactory,
    PackageFactory,
    PackageFeatureFactory,
    PackagePriceAmountFactory,
    PackagePriceFactory,
    PackageQuotaFactory,
    VariantFactory,
    VariantOptionFactory,
    VariantPriceAmountFactory,
    VariantPriceFactory,
    WebhookInstanceFactory,
    priced_package,
)
from tests.support.admin_forms import page_data, submit

pytestmark = pytest.mark.django_db


# --- submitting admin pages ---------------------------------------------------


def package_url(package: Package) -> str:
    return reverse("admin:catalog_package_change", args=[package.pk])


def submit_package(client, package: Package, changes: dict | None = None):
    return submit(client, package_url(package), changes, form_id="package_form")


def page_errors(response) -> dict[str, list[str]]:
    """Every error of the admin form and its inline rows, by the field's HTML name."""
    assert response.status_code == 200, "the page was saved, not shown with errors"
    form = response.context["adminform"].form
    errors = {form.add_prefix(name): list(messages) for name, messages in form.errors.items()}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for row in formset.forms:
            for name, messages in row.errors.items():
                errors[row.add_prefix(name)] = list(messages)
        if formset.non_form_errors():
            errors[formset.prefix] = list(formset.non_form_errors())
    return errors


def assert_saved(response) -> None:
    assert response.status_code == 302, page_errors(response)


def new_price_row(data_index: int, **values) -> dict:
    """Fields of a new pricing-option row (the page's blank row is number 0 after the stored ones)."""
    return {f"prices-{data_index}-{name}": value for name, value in values.items()}


@pytest.fixture
def package():
    """An active package with “Monthly” at 9 USD / 8 EUR."""
    return priced_package()


def monthly(package: Package) -> PackagePrice:
    return package.prices.get(name="Monthly")


# --- the package page: tabs ---------------------------------------------------


class TestTabs:
    def test_the_page_has_summary_pricing_provisioning_and_scaling_tabs(
        self, staff_client, package
    ):
        response = staff_client.get(package_url(package))
        labels = [tab.label for tab in response.context["package_tabs"]]
        assert labels == [
            "Summary", "Pricing", "Variants", "Features & quotas", "Provisioning", "Scaling",
        ]  # fmt: skip
        html = response.content.decode()
        assert 'role="tablist"' in html and html.count('role="tab"') == len(labels)

    def test_every_inline_is_shown_in_a_tab_exactly_once(self, staff_client, package):
        response = staff_client.get(package_url(package))
        in_tabs = [
            inline.formset.prefix
            for tab in response.context["package_tabs"]
            for inline in tab.inline_formsets
        ]
        assert sorted(in_tabs) == ["features", "prices", "quotas"]
        assert response.content.decode().count('id="prices-group"') == 1

    def test_a_tab_holding_an_error_is_marked(self, staff_client, package):
        response = submit_package(staff_client, package, {"prices-0-price_USD": "0"})
        marked = [tab.id for tab in response.context["package_tabs"] if tab.has_errors]
        assert marked == ["pricing"]
        html = response.content.decode()
        assert 'id="package-tab-pricing" data-tab="pricing"' in html
        pricing_tab = html.split('id="package-tab-pricing"', 1)[1].split("</button>", 1)[0]
        assert "data-has-errors" in pricing_tab and "(has errors)" in pricing_tab


# --- the Summary tab -------------------------------------------------------------


class TestSummary:
    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("stock_qty", "-2", "Stock must be 0 or more, or -1 for unlimited."),
            ("per_user_limit", "0", "The per-user limit must be 1 or more, or -1 for no limit."),
            ("tier", "1001", "Tier must be at most 1000."),
            ("trial_period", "400", "the longest allowed is about 366 days"),
            ("grace_period", "100", "the longest allowed is about 93 days"),
        ],
    )
    def test_stock_limit_trial_grace_and_tier_errors_speak_to_staff(
        self, staff_client, package, field, value, message
    ):
        errors = page_errors(submit_package(staff_client, package, {field: value}))
        assert any(message in text for text in errors[field]), errors

    def test_minus_one_means_unlimited_stock_and_no_per_user_limit(self, staff_client, package):
        assert_saved(submit_package(staff_client, package, {"stock_qty": -1, "per_user_limit": -1}))
        package.refresh_from_db()
        assert not package.has_stock and not package.has_per_user_limit

    def test_the_slug_is_derived_from_the_name_when_left_empty(self, staff_client):
        catalog = CatalogFactory()
        response = submit(
            staff_client,
            reverse("admin:catalog_package_add"),
            {
                "catalog": catalog.pk,
                "name": "Meet Premium Plus",
                "slug": "",
                "service_type": "meet",
                "status": "draft",
                "prices-0-name": "",
            },
            form_id="package_form",
        )
        assert_saved(response)
        assert Package.objects.get(name="Meet Premium Plus").slug == "meet-premium-plus"

    def test_the_description_is_sanitized_before_it_is_stored(self, staff_client, package):
        description = (
            '<p onclick="steal()">Fast <a href="javascript:x()">link</a></p><script>x</script>'
        )
        assert_saved(submit_package(staff_client, package, {"description": description}))
        package.refresh_from_db()
        assert "script" not in package.description and "onclick" not in package.description
        assert "javascript" not in package.description and "<p>Fast" in package.description

    def test_uuid_and_ulid_are_shown_but_not_editable(self, staff_client, package):
        response = staff_client.get(package_url(package))
        html = response.content.decode()
        assert str(package.uuid) in html and package.ulid in html
        assert 'name="uuid"' not in html and 'name="ulid"' not in html

    def test_settings_and_metadata_are_edited_as_key_value_lines(self, staff_client, package):
        response = submit_package(
            staff_client,
            package,
            {
                "package_settings": 'cpu = 2\nram_gb = 4.5\nbackups = true\nimage = "42"',
                "package_metadata": "crm_product_id = VPS-M",
            },
        )
        assert_saved(response)
        package.refresh_from_db()
        assert package.package_settings == {"cpu": 2, "ram_gb": 4.5, "backups": True, "image": "42"}
        assert package.package_metadata == {"crm_product_id": "VPS-M"}
        shown = page_data(staff_client.get(package_url(package)), "package_form")
        # Every line back; PostgreSQL's jsonb keeps keys in its own order, not the one typed.
        [lines] = shown["package_settings"]
        assert sorted(lines.split("\n")) == [
            "backups = true",
            "cpu = 2",
            'image = "42"',
            "ram_gb = 4.5",
        ]

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("cpu: 2", "Line 1: write “key = value”."),
            ("cpu = 2\ncpu = 3", "Line 2: “cpu” is already set above."),
            ("2cpu = 2", "“2cpu” is not a valid key"),
        ],
    )
    def test_invalid_key_value_lines_are_reported_next_to_the_field(
        self, staff_client, package, text, message
    ):
        errors = page_errors(submit_package(staff_client, package, {"package_settings": text}))
        assert any(message in error for error in errors["package_settings"]), errors

    def test_notification_preferences_are_chosen_from_the_lifecycle_events(
        self, staff_client, package
    ):
        response = submit_package(
            staff_client, package, {"notification_preferences": ["trial_ending", "order_placed"]}
        )
        assert_saved(response)
        package.refresh_from_db()
        assert package.notification_preferences == ["order_placed", "trial_ending"]

    def test_a_new_package_starts_with_every_customer_email_ticked(self, staff_client):
        # Found by a new user: the add page had every preference unticked, so the
        # first package's customers got no email at all.
        html = staff_client.get(reverse("admin:catalog_package_add")).content.decode()

        boxes = re.findall(r'<input[^>]*name="notification_preferences"[^>]*>', html)
        assert len(boxes) == len(NotificationEvent.values)
        assert all(" checked" in box for box in boxes)

    def test_an_unknown_notification_event_is_refused(self, staff_client, package):
        errors = page_errors(
            submit_package(staff_client, package, {"notification_preferences": ["spam"]})
        )
        assert "notification_preferences" in errors


# --- the Pricing tab -------------------------------------------------------------


class TestPricing:
    def test_each_option_has_price_and_fee_columns_per_store_currency(self, staff_client, package):
        response = staff_client.get(package_url(package))
        html = response.content.decode()
        for header in ("Price (USD)", "Setup fee (USD)", "Signup fee (USD)", "Price (EUR)"):
            assert header in html
        assert 'name="prices-0-price_USD" value="9.00"' in html
        assert 'name="prices-0-price_EUR" value="8.00"' in html

    def test_the_currency_of_an_amount_cannot_be_edited_here(self, staff_client, package):
        pricing = next(
            inline
            for inline in staff_client.get(package_url(package)).context["inline_admin_formsets"]
            if inline.formset.prefix == "prices"
        )
        assert not [name for name in pricing.formset.forms[0].fields if "currency" in name]

        # A forged currency field changes nothing: the USD column stays USD.
        response = submit_package(
            staff_client, package, {"prices-0-price_USD": "10", "prices-0-price_currency": "EUR"}
        )
        assert_saved(response)
        assert monthly(package).amounts.get(price_currency="USD").price == Money(10, "USD")

    def test_amounts_are_created_updated_and_deleted_from_the_columns(self, staff_client, package):
        response = submit_package(
            staff_client,
            package,
            {
                "prices-0-price_USD": "10.50",
                "prices-0-setup_fee_USD": "5",
                "prices-0-price_EUR": "",
                **new_price_row(
                    1,
                    name="Annual",
                    type="recurring",
                    time_interval=1,
                    billing_period="year",
                    enabled="on",
                    price_USD="100",
                    signup_fee_USD="3",
                ),
            },  # fmt: skip
        )
        assert_saved(response)
        amount = monthly(package).amounts.get()
        assert (amount.price, amount.setup_fee) == (Money("10.50", "USD"), Money(5, "USD"))
        annual = package.prices.get(name="Annual").amounts.get()
        assert (annual.price, annual.signup_fee) == (Money(100, "USD"), Money(3, "USD"))

    def test_pricing_option_names_are_unique_per_package(self, staff_client, package):
        response = submit_package(
            staff_client,
            package,
            new_price_row(1, name="Monthly", type="recurring", time_interval=1,
                          billing_period="month", enabled="on", price_USD="5"),
        )  # fmt: skip
        assert "Please correct the duplicate data for name" in str(page_errors(response))

    def test_a_recurring_option_needs_an_interval_and_a_billing_period(self, staff_client, package):
        errors = page_errors(
            submit_package(
                staff_client, package, {"prices-0-time_interval": "", "prices-0-billing_period": ""}
            )
        )
        assert errors["prices-0-time_interval"] == [
            "A recurring option is billed every 1 or more periods."
        ]
        assert errors["prices-0-billing_period"] == [
            "Choose the billing period of a recurring option."
        ]

    @pytest.mark.parametrize(("kind", "label"), [("free", "free"), ("onetime", "one-time")])
    def test_free_and_one_time_options_have_no_interval_or_billing_period(
        self, staff_client, package, kind, label
    ):
        errors = page_errors(submit_package(staff_client, package, {"prices-0-type": kind}))
        assert errors["prices-0-time_interval"] == [f"A {label} option has no time interval."]
        assert errors["prices-0-billing_period"] == [f"A {label} option has no billing period."]

    def test_a_free_option_has_no_amounts(self, staff_client, package):
        free_row = {"prices-0-type": "free", "prices-0-time_interval": "",
                    "prices-0-billing_period": ""}  # fmt: skip
        errors = page_errors(submit_package(staff_client, package, free_row))
        assert errors["prices-0-price_USD"] == ["A free pricing option has no amounts."]

        cleared = {**free_row, "prices-0-price_USD": "", "prices-0-price_EUR": ""}
        assert_saved(submit_package(staff_client, package, cleared))
        assert not PackagePriceAmount.objects.filter(package_price__package=package).exists()

    def test_an_enabled_paid_amount_must_be_above_zero(self, staff_client, package):
        errors = page_errors(submit_package(staff_client, package, {"prices-0-price_EUR": "0"}))
        assert errors["prices-0-price_EUR"] == [
            "An enabled paid option needs a price above zero; use a free option to give it away."
        ]

    @pytest.mark.parametrize("fee", ["setup_fee", "signup_fee"])
    def test_fees_cannot_be_negative(self, staff_client, package, fee):
        errors = page_errors(submit_package(staff_client, package, {f"prices-0-{fee}_USD": "-1"}))
        assert errors[f"prices-0-{fee}_USD"] == [f"The {fee.replace('_', ' ')} cannot be negative."]

    def test_a_fee_without_a_price_in_its_currency_is_refused(self, staff_client, package):
        errors = page_errors(
            submit_package(
                staff_client, package, {"prices-0-price_EUR": "", "prices-0-setup_fee_EUR": "2"}
            )
        )
        assert errors["prices-0-price_EUR"] == ["Enter the price in EUR too, or clear its fees."]

    def test_an_active_package_needs_an_enabled_option(self, staff_client, package):
        errors = page_errors(submit_package(staff_client, package, {"prices-0-enabled": None}))
        assert errors["prices"] == [
            "An active package needs at least one enabled pricing option: "
            "add or enable one, or set the package to draft."
        ]

    def test_a_package_set_to_draft_may_disable_its_only_option(self, staff_client, package):
        # The rule reads the status posted on the same page, not the stored one.
        response = submit_package(
            staff_client, package, {"status": "draft", "prices-0-enabled": None}
        )
        assert_saved(response)
        assert not monthly(package).enabled

    def test_every_paid_option_is_priced_in_the_default_currency(self, staff_client, package):
        errors = page_errors(submit_package(staff_client, package, {"prices-0-price_USD": ""}))
        assert errors["prices"] == [
            "“Monthly” has no amount in USD, the store's default currency: "
            "every paid option must be priced in it."
        ]

    def test_deleting_an_option_deletes_its_amounts(self, staff_client, package):
        annual = PackagePriceFactory(package=package, name="Annual", billing_period="year")
        PackagePriceAmountFactory(package_price=annual, price=Money(90, "USD"))
        assert_saved(submit_package(staff_client, package, {"prices-1-DELETE": "on"}))
        assert list(package.prices.values_list("name", flat=True)) == ["Monthly"]
        assert not PackagePriceAmount.objects.filter(package_price_id=annual.pk).exists()


# --- the Variants tab and variant pages -------------------------------------------


@pytest.fixture
def os_variant(package):
    """An operating-system variant whose Windows option has no “Monthly” price."""
    variant = VariantFactory(name="Operating system", code="os")
    linux = VariantOptionFactory(variant=variant, name="Linux")
    VariantPriceAmountFactory(variant_price=VariantPriceFactory(option=linux, name="Monthly"))
    VariantOptionFactory(variant=variant, name="Windows")
    package.variants.add(variant)
    return variant


class TestVariants:
    def test_unmatched_pairs_are_reported_on_the_package_page(
        self, staff_client, package, os_variant
    ):
        response = staff_client.get(package_url(package))
        tab = next(tab for tab in response.context["package_tabs"] if tab.id == "variants")
        assert tab.warnings == [
            "Variant “Operating system”, option “Windows” has no price named “Monthly”: "
            "customers cannot choose it with that pricing option."
        ]
        assert "customers cannot choose it with that pricing option" in response.content.decode()

    def test_unmatched_pairs_are_reported_on_the_variant_page(
        self, staff_client, package, os_variant
    ):
        response = staff_client.get(reverse("admin:catalog_variant_change", args=[os_variant.pk]))
        assert response.context["catalog_warnings"] == [
            f"Package “{package.name}”: option “Windows” has no price named “Monthly”."
        ]
        assert "has no price named" in response.content.decode()

    def test_saving_the_package_warns_about_unmatched_pairs(
        self, staff_client, package, os_variant
    ):
        response = submit_package(staff_client, package)
        assert_saved(response)
        page = staff_client.get(response.url)
        texts = [str(message) for message in page.context["messages"]]
        assert any("option “Windows” has no price named “Monthly”" in text for text in texts)

    def test_variants_are_linked_on_the_variants_tab(self, staff_client, package):
        region = VariantFactory(name="Region")
        assert_saved(submit_package(staff_client, package, {"variants": [region.pk]}))
        assert list(package.variants.all()) == [region]

    def test_variant_option_names_are_unique_per_variant(self, staff_client, os_variant):
        url = reverse("admin:catalog_variant_change", args=[os_variant.pk])
        response = submit(staff_client, url, {"options-2-name": "Linux", "options-2-value": "l2"},
                          form_id="variant_form")  # fmt: skip
        assert "Please correct the duplicate data for name" in str(page_errors(response))

    def test_variant_price_names_are_unique_per_option(self, staff_client, os_variant):
        linux = os_variant.options.get(name="Linux")
        url = reverse("admin:catalog_variantoption_change", args=[linux.pk])
        response = submit(staff_client, url, {"prices-1-name": "Monthly", "prices-1-price_USD": "1"},
                          form_id="variantoption_form")  # fmt: skip
        assert "Please correct the duplicate data for name" in str(page_errors(response))

    def test_variant_prices_have_amount_and_setup_fee_columns_per_currency(
        self, staff_client, os_variant
    ):
        windows = os_variant.options.get(name="Windows")
        url = reverse("admin:catalog_variantoption_change", args=[windows.pk])
        response = submit(
            staff_client,
            url,
            {"prices-0-name": "Monthly", "prices-0-price_USD": "15", "prices-0-setup_fee_USD": "5",
             "prices-0-price_EUR": "14"},
            form_id="variantoption_form",
        )  # fmt: skip
        assert_saved(response)
        amounts = VariantPriceAmount.objects.filter(variant_price__option=windows)
        assert sorted((a.currency, a.price.amount, a.setup_fee.amount) for a in amounts) == [
            ("EUR", Decimal("14.00"), Decimal("0.00")),
            ("USD", Decimal("15.00"), Decimal("5.00")),
        ]

    def test_a_variant_setup_fee_cannot_be_negative(self, staff_client, os_variant):
        linux = os_variant.options.get(name="Linux")
        url = reverse("admin:catalog_variantoption_change", args=[linux.pk])
        response = submit(staff_client, url, {"prices-0-setup_fee_USD": "-2"},
                          form_id="variantoption_form")  # fmt: skip
        assert page_errors(response)["prices-0-setup_fee_USD"] == [
            "The setup fee cannot be negative."
        ]


# --- the Features & quotas tab -----------------------------------------------------


class TestFeaturesAndQuotas:
    def test_feature_and_quota_values_are_edited_on_the_package(self, staff_client, package):
        recording = FeatureFactory(name="Recording")
        participants = PackageQuotaFactory(package=package, limit=100).quota
        response = submit_package(
            staff_client,
            package,
            {
                "features-TOTAL_FORMS": "1",
                "features-0-feature": recording.pk,
                "features-0-value": "Yes",
                "quotas-0-limit": "250",
            },
        )
        assert_saved(response)
        assert PackageFeature.objects.get(package=package, feature=recording).value == "yes"
        assert PackageQuota.objects.get(package=package, quota=participants).limit == 250

    def test_a_feature_value_is_checked_against_its_type(self, staff_client, package):
        PackageFeatureFactory(package=package)
        errors = page_errors(submit_package(staff_client, package, {"features-0-value": "maybe"}))
        assert errors["features-0-value"] == ["Enter yes or no for this feature."]


# --- the Provisioning tab ---------------------------------------------------------


class TestProvisioning:
    def test_the_chosen_instance_plugin_fields_are_shown_and_the_others_hidden(
        self, staff_client, package
    ):
        webhook = WebhookInstanceFactory()
        manual = ManualInstanceFactory()
        package.provider_instance = webhook
        package.provisioning_options = {"plan_code": "vps-m", "region": "", "send_settings": True}
        package.save()

        html = staff_client.get(package_url(package)).content.decode()

        assert '<div class="plugin-options" data-plugin-options="webhook">' in html
        assert '<div class="plugin-options" data-plugin-options="manual" hidden>' in html
        assert 'name="options-webhook-plan_code" value="vps-m"' in html
        assert 'name="options-manual-target_hours"' in html
        assert f'"{webhook.pk}": "webhook"' in html and f'"{manual.pk}": "manual"' in html

    def test_options_are_validated_by_the_plugin_form_with_errors_next_to_the_fields(
        self, staff_client, package
    ):
        webhook = WebhookInstanceFactory()
        response = submit_package(staff_client, package, {"provider_instance": webhook.pk})

        errors = page_errors(response)
        assert errors["options-webhook-plan_code"] == ["This field is required."]
        # Without JavaScript, the page now shows the chosen plugin's fields.
        html = response.content.decode()
        assert '<div class="plugin-options" data-plugin-options="webhook">' in html
        row = html.split("field-options-webhook-plan_code", 1)[1].split("</div>", 3)
        assert "This field is required." in "".join(row)

        response = submit_package(
            staff_client, package,
            {"provider_instance": webhook.pk, "options-webhook-plan_code": "not a slug!"},
        )  # fmt: skip
        assert "options-webhook-plan_code" in page_errors(response)

    def test_valid_options_are_saved_on_the_package(self, staff_client, package):
        webhook = WebhookInstanceFactory()
        response = submit_package(
            staff_client,
            package,
            {
                "provider_instance": webhook.pk,
                "options-webhook-plan_code": "vps-m",
                "options-webhook-region": "eu-1",
                "options-webhook-send_settings": None,
            },
        )
        assert_saved(response)
        package.refresh_from_db()
        assert package.provider_instance_id == webhook.pk
        assert package.provisioning_options == {
            "plan_code": "vps-m",
            "region": "eu-1",
            "send_settings": False,
        }

    def test_switching_plugin_uses_the_new_plugin_fields_and_its_defaults(
        self, staff_client, package
    ):
        package.provider_instance = WebhookInstanceFactory()
        package.provisioning_options = {"plan_code": "vps-m"}
        package.save()
        manual = ManualInstanceFactory()

        assert_saved(submit_package(staff_client, package, {"provider_instance": manual.pk}))
        package.refresh_from_db()
        assert package.provisioning_options == {"checklist": "", "target_hours": 24}

    def test_an_inactive_instance_is_refused(self, staff_client, package):
        inactive = ManualInstanceFactory(name="Old panel", is_active=False)
        errors = page_errors(
            submit_package(staff_client, package, {"provider_instance": inactive.pk})
        )
        assert errors["provider_instance"] == [
            "The provider instance “Old panel” is not active; activate it or choose another."
        ]

    def test_an_instance_whose_plugin_cannot_provision_the_service_type_is_refused(
        self, staff_client, package, monkeypatch
    ):
        from provisioning.plugins.manual import ManualPlugin

        monkeypatch.setattr(ManualPlugin, "service_types", frozenset({"phone"}))
        errors = page_errors(
            submit_package(staff_client, package, {"provider_instance": ManualInstanceFactory().pk})
        )
        assert errors["provider_instance"] == [
            "The Manual plugin cannot provision “Web meeting” services."
        ]

    def test_the_form_reports_plugin_errors_when_built_directly(self, rf, staff_user, package):
        request = rf.get("/")
        request.user = staff_user
        form_class = admin.site.get_model_admin(Package).get_form(request, package)
        data = {
            **form_class(instance=package).initial,
            "catalog": package.catalog_id,
            "provider_instance": ManualInstanceFactory().pk,
            "options-manual-target_hours": "5000",
        }
        form = form_class(data, instance=package)
        assert not form.is_valid()
        assert form.errors["options-manual-target_hours"] == [
            "Ensure this value is less than or equal to 720."
        ]


# --- the Scaling tab ----------------------------------------------------------------


class TestScaling:
    def test_scaling_targets_are_picked_in_a_searchable_multi_select(self, staff_client, package):
        html = staff_client.get(package_url(package)).content.decode()
        assert 'name="scaling_targets"' in html and "selectfilter" in html

    def test_scaling_targets_are_saved(self, staff_client, package):
        bigger = priced_package(catalog=package.catalog, price_name="Monthly", tier=2)
        assert_saved(submit_package(staff_client, package, {"scaling_targets": [bigger.pk]}))
        assert list(package.scalable_to.all()) == [bigger]
        assert PackageScaling.objects.filter(from_package=package, to_package=bigger).exists()

    def test_a_package_cannot_scale_to_itself(self, staff_client, package):
        errors = page_errors(
            submit_package(staff_client, package, {"scaling_targets": [package.pk]})
        )
        assert errors["scaling_targets"] == [
            f"A package cannot scale to itself: unselect “{package.name}”."
        ]

    def test_a_target_selling_no_option_of_the_same_name_is_reported(self, staff_client, package):
        annual_only = priced_package(catalog=package.catalog, price_name="Annual")
        PackageScaling.objects.create(from_package=package, to_package=annual_only)
        response = staff_client.get(package_url(package))
        tab = next(tab for tab in response.context["package_tabs"] if tab.id == "scaling")
        assert tab.warnings == [
            f"“{annual_only.name}” sells no pricing option named “Monthly”: "
            "services on those options cannot scale to it."
        ]


# --- catalogs -----------------------------------------------------------------------


class TestCatalogs:
    def test_the_catalog_page_orders_its_packages(self, staff_client):
        catalog = CatalogFactory()
        first, second = PackageFactory(catalog=catalog), PackageFactory(catalog=catalog)
        url = reverse("admin:catalog_catalog_change", args=[catalog.pk])
        html = staff_client.get(url).content.decode()
        assert first.name in html and second.name in html

        response = submit(staff_client, url, {"packages-0-sort_order": 5, "packages-1-sort_order": 1},
                          form_id="catalog_form")  # fmt: skip

        assert_saved(response)
        assert list(catalog.packages.order_by("sort_order")) == [second, first]

    def test_reordering_shows_a_package_rule_error_instead_of_failing(self, staff_client):
        catalog = CatalogFactory()
        package = PackageFactory(catalog=catalog, provider_instance=ManualInstanceFactory())
        package.provider_instance.is_active = False
        package.provider_instance.save()
        url = reverse("admin:catalog_catalog_change", args=[catalog.pk])

        response = submit(staff_client, url, {"packages-0-sort_order": 3}, form_id="catalog_form")

        assert response.status_code == 200
        assert "Provider instance: The provider instance" in response.content.decode()

    def test_the_list_says_how_many_of_a_catalogs_packages_are_on_sale(self, staff_client):
        load_demo()  # VPS hosting: six packages, one hidden and one retired
        vps = Catalog.objects.get(slug="vps")
        PackageFactory(catalog=vps, status=Package.Status.DRAFT)

        response = staff_client.get(reverse("admin:catalog_catalog_changelist"))

        html = response.content.decode()
        assert "7 packages (4 on sale)" in html
        assert "6 packages (6 on sale)" in html  # video services
        assert vps.packages.count() == 7
        assert vps.packages.listed().count() == 4

    def test_the_catalog_list_reads_its_counts_in_a_fixed_number_of_queries(self, staff_client):
        url = reverse("admin:catalog_catalog_changelist")
        PackageFactory(catalog=CatalogFactory(), hidden=True)
        staff_client.get(url)  # the session and content types are cached from here on
        with CaptureQueriesContext(connection) as one_catalog:
            staff_client.get(url)
        for _ in range(4):
            catalog = CatalogFactory()
            PackageFactory(catalog=catalog)
            PackageFactory(catalog=catalog, retired=True)

        with CaptureQueriesContext(connection) as five_catalogs:
            response = staff_client.get(url)

        assert "2 packages (1 on sale)" in response.content.decode()
        assert len(five_catalogs) == len(one_catalog)

    def test_the_slug_is_prepopulated_from_the_name(self, staff_client):
        response = staff_client.get(reverse("admin:catalog_catalog_add"))
        assert response.context["adminform"].prepopulated_fields[0]["field"].name == "slug"

    def test_a_catalog_with_packages_cannot_be_deleted(self, staff_client, package):
        catalog = package.catalog
        url = reverse("admin:catalog_catalog_delete", args=[catalog.pk])

        response = staff_client.post(url, {"post": "yes"})

        assert response.status_code == 200
        assert "would require deleting the following protected related objects" in (
            response.content.decode()
        )
        assert Catalog.objects.filter(pk=catalog.pk).exists()

    def test_bulk_deleting_catalogs_with_packages_is_refused_too(self, staff_client, package):
        response = staff_client.post(
            reverse("admin:catalog_catalog_changelist"),
            {"action": "delete_selected", "_selected_action": [package.catalog_id], "post": "yes"},
        )
        assert response.status_code == 200
        assert "protected" in response.content.decode()
        assert Catalog.objects.filter(pk=package.catalog_id).exists()


# --- the package list ------------------------------------------------------------------


def listed(client, query: str = "") -> list[str]:
    response = client.get(reverse("admin:catalog_package_changelist") + query)
    assert response.status_code == 200
    return sorted(package.name for package in response.context["cl"].result_list)


class TestPackageList:
    def test_it_lists_price_stock_and_visibility(self, staff_client, package):
        html = staff_client.get(reverse("admin:catalog_package_changelist")).content.decode()
        assert "/ month" in html and "unlimited" in html

    def test_the_stock_filter_tells_unlimited_in_stock_and_sold_out(self, staff_client):
        PackageFactory(name="Unlimited")
        PackageFactory(name="Some left", stock_qty=3)
        PackageFactory(name="Oversold", stock_qty=0, oversell_enabled=True)
        PackageFactory(name="Gone", stock_qty=0)
        assert listed(staff_client, "?stock=unlimited") == ["Unlimited"]
        assert listed(staff_client, "?stock=in_stock") == ["Oversold", "Some left"]
        assert listed(staff_client, "?stock=sold_out") == ["Gone"]

    def test_it_filters_by_catalog_service_type_status_hidden_and_retired(self, staff_client):
        video = CatalogFactory()
        PackageFactory(name="Meet", catalog=video, service_type="meet")
        PackageFactory(name="Live", service_type="live", status="draft")
        PackageFactory(name="Private", hidden=True)
        PackageFactory(name="Old", retired=True)
        assert listed(staff_client, f"?catalog__id__exact={video.pk}") == ["Meet"]
        assert listed(staff_client, "?service_type__exact=live") == ["Live"]
        assert listed(staff_client, "?status__exact=draft") == ["Live"]
        assert listed(staff_client, "?hidden__exact=1") == ["Private"]
        assert listed(staff_client, "?retired__exact=1") == ["Old"]

    def test_search_finds_name_slug_short_description_uuid_and_ulid(self, staff_client):
        package = PackageFactory(name="Webinar Pro", slug="webinar-pro-x",
                                 short_description="For large audiences")  # fmt: skip
        PackageFactory(name="Other")
        for term in ("Pro", "webinar-pro-x", "large audiences", str(package.uuid), package.ulid):
            assert listed(staff_client, f"?q={term}") == ["Webinar Pro"], term

    def test_the_list_reorders_packages(self, staff_client, package):
        response = staff_client.post(
            reverse("admin:catalog_package_changelist"),
            {
                "form-TOTAL_FORMS": "1",
                "form-INITIAL_FORMS": "1",
                "form-0-id": package.pk,
                "form-0-sort_order": "7",
                "_save": "Save",
            },
        )
        assert response.status_code == 302
        package.refresh_from_db()
        assert package.sort_order == 7

    def test_clone_copies_everything_and_links_to_the_copy(self, staff_client, package, os_variant):
        package.provider_instance = ManualInstanceFactory()
        package.provisioning_options = {"checklist": "", "target_hours": 4}
        package.save()
        PackageFeatureFactory(package=package)
        PackageQuotaFactory(package=package)
        target = PackageFactory(catalog=package.catalog)
        PackageScaling.objects.create(from_package=package, to_package=target)

        response = staff_client.post(
            reverse("admin:catalog_package_changelist"),
            {"action": "clone_packages", "_selected_action": [package.pk]},
            follow=True,
        )

        copy = Package.objects.get(name=f"{package.name} (copy)")
        assert copy.status == Package.Status.DRAFT and copy.uuid != package.uuid
        amounts = PackagePriceAmount.objects.filter(package_price__package=copy)
        assert sorted(str(amount.price) for amount in amounts) == sorted(
            str(amount.price) for amount in monthly(package).amounts.all()
        )
        assert list(copy.variants.all()) == [os_variant]
        assert copy.features.count() == 1 and copy.quotas.count() == 1
        assert copy.provider_instance_id == package.provider_instance_id
        assert copy.provisioning_options == package.provisioning_options
        assert list(copy.scalable_to.all()) == [target]
        message = str(list(response.context["messages"])[0])
        assert f'href="{package_url(copy)}"' in message

    def test_view_on_site_links_to_the_storefront_page(self, staff_client, package):
        html = staff_client.get(package_url(package)).content.decode()
        assert "View on site" in html


# --- query count ---------------------------------------------------------------------


def package_with(size: int) -> Package:
    """A package with `size` pricing options and `size` variants, each priced."""
    package = PackageFactory(provider_instance=WebhookInstanceFactory(),
                             provisioning_options={"plan_code": "plan"})  # fmt: skip
    for number in range(size):
        option = PackagePriceFactory(package=package, name=f"Option {number}")
        PackagePriceAmountFactory(package_price=option, price=Money(9, "USD"))
        PackagePriceAmountFactory(package_price=option, price=Money(8, "EUR"))
        variant = VariantFactory()
        choice = VariantOptionFactory(variant=variant)
        VariantPriceAmountFactory(variant_price=VariantPriceFactory(option=choice, name="Option 0"))
        package.variants.add(variant)
    PackageFeatureFactory(package=package)
    PackageQuotaFactory(package=package)
    PackageScaling.objects.create(from_package=package, to_package=PackageFactory())
    return package


# Session and user; the package, its pricing rows and amounts, features and
# quotas; the choices of each select; the warnings' reads.
PACKAGE_PAGE_QUERIES = 26


@pytest.mark.parametrize("size", [1, 20])
def test_the_package_page_query_count_does_not_grow_with_options_or_variants(
    staff_client, django_assert_num_queries, size
):
    url = package_url(package_with(size))
    staff_client.get(url)  # fills Django's content-type cache, as any running site has
    with django_assert_num_queries(PACKAGE_PAGE_QUERIES):
        response = staff_client.get(url)
    assert response.status_code == 200
    assert response.content.decode().count('name="prices-') > size


def test_one_and_twenty_options_and_variants_cost_the_same_queries(staff_client):
    from django.db import connection

    counts = []
    for size in (1, 20):
        url = package_url(package_with(size))
        staff_client.get(url)
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(url).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


# Session and user; the package and its rows, read once to show the post back if
# it fails and once to save; the choices of each select; the warnings' reads.
PACKAGE_SAVE_QUERIES = 50


@pytest.mark.parametrize("size", [1, 20])
def test_saving_the_package_page_unchanged_costs_the_same_queries_for_any_number_of_options(
    staff_client, django_assert_num_queries, size
):
    url = package_url(package_with(size))
    data = page_data(staff_client.get(url), "package_form")
    with django_assert_num_queries(PACKAGE_SAVE_QUERIES):
        response = staff_client.post(url, data)
    assert_saved(response)


def test_a_pricing_row_of_another_package_cannot_be_posted_in_place_of_this_ones(
    staff_client, package
):
    other = monthly(priced_package())
    response = submit_package(
        staff_client, package, {"prices-0-id": other.pk, "prices-0-name": "Taken over"}
    )
    assert page_errors(response)["prices-0-id"] == [
        "Select a valid choice. That choice is not one of the available choices."
    ]
    other.refresh_from_db()
    assert other.name == "Monthly"
