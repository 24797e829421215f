"""Rules across rows: pricing of a package, scaling, variant matching, cloning."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from djmoney.money import Money

from catalog.models import Package, PackageScaling, PriceType
from catalog.selectors import (
    package_for_warnings,
    package_warnings,
    scaling_mismatches,
    unmatched_variant_pairs,
    variant_unmatched_pairs,
)
from catalog.services import (
    package_clone,
    package_pricing_errors,
    package_set_scaling_targets,
)
from tests.factories import (
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


class TestPackagePricing:
    def test_an_active_package_needs_an_enabled_pricing_option(self):
        package = priced_package()
        package.prices.update(enabled=False)
        [error] = package_pricing_errors(package=package)
        assert "at least one enabled pricing option" in error

    def test_a_draft_package_may_have_no_pricing_option_yet(self):
        assert package_pricing_errors(package=PackageFactory(status=Package.Status.DRAFT)) == []

    def test_every_paid_option_is_priced_in_the_default_currency(self):
        package = priced_package(amounts=(("EUR", "8.00"),))
        assert package_pricing_errors(package=package) == [
            "“Monthly” has no amount in USD, the store's default currency: "
            "every paid option must be priced in it."
        ]

    def test_a_free_option_with_amounts_is_reported(self):
        package = priced_package()
        free = PackagePriceFactory(
            package=package,
            name="Trial",
            type=PriceType.FREE,
            time_interval=None,
            billing_period="",
        )
        PackagePriceAmountFactory(package_price=free, price=Money("1.00", "USD"))
        assert package_pricing_errors(package=package) == [
            "“Trial” is free, so it has no amounts: clear them."
        ]

    def test_a_fully_priced_package_passes(self):
        assert package_pricing_errors(package=priced_package()) == []


class TestScaling:
    def test_it_sets_and_replaces_scaling_targets(self):
        package, first, second = priced_package(), priced_package(), priced_package()
        package_set_scaling_targets(package=package, targets=[first, second])
        package_set_scaling_targets(package=package, targets=[second])
        assert list(package.scalable_to.all()) == [second]

    def test_a_package_cannot_scale_to_itself(self):
        package = priced_package()
        with pytest.raises(ValidationError, match="cannot scale to itself"):
            package_set_scaling_targets(package=package, targets=[package])
        assert not PackageScaling.objects.exists()

    def test_a_target_selling_no_option_of_the_same_name_is_reported(self):
        package = priced_package()
        target = priced_package(price_name="Yearly")
        target.name = "VPS L"
        target.save()
        package_set_scaling_targets(package=package, targets=[target])
        warnings = scaling_mismatches(package=package_for_warnings(package.pk))
        assert warnings == [
            "“VPS L” sells no pricing option named “Monthly”: "
            "services on those options cannot scale to it."
        ]

    def test_a_target_with_matching_names_is_not_reported(self):
        package, target = priced_package(), priced_package()
        package_set_scaling_targets(package=package, targets=[target])
        assert scaling_mismatches(package=package_for_warnings(package.pk)) == []


class TestVariantMatching:
    def test_every_unmatched_option_and_pricing_option_pair_is_reported(self):
        package = priced_package()
        PackagePriceFactory(package=package, name="Annual", billing_period="year")
        debian = VariantOptionFactory(name="Debian")
        windows = VariantOptionFactory(variant=debian.variant, name="Windows")
        VariantPriceFactory(option=debian, name="Monthly")
        VariantPriceFactory(option=debian, name="Annual")
        VariantPriceFactory(option=windows, name="monthly")  # case differs: no match
        package.variants.add(debian.variant)

        warnings = unmatched_variant_pairs(package=package_for_warnings(package.pk))

        variant = debian.variant.name
        assert warnings == [
            f"Variant “{variant}”, option “Windows” has no price named “Monthly”: "
            "customers cannot choose it with that pricing option.",
            f"Variant “{variant}”, option “Windows” has no price named “Annual”: "
            "customers cannot choose it with that pricing option.",
        ]
        assert variant_unmatched_pairs(variant=debian.variant) == [
            f"Package “{package.name}”: option “Windows” has no price named “Monthly”.",
            f"Package “{package.name}”: option “Windows” has no price named “Annual”.",
            "Option “Windows” has a price named “monthly”, but no package using this variant "
            "has a pricing option of that name: it is never charged.",
        ]

    def test_a_variant_price_named_like_no_pricing_option_of_its_packages_is_reported(self):
        # Found by staff: a "Quarterly" variant price saved without a word, though no
        # package using the variant sells a "Quarterly" option, so it is never charged.
        package = priced_package()
        option = VariantOptionFactory(name="Debian")
        VariantPriceFactory(option=option, name="Monthly")
        VariantPriceFactory(option=option, name="Quarterly")
        package.variants.add(option.variant)

        assert variant_unmatched_pairs(variant=option.variant) == [
            "Option “Debian” has a price named “Quarterly”, but no package using this variant "
            "has a pricing option of that name: it is never charged."
        ]

    def test_a_fully_matched_package_has_no_warnings(self):
        package = priced_package()
        option = VariantOptionFactory()
        VariantPriceFactory(option=option, name="Monthly")
        package.variants.add(option.variant)
        assert package_warnings(package=package_for_warnings(package.pk)) == []


class TestClone:
    def test_it_copies_prices_variants_features_quotas_provisioning_and_scaling(self):
        instance = ManualInstanceFactory()
        package = priced_package(
            provider_instance=instance,
            provisioning_options={"checklist": "", "target_hours": 8},
            package_settings={"cpu": 2},
        )
        target = priced_package()
        package_set_scaling_targets(package=package, targets=[target])
        option = VariantOptionFactory()
        package.variants.add(option.variant)
        PackageFeatureFactory(package=package)
        PackageQuotaFactory(package=package, limit=50)

        clone = package_clone(package=package)

        assert clone.pk != package.pk and clone.status == Package.Status.DRAFT
        assert clone.name == f"{package.name} (copy)" and clone.slug == f"{package.slug}-copy"
        assert clone.uuid != package.uuid and clone.ulid != package.ulid
        assert [
            (p.name, sorted(str(a.price) for a in p.amounts.all())) for p in clone.prices.all()
        ] == [(p.name, sorted(str(a.price) for a in p.amounts.all())) for p in package.prices.all()]
        assert list(clone.variants.all()) == [option.variant]
        assert [f.value for f in clone.features.all()] == ["yes"]
        assert [q.limit for q in clone.quotas.all()] == [50]
        assert clone.provider_instance == instance
        assert clone.provisioning_options == {"checklist": "", "target_hours": 8}
        assert clone.package_settings == {"cpu": 2}
        assert list(clone.scalable_to.all()) == [target]
        # The original is untouched.
        assert package.prices.count() == 1 and list(package.scalable_to.all()) == [target]

    def test_cloning_twice_gives_distinct_slugs(self):
        package = priced_package()
        first, second = package_clone(package=package), package_clone(package=package)
        assert first.slug != second.slug
