"""Writes and rules that read more than one row of the catalog."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from .models import (
    Package,
    PackageFeature,
    PackagePrice,
    PackagePriceAmount,
    PackageQuota,
    PackageScaling,
    new_ulid,
)


def package_pricing_errors(
    *, package: Package, prices: Iterable[tuple[PackagePrice, list[str]]] | None = None
) -> list[str]:
    """Rules across a package's pricing options and their amounts.

    `prices` lets a form check what staff are about to save: pairs of a
    pricing option (unsaved or changed) and the currencies it will have an
    amount in. Left out, the stored options are checked.
    """
    if prices is None:
        prices = [
            (price, [amount.currency for amount in price.amounts.all()])
            for price in package.prices.prefetch_related("amounts")
        ]
    prices = list(prices)
    default = settings.BILLING_DEFAULT_CURRENCY
    errors = []
    if package.status == Package.Status.ACTIVE and not any(price.enabled for price, _ in prices):
        errors.append(
            "An active package needs at least one enabled pricing option: "
            "add or enable one, or set the package to draft."
        )
    for price, currencies in prices:
        if price.is_free and currencies:
            errors.append(f"“{price.name}” is free, so it has no amounts: clear them.")
        elif not price.is_free and default not in currencies:
            errors.append(
                f"“{price.name}” has no amount in {default}, the store's default currency: "
                "every paid option must be priced in it."
            )
    return errors


def package_set_scaling_targets(*, package: Package, targets: Iterable[Package]) -> None:
    targets = list(targets)
    if any(target.pk == package.pk for target in targets):
        raise ValidationError({"scalable_to": "A package cannot scale to itself."})
    with transaction.atomic():
        PackageScaling.objects.filter(from_package=package).exclude(to_package__in=targets).delete()
        existing = set(
            PackageScaling.objects.filter(from_package=package).values_list(
                "to_package_id", flat=True
            )
        )
        # One save per row (a package has a handful of targets): the audit trail
        # records saves and deletes, not bulk_create.
        for target in targets:
            if target.pk not in existing:
                PackageScaling.objects.create(from_package=package, to_package=target)


def _copy(instance, **changes):
    instance.pk = None
    instance._state.adding = True
    for name, value in changes.items():
        setattr(instance, name, value)
    return instance


def _unique_clone_name(package: Package) -> tuple[str, str]:
    taken = set(Package.objects.filter(catalog=package.catalog).values_list("slug", flat=True))
    number = 1
    while True:
        suffix = "copy" if number == 1 else f"copy-{number}"
        slug = f"{package.slug}-{suffix}"[:120]
        if slug not in taken:
            name = f"{package.name} (copy)" if number == 1 else f"{package.name} (copy {number})"
            return name, slug
        number += 1


@transaction.atomic
def package_clone(*, package: Package) -> Package:
    """A draft copy with the same prices, variants, features, quotas, provisioning and scaling."""
    source = Package.objects.prefetch_related(
        "prices__amounts", "features", "quotas", "variants"
    ).get(pk=package.pk)
    targets = list(
        PackageScaling.objects.filter(from_package=source).values_list("to_package_id", flat=True)
    )
    prices = list(source.prices.all())
    features = list(source.features.all())
    quotas = list(source.quotas.all())
    variants = list(source.variants.all())

    name, slug = _unique_clone_name(source)
    # A fresh instance: the source's prefetch caches must not follow the copy.
    clone = _copy(
        Package.objects.get(pk=source.pk),
        name=name,
        slug=slug,
        status=Package.Status.DRAFT,
        uuid=uuid.uuid4(),
        ulid=new_ulid(),
    )
    clone.save()
    for price in prices:
        amounts = list(price.amounts.all())
        new_price = _copy(price, package=clone)
        new_price.save()
        PackagePriceAmount.objects.bulk_create(
            _copy(amount, package_price=new_price) for amount in amounts
        )
    PackageFeature.objects.bulk_create(_copy(feature, package=clone) for feature in features)
    PackageQuota.objects.bulk_create(_copy(quota, package=clone) for quota in quotas)
    clone.variants.set(variants)
    PackageScaling.objects.bulk_create(
        PackageScaling(from_package=clone, to_package_id=target) for target in targets
    )
    return clone
