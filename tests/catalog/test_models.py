"""Rules within one row, checked through full_clean() and the database."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from djmoney.money import Money
from PIL import Image

from catalog.models import (
    Catalog,
    Package,
    PackagePrice,
    PackagePriceAmount,
    PackageScaling,
    PriceType,
    ServiceType,
    VariantOption,
    VariantPrice,
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
    VariantOptionFactory,
    VariantPriceFactory,
    priced_package,
)

pytestmark = pytest.mark.django_db


def errors_of(instance) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        instance.full_clean()
    return caught.value.message_dict


def png_file(width: int = 32, height: int = 32, name: str = "icon.png") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "navy").save(buffer, "PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="image/png")


class TestPackageIdentity:
    def test_it_generates_a_uuid_and_a_ulid_that_differ_per_package(self):
        first, second = PackageFactory(), PackageFactory()
        assert first.uuid and len(first.ulid) == 26
        assert first.uuid != second.uuid and first.ulid != second.ulid

    def test_it_never_changes_uuid_or_ulid_on_save(self):
        package = PackageFactory()
        uuid, ulid = package.uuid, package.ulid
        package.name = "Renamed"
        package.save()
        package.refresh_from_db()
        assert (package.uuid, package.ulid) == (uuid, ulid)

    def test_uuid_and_ulid_are_not_editable(self):
        assert not Package._meta.get_field("uuid").editable
        assert not Package._meta.get_field("ulid").editable


class TestSlug:
    def test_it_derives_the_slug_from_the_name_when_left_empty(self):
        package = PackageFactory.build(catalog=CatalogFactory(), name="Meet Premium Plus", slug="")
        package.full_clean()
        assert package.slug == "meet-premium-plus"

    def test_it_rejects_a_slug_used_by_another_package_of_the_catalog(self):
        existing = PackageFactory(slug="meet")
        duplicate = PackageFactory.build(catalog=existing.catalog, slug="meet")
        assert "Another package in this catalog already uses this slug." in str(
            errors_of(duplicate)
        )

    def test_it_allows_the_same_slug_in_another_catalog(self):
        PackageFactory(slug="meet")
        PackageFactory.build(catalog=CatalogFactory(), slug="meet").full_clean()

    def test_the_database_refuses_a_duplicate_slug_in_a_catalog(self):
        existing = PackageFactory(slug="meet")
        with pytest.raises(IntegrityError), transaction.atomic():
            PackageFactory(catalog=existing.catalog, slug="meet")


class TestDescription:
    def test_it_strips_scripts_event_handlers_and_javascript_urls(self):
        package = PackageFactory(
            description=(
                '<p onclick="steal()">Hi<script>alert(1)</script></p>'
                '<img src=x onerror="alert(2)"><a href="javascript:alert(3)">x</a>'
                '<a href="https://example.com">ok</a>'
            )
        )
        package.refresh_from_db()
        assert "script" not in package.description
        assert "onerror" not in package.description and "onclick" not in package.description
        assert "javascript:" not in package.description
        assert '<a href="https://example.com"' in package.description
        assert "<p>Hi</p>" in package.description

    def test_full_clean_sanitizes_before_anything_is_stored(self):
        package = PackageFactory.build(
            catalog=CatalogFactory(), description="<b>bold</b><script>x()</script>"
        )
        package.full_clean()
        assert package.description == "<b>bold</b>"


class TestIcon:
    def test_it_accepts_a_small_image(self):
        package = PackageFactory.build(catalog=CatalogFactory(), icon=png_file())
        package.full_clean()

    def test_it_rejects_a_file_that_is_not_an_image(self):
        package = PackageFactory.build(
            catalog=CatalogFactory(),
            icon=SimpleUploadedFile("icon.png", b"<svg onload=alert(1)>", "image/png"),
        )
        assert "icon" in errors_of(package)

    def test_it_rejects_an_image_larger_than_the_bound(self, settings):
        settings.ICON_MAX_PIXELS = 64
        package = PackageFactory.build(catalog=CatalogFactory(), icon=png_file(200, 100))
        assert "at most 64×64" in " ".join(errors_of(package)["icon"])

    def test_it_rejects_an_icon_heavier_than_the_bound(self, settings):
        settings.ICON_MAX_BYTES = 100
        package = PackageFactory.build(catalog=CatalogFactory(), icon=png_file(64, 64))
        assert "KB" in " ".join(errors_of(package)["icon"])


class TestStockAndLimits:
    def test_minus_one_stock_means_unlimited_and_untracked(self):
        package = PackageFactory(stock_qty=-1)
        assert not package.has_stock and not package.is_sold_out

    def test_zero_stock_without_oversell_is_sold_out(self):
        assert PackageFactory(stock_qty=0).is_sold_out
        assert not PackageFactory(stock_qty=0, oversell_enabled=True).is_sold_out

    @pytest.mark.parametrize("stock", [-2, -100])
    def test_it_rejects_stock_below_minus_one(self, stock):
        package = PackageFactory.build(catalog=CatalogFactory(), stock_qty=stock)
        assert errors_of(package)["stock_qty"] == ["Stock must be 0 or more, or -1 for unlimited."]

    def test_the_database_refuses_stock_below_minus_one(self):
        with pytest.raises(IntegrityError), transaction.atomic():
            PackageFactory(stock_qty=-5)

    @pytest.mark.parametrize("limit", [0, -2])
    def test_it_rejects_a_per_user_limit_that_is_neither_positive_nor_minus_one(self, limit):
        package = PackageFactory.build(catalog=CatalogFactory(), per_user_limit=limit)
        assert errors_of(package)["per_user_limit"] == [
            "The per-user limit must be 1 or more, or -1 for no limit."
        ]

    def test_the_database_refuses_a_zero_per_user_limit(self):
        with pytest.raises(IntegrityError), transaction.atomic():
            PackageFactory(per_user_limit=0)


class TestTrialGraceAndTier:
    def test_it_rejects_a_trial_longer_than_a_year(self):
        package = PackageFactory.build(
            catalog=CatalogFactory(), trial_period=13, trial_interval="month"
        )
        assert "too long" in errors_of(package)["trial_period"][0]

    def test_it_accepts_a_fourteen_day_trial_inside_the_first_period(self):
        PackageFactory.build(
            catalog=CatalogFactory(), trial_period=14, trial_interval="day", trial_mode="inside"
        ).full_clean()

    def test_it_requires_an_interval_for_a_grace_period(self):
        package = PackageFactory.build(catalog=CatalogFactory(), grace_period=3, grace_interval="")
        assert "grace_interval" in errors_of(package)

    def test_it_rejects_a_grace_period_longer_than_about_three_months(self):
        package = PackageFactory.build(
            catalog=CatalogFactory(), grace_period=2, grace_interval="year"
        )
        assert "too long" in errors_of(package)["grace_period"][0]

    def test_it_rejects_an_unknown_interval_or_trial_mode(self):
        package = PackageFactory.build(
            catalog=CatalogFactory(),
            trial_period=1,
            trial_interval="fortnight",
            trial_mode="around",
        )
        errors = errors_of(package)
        assert "trial_interval" in errors and "trial_mode" in errors

    def test_it_rejects_a_tier_above_the_bound(self):
        package = PackageFactory.build(catalog=CatalogFactory(), tier=5000)
        assert errors_of(package)["tier"] == ["Tier must be at most 1000."]


class TestFreeData:
    def test_it_rejects_unknown_notification_events(self):
        package = PackageFactory.build(
            catalog=CatalogFactory(), notification_preferences=["order_placed", "lunch_served"]
        )
        assert "lunch_served" in errors_of(package)["notification_preferences"][0]

    def test_it_accepts_known_notification_events(self):
        PackageFactory.build(
            catalog=CatalogFactory(), notification_preferences=["order_placed", "trial_ending"]
        ).full_clean()

    @pytest.mark.parametrize(
        "value",
        [["a", "b"], {"1bad": "x"}, {"ok": {"nested": 1}}, {"ok": None}, {"k": "x" * 2001}],
    )
    def test_it_rejects_settings_that_are_not_flat_key_values(self, value):
        package = PackageFactory.build(catalog=CatalogFactory(), package_settings=value)
        assert "package_settings" in errors_of(package)

    def test_it_accepts_metadata_with_text_number_and_boolean_values(self):
        PackageFactory.build(
            catalog=CatalogFactory(),
            package_metadata={"crm.id": "A-1", "weight": 3, "legacy": False},
        ).full_clean()


class TestSingleEnumValues:
    def test_service_types_are_the_documented_ones(self):
        assert set(ServiceType.values) == {
            "meet", "live", "video", "webinar", "webcast", "simulcast",
            "phone", "audio", "audcast", "extensible",
        }  # fmt: skip

    def test_it_rejects_an_unknown_service_type(self):
        package = PackageFactory.build(catalog=CatalogFactory(), service_type="fax")
        assert "service_type" in errors_of(package)


class TestSinglePriceView:
    def test_it_reads_seed_000_price_fields_from_the_primary_pricing_option(self):
        package = PackageFactory()
        later = PackagePriceFactory(
            package=package, name="Annual", billing_period="year", sort_order=5
        )
        PackagePriceAmountFactory(package_price=later, price=Money("90.00", "USD"))
        primary = PackagePriceFactory(
            package=package, name="Quarterly", time_interval=3, billing_period="month", sort_order=1
        )
        PackagePriceAmountFactory(
            package_price=primary, price=Money("25.00", "USD"), signup_fee=Money("5.00", "USD")
        )
        assert package.price == Money("25.00", "USD")
        assert package.signup_fee == Money("5.00", "USD")
        assert package.currency == "USD"
        assert (package.periodicity, package.periodicity_type) == (3, "month")

    def test_a_package_without_pricing_options_has_no_price(self):
        package = PackageFactory(status=Package.Status.DRAFT)
        assert package.price is None and package.periodicity is None


class TestPricingOption:
    def test_names_are_unique_per_package(self):
        existing = PackagePriceFactory(name="Monthly")
        duplicate = PackagePriceFactory.build(package=existing.package, name="Monthly")
        assert "already has a pricing option with this name" in str(errors_of(duplicate))

    def test_the_database_refuses_duplicate_names(self):
        existing = PackagePriceFactory(name="Monthly")
        with pytest.raises(IntegrityError), transaction.atomic():
            PackagePriceFactory(package=existing.package, name="Monthly")

    def test_recurring_needs_an_interval_of_at_least_one_and_a_period(self):
        price = PackagePriceFactory.build(
            package=PackageFactory(), time_interval=0, billing_period=""
        )
        errors = errors_of(price)
        assert "time_interval" in errors and "billing_period" in errors

    @pytest.mark.parametrize("kind", [PriceType.FREE, PriceType.ONETIME])
    def test_free_and_one_time_options_have_no_interval_or_period(self, kind):
        price = PackagePriceFactory.build(
            package=PackageFactory(), type=kind, time_interval=1, billing_period="month"
        )
        errors = errors_of(price)
        assert "time_interval" in errors and "billing_period" in errors

    def test_the_database_refuses_a_recurring_option_without_a_period(self):
        with pytest.raises(IntegrityError), transaction.atomic():
            PackagePrice.objects.create(
                package=PackageFactory(), name="Bad", type=PriceType.RECURRING
            )

    def test_a_free_option_has_no_amounts(self):
        free = PackagePriceFactory(type=PriceType.FREE, time_interval=None, billing_period="")
        amount = PackagePriceAmountFactory.build(package_price=free, price=Money("0", "USD"))
        assert errors_of(amount)["price"] == ["A free pricing option has no amounts."]

    def test_an_enabled_paid_amount_must_be_above_zero(self):
        amount = PackagePriceAmountFactory.build(
            package_price=PackagePriceFactory(), price=Money("0.00", "USD")
        )
        assert "above zero" in errors_of(amount)["price"][0]

    def test_a_disabled_option_may_keep_a_zero_amount_while_staff_prepare_it(self):
        PackagePriceAmountFactory.build(
            package_price=PackagePriceFactory(enabled=False), price=Money("0.00", "USD")
        ).full_clean()

    @pytest.mark.parametrize("field", ["setup_fee", "signup_fee"])
    def test_fees_are_never_negative(self, field):
        amount = PackagePriceAmountFactory.build(
            package_price=PackagePriceFactory(), **{field: Money("-1.00", "USD")}
        )
        assert "cannot be negative" in errors_of(amount)[field][0]

    def test_the_database_refuses_a_negative_setup_fee(self):
        with pytest.raises(IntegrityError), transaction.atomic():
            PackagePriceAmountFactory(setup_fee=Money("-1.00", "USD"))

    def test_the_currency_of_an_amount_cannot_be_changed_once_created(self):
        amount = PackagePriceAmountFactory(price=Money("9.00", "USD"))
        amount = PackagePriceAmount.objects.get(pk=amount.pk)
        amount.price = Money("9.00", "EUR")
        assert "cannot be changed here" in errors_of(amount)["price"][0]

    def test_an_amount_must_be_in_a_store_currency(self):
        amount = PackagePriceAmountFactory.build(
            package_price=PackagePriceFactory(),
            price=Money("9.00", "JPY"),
            setup_fee=Money("0", "JPY"),
            signup_fee=Money("0", "JPY"),
        )
        assert "price" in errors_of(amount)

    def test_one_amount_per_currency_per_option(self):
        existing = PackagePriceAmountFactory(price=Money("9.00", "USD"))
        with pytest.raises(IntegrityError), transaction.atomic():
            PackagePriceAmountFactory(
                package_price=existing.package_price, price=Money("10.00", "USD")
            )

    def test_money_is_exact(self):
        amount = PackagePriceAmountFactory(price=Money("19.99", "USD"))
        amount.refresh_from_db()
        assert amount.price.amount == Decimal("19.99") and str(amount.price.currency) == "USD"


class TestVariants:
    def test_option_names_are_unique_per_variant(self):
        option = VariantOptionFactory(name="Debian 12")
        duplicate = VariantOption(variant=option.variant, name="Debian 12", value="debian")
        assert "already has an option with this name" in str(errors_of(duplicate))

    def test_variant_price_names_are_unique_per_option(self):
        price = VariantPriceFactory(name="Monthly")
        duplicate = VariantPrice(option=price.option, name="Monthly")
        assert "already has a price with this name" in str(errors_of(duplicate))


class TestFeaturesAndQuotas:
    def test_a_yes_no_feature_accepts_yes_and_no_only(self):
        value = PackageFeatureFactory.build(
            package=PackageFactory(), feature=FeatureFactory(), value="maybe"
        )
        assert errors_of(value)["value"] == ["Enter yes or no for this feature."]

    def test_a_number_feature_needs_a_number(self):
        value = PackageFeatureFactory.build(
            package=PackageFactory(), feature=FeatureFactory(value_type="number"), value="lots"
        )
        assert errors_of(value)["value"] == ["Enter a number for this feature."]

    def test_with_overages_a_limited_quota_needs_an_overage_price(self):
        value = PackageQuotaFactory.build(
            package=PackageFactory(overages_enabled=True),
            quota=PackageQuotaFactory().quota,
            limit=10,
        )
        assert "overage_price" in errors_of(value)

    def test_an_empty_limit_means_unlimited(self):
        value = PackageQuotaFactory(limit=None)
        assert value.is_unlimited and value.limit_label == "unlimited"

    def test_an_overage_price_must_be_above_zero(self):
        value = PackageQuotaFactory.build(
            package=PackageFactory(overages_enabled=True),
            quota=PackageQuotaFactory().quota,
            overage_price=Money("0", "USD"),
        )
        assert "overage_price" in errors_of(value)


class TestProvisioning:
    def test_a_package_may_not_use_an_inactive_instance(self):
        package = PackageFactory.build(
            catalog=CatalogFactory(), provider_instance=ManualInstanceFactory(is_active=False)
        )
        assert "not active" in errors_of(package)["provider_instance"][0]

    def test_a_package_may_not_use_a_plugin_that_does_not_support_its_service_type(
        self, monkeypatch
    ):
        from provisioning.plugins.manual import ManualPlugin

        monkeypatch.setattr(ManualPlugin, "service_types", frozenset({"phone"}))
        package = PackageFactory.build(
            catalog=CatalogFactory(), service_type="meet", provider_instance=ManualInstanceFactory()
        )
        assert "cannot provision" in errors_of(package)["provider_instance"][0]

    def test_provisioning_options_must_pass_the_plugin_form(self):
        package = PackageFactory.build(
            catalog=CatalogFactory(),
            provider_instance=ManualInstanceFactory(),
            provisioning_options={"target_hours": 5000},
        )
        assert "Target hours to deliver" in errors_of(package)["provisioning_options"][0]

    def test_valid_provisioning_options_are_stored_cleaned(self):
        package = PackageFactory.build(
            catalog=CatalogFactory(),
            provider_instance=ManualInstanceFactory(),
            provisioning_options={"target_hours": "12"},
        )
        package.full_clean()
        assert package.provisioning_options == {"checklist": "", "target_hours": 12}

    def test_an_instance_in_use_cannot_be_deleted(self):
        instance = ManualInstanceFactory()
        PackageFactory(provider_instance=instance)
        with pytest.raises(ProtectedError):
            instance.delete()


class TestDeletionAndScaling:
    def test_a_catalog_with_packages_cannot_be_deleted(self):
        package = PackageFactory()
        with pytest.raises(ProtectedError):
            package.catalog.delete()

    def test_an_empty_catalog_can_be_deleted(self):
        catalog = CatalogFactory()
        catalog.delete()
        assert not Catalog.objects.filter(pk=catalog.pk).exists()

    def test_the_database_refuses_a_package_scaling_to_itself(self):
        package = priced_package()
        with pytest.raises(IntegrityError), transaction.atomic():
            PackageScaling.objects.create(from_package=package, to_package=package)

    def test_full_clean_reports_a_package_scaling_to_itself(self):
        package = priced_package()
        assert "A package cannot scale to itself." in str(
            errors_of(PackageScaling(from_package=package, to_package=package))
        )
