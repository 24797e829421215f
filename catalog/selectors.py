"""Reads of the catalog: what a quote needs, and the warnings staff see."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import Model, Prefetch, QuerySet

from .models import (
    Package,
    PackagePrice,
    PackagePriceAmount,
    PackageQuerySet,
    Variant,
    VariantOption,
    VariantPrice,
    VariantPriceAmount,
)


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


def package_for_order(packages: QuerySet[Package]) -> Package | None:
    """The one package of `packages` with what a quote and an order read, in four queries.

    The same objects `packages_for_order()` gives, read with fewer round trips
    (it takes seven, and one more for the quotas): the package and its catalog; its pricing options LEFT
    JOINed to their amounts; its variants LEFT JOINed down to their options'
    prices' amounts; its quotas. The checkout reads one package per request, so the rows a
    join repeats cost less than the queries it saves.
    """
    package = packages.select_related("catalog").first()
    if package is None:
        return None
    prices = _tree(
        PackagePrice.objects.filter(package=package),
        [("", PackagePrice), ("amounts__", PackagePriceAmount)],
        ["amounts"],
    )
    relation_cache_fill(package, "prices", prices)
    variants = _tree(
        Variant.objects.filter(packages=package),
        [
            ("", Variant),
            ("options__", VariantOption),
            ("options__prices__", VariantPrice),
            ("options__prices__amounts__", VariantPriceAmount),
        ],
        ["options", "prices", "amounts"],
    )
    relation_cache_fill(package, "variants", variants)
    # What each service snapshots (subscriptions.quotas.quota_snapshot).
    relation_cache_fill(package, "quotas", package.quotas.select_related("quota"))
    return package


def _tree(
    queryset: QuerySet[Any], levels: list[tuple[str, type[Model]]], relations: list[str]
) -> list[Any]:
    """Instances of the first level, each with its children's prefetch caches filled.

    `levels` are (values() prefix, model) from the top down, each the children of
    the one above through `relations[i]`; one query LEFT JOINs them all, rows
    sorted by each level's own ordering, so every list comes out as
    `.all()` would give it.
    """
    names = [[field.attname for field in model._meta.concrete_fields] for _, model in levels]
    lookups = [
        prefix + field.name for (prefix, model) in levels for field in model._meta.concrete_fields
    ]
    ordering = [
        prefix + key.lstrip("-") if not key.startswith("-") else "-" + prefix + key[1:]
        for prefix, model in levels
        for key in [*(str(key) for key in model._meta.ordering or ()), "pk"]
    ]
    rows = queryset.order_by(*ordering).values_list(*lookups)
    db = queryset.db
    seen: list[dict[Any, Model]] = [{} for _ in levels]
    children: dict[tuple[int, Any], list[Model]] = {}
    top: list[Any] = []
    for row in rows:
        start, parent = 0, None
        for depth, model in enumerate(model for _, model in levels):
            values = row[start : start + len(names[depth])]
            start += len(names[depth])
            pk = values[names[depth].index(model._meta.pk.attname)]
            if pk is None:  # no child at this level (a LEFT JOIN's empty side)
                break
            instance = seen[depth].get(pk)
            if instance is None:
                instance = seen[depth][pk] = model.from_db(db, names[depth], values)
                if parent is None:
                    top.append(instance)
                else:
                    children[(depth - 1, parent.pk)].append(instance)
                if depth + 1 < len(levels):
                    children[(depth, pk)] = []
            parent = instance
    for depth, relation in enumerate(relations):
        for pk, instance in seen[depth].items():
            relation_cache_fill(instance, relation, children[(depth, pk)])
    return top


def relation_cache_fill(instance: Model, relation: str, objects: Iterable[Model]) -> None:
    """Fill `instance.<relation>.all()` as prefetch_related() would, without its query."""
    queryset = getattr(instance, relation).get_queryset()
    # What Django's prefetch_one_level stores: a queryset already evaluated.
    queryset._result_cache = list(objects)
    queryset._prefetch_done = True
    instance.__dict__.setdefault("_prefetched_objects_cache", {})[relation] = queryset


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
