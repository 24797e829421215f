"""Reads of the catalog: what a quote needs, and the warnings staff see."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Prefetch

from .models import Package, PackagePrice, PackageQuerySet, Variant, VariantOption


def packages_for_order() -> PackageQuerySet:
    """Packages with every price, variant and amount a quote reads, in a fixed number of queries."""
    return Package.objects.select_related("catalog").prefetch_related(
        Prefetch("prices", queryset=PackagePrice.objects.prefetch_related("amounts")),
        Prefetch(
            "variants",
            queryset=Variant.objects.prefetch_related(
                Prefetch(
                    "options",
                    queryset=VariantOption.objects.prefetch_related("prices__amounts"),
                )
            ),
        ),
    )


def _unmatched_pairs(*, variant: Variant, package: Package) -> Iterator[tuple[VariantOption, str]]:
    """Each (option of `variant`, enabled pricing option name of `package`) with no variant price.

    Customers cannot buy such an option with that pricing option, so staff
    are told about every pair instead of customers finding out at checkout.
    """
    price_names = [p.name for p in package.enabled_prices()]
    for option in variant.options.all():
        priced = {price.name for price in option.prices.all()}
        for name in price_names:
            if name not in priced:
                yield option, name


def unmatched_variant_pairs(*, package: Package) -> list[str]:
    """The package page's view of the pairs: every variant it uses."""
    return [
        f"Variant “{variant.name}”, option “{option.name}” has no price named "
        f"“{name}”: customers cannot choose it with that pricing option."
        for variant in package.variants.all()
        for option, name in _unmatched_pairs(variant=variant, package=package)
    ]


def package_for_warnings(pk: int) -> Package:
    return Package.objects.prefetch_related(
        "prices",
        Prefetch(
            "variants",
            queryset=Variant.objects.prefetch_related(
                Prefetch("options", queryset=VariantOption.objects.prefetch_related("prices"))
            ),
        ),
        Prefetch(
            "scalable_to",
            queryset=Package.objects.prefetch_related(
                Prefetch("prices", queryset=PackagePrice.objects.filter(enabled=True))
            ),
        ),
    ).get(pk=pk)


def scaling_mismatches(*, package: Package) -> list[str]:
    """Scaling targets that sell no enabled pricing option of a name this package sells."""
    own = {p.name for p in package.enabled_prices()}
    warnings = []
    for target in package.scalable_to.all():
        theirs = {p.name for p in target.enabled_prices()}
        missing = sorted(own - theirs)
        if missing:
            warnings.append(
                f"“{target.name}” sells no pricing option named "
                + ", ".join(f"“{name}”" for name in missing)
                + ": services on those options cannot scale to it."
            )
    return warnings


def package_warnings(*, package: Package) -> list[str]:
    return unmatched_variant_pairs(package=package) + scaling_mismatches(package=package)


def variant_unmatched_pairs(*, variant: Variant) -> list[str]:
    """The variant page's view of the pairs: every package using it.

    Also each variant price no package's pricing option is named like, since
    only a same-name pricing option ever charges it (a typo, or "Quarterly"
    sold nowhere).
    """
    variant = Variant.objects.prefetch_related(
        Prefetch("options", queryset=VariantOption.objects.prefetch_related("prices")),
        Prefetch("packages", queryset=Package.objects.prefetch_related("prices")),
    ).get(pk=variant.pk)
    # The reverse of Package.variants, which the mypy plugin does not see.
    packages = list(variant.packages.all())  # type: ignore[attr-defined]
    sold_names = {price.name for package in packages for price in package.prices.all()}
    return [
        f"Package “{package.name}”: option “{option.name}” has no price named “{name}”."
        for package in packages
        for option, name in _unmatched_pairs(variant=variant, package=package)
    ] + [
        f"Option “{option.name}” has a price named “{price.name}”, but no package using "
        f"this variant has a pricing option of that name: it is never charged."
        for option in variant.options.all()
        for price in option.prices.all()
        if price.name not in sold_names
    ]
