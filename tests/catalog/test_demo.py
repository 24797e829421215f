from __future__ import annotations

import pytest
from django.core.management import call_command

from catalog.models import (
    Catalog,
    Package,
    PackageFeature,
    PackagePrice,
    PackagePriceAmount,
    PackageQuota,
    VariantOption,
)
from catalog.selectors import package_for_warnings, unmatched_variant_pairs
from catalog.services import package_pricing_errors

pytestmark = pytest.mark.django_db


def test_the_demo_store_loads_once_and_every_row_passes_its_rules(capsys):
    call_command("load_demo")
    call_command("load_demo")
    assert "already loaded" in capsys.readouterr().out

    assert set(Catalog.objects.values_list("slug", flat=True)) == {"video", "vps"}
    for model in (Package, PackagePrice, PackagePriceAmount, PackageFeature, PackageQuota):
        for row in model.objects.all():
            row.full_clean()
    for package in Package.objects.all():
        assert package_pricing_errors(package=package) == [], package.name


def test_the_demo_covers_what_staff_want_to_try():
    call_command("load_demo")
    vps = Package.objects.filter(catalog__slug="vps")
    assert vps.filter(hidden=True).exists() and vps.filter(retired=True).exists()
    assert vps.sold_out().exists()
    assert Package.objects.filter(trial_period=14, trial_interval="day").exists()
    assert Package.objects.filter(
        overages_enabled=True, quotas__overage_price__isnull=False
    ).exists()
    assert set(PackagePriceAmount.objects.values_list("price_currency", flat=True).distinct()) == {
        "USD",
        "EUR",
    }
    assert Package.objects.get(slug="vps-m").scalable_to.count() == 3
    assert VariantOption.objects.filter(variant__code="os").count() == 3
    # Windows deliberately has no free-trial price: staff see the warning.
    warnings = unmatched_variant_pairs(package=package_for_warnings(vps.get(slug="vps-s").pk))
    assert any("Windows" in warning and "Free trial" in warning for warning in warnings)


def test_demo_staff_prints_a_working_login(capsys, django_user_model):
    call_command("demo_staff")
    out = capsys.readouterr().out
    assert "username 'admin'" in out and "password" in out
    user = django_user_model.objects.get(username="admin")
    assert user.is_staff and user.check_password("demo-admin-password")
