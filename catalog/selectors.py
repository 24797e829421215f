"""Reads of the catalog: what a quote needs, and the warnings staff see."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, Prefetch, QuerySet
from django.db.models.sql import UpdateQuery

from .models import (
    Catalog,
    Package,
    PackagePrice,
    PackagePriceAmount,
    PackageQuerySet,
    PackageQuota,
    Quota,
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


def package_for_order(*, catalog_slug: str, package_slug: str) -> Package | None:
    """The active package at these slugs with what a quote and an order read, in three queries.

    The same objects `packages_for_order()` gives, read with fewer round trips
    (it takes seven, and one more for the quotas): the package with its catalog,
    LEFT JOINed to its quotas (what each service snapshots: a row per quota);
    its pricing options LEFT JOINed to their amounts; its variants LEFT JOINed down
    to their options' prices' amounts. The checkout reads one package per request,
    so the rows a join repeats cost less than the queries it saves. Each query's
    SQL is built once per process (`PreparedRead`).
    """
    rows = _PACKAGE.read(catalog_slug, package_slug)
    if not rows:
        return None
    package, catalog, _, _ = _split(rows[0], _PACKAGE_LEVELS, _PACKAGE.db)
    Package.catalog.field.set_cached_value(package, catalog)
    quotas = []
    for row in rows:
        _, _, quota, of = _split(row, _PACKAGE_LEVELS, _PACKAGE.db)
        if quota is not None:  # None: the package has no quotas (the LEFT JOIN's empty side)
            PackageQuota.quota.field.set_cached_value(quota, of)
            quotas.append(quota)
    relation_cache_fill(package, "quotas", quotas)
    relation_cache_fill(package, "prices", _PRICES.tree(package.pk))
    relation_cache_fill(package, "variants", _VARIANTS.tree(package.pk))
    return package


Levels = list[tuple[str, type[Model]]]
# SQL, its parameters with stand-ins, where each argument goes, the columns' converters.
_Compiled = tuple[str, tuple[Any, ...], list[tuple[int, int]], list[Any]]


class PreparedRead:
    """A values_list() query whose SQL is built once per process, then run with new arguments.

    The checkout runs the same few queries on every request, naming 10 to 40
    columns each; building their SQL through the ORM (resolving lookups, joins
    and ordering, quoting every column) cost more CPU than PostgreSQL spent
    running them. `build` is called once per database, with stand-in arguments;
    each read puts its own arguments where the stand-ins landed in the compiled
    parameters, and gives the rows the conversions (from_db_value) the queryset would.
    Arguments must reach the database as they are (ints, strings): a lookup that
    transforms its value (iexact, contains) would not find its stand-in, and is refused.
    """

    def __init__(self, build: Callable[..., QuerySet[Any]], *stand_ins: int | str) -> None:
        self._build = build
        self._stand_ins = stand_ins
        self._compiled: dict[tuple[str, str], _Compiled] = {}
        self.db = DEFAULT_DB_ALIAS

    def read(self, *args: Any) -> list[tuple[Any, ...]]:
        connection = connections[self.db]
        key = (self.db, connection.vendor)
        compiled = self._compiled.get(key) or self._compiled.setdefault(key, self._compile())
        sql, stand_in_params, slots, converters = compiled
        params = list(stand_in_params)
        for position, argument in slots:
            params[position] = args[argument]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not converters:
            return rows
        converted = []
        for row in rows:
            values = list(row)
            for position, (functions, expression) in converters:
                value = values[position]
                for function in functions:
                    value = function(value, expression, connection)
                values[position] = value
            converted.append(tuple(values))
        return converted

    def _compile(self) -> _Compiled:
        compiler = self._build(*self._stand_ins).query.get_compiler(using=self.db)
        sql, params = compiler.as_sql()
        columns = [column for column, _, _ in compiler.select[: compiler.col_count]]
        return self._with_slots(sql, params, list(compiler.get_converters(columns).items()))

    def _with_slots(self, sql: str, params: Iterable[Any], converters: list[Any]) -> _Compiled:
        params = tuple(params)
        slots = [
            (position, self._stand_ins.index(param))
            for position, param in enumerate(params)
            if isinstance(param, int | str) and param in self._stand_ins
        ]
        if {argument for _, argument in slots} != set(range(len(self._stand_ins))):
            raise ImproperlyConfigured(f"A stand-in is missing from the parameters of {sql}")
        return sql, params, slots, converters


class PreparedUpdate(PreparedRead):
    """An UPDATE ... RETURNING built once per process, as a PreparedRead builds a read.

    It sets `values(*stand_ins)` (field name: value or expression) on the rows of
    `build(*stand_ins)` and returns `returning`'s columns of each row it changed,
    as the database gives them (no conversion: plain numbers and strings).
    """

    def __init__(
        self,
        build: Callable[..., QuerySet[Any]],
        values: Callable[..., dict[str, Any]],
        returning: list[str],
        *stand_ins: int | str,
    ) -> None:
        super().__init__(build, *stand_ins)
        self._values = values
        self._returning = returning

    def _compile(self) -> _Compiled:
        queryset = self._build(*self._stand_ins)
        query = cast(UpdateQuery, queryset.query.chain(UpdateQuery))
        query.annotations = {}  # as QuerySet.update() does: the WHERE holds what it reads
        query.add_update_values(self._values(*self._stand_ins))
        sql, params = query.get_compiler(using=self.db).as_sql()
        quote = connections[self.db].ops.quote_name
        meta = queryset.model._meta
        columns = ", ".join(quote(str(meta.get_field(name).column)) for name in self._returning)
        return self._with_slots(f"{sql} RETURNING {columns}", params, [])


class PreparedTree(PreparedRead):
    """A PreparedRead of one parent's children LEFT JOINed down to their own children.

    `levels` are (values() prefix, model) from the top down, each the children of
    the one above through `relations[i]`; rows are sorted by each level's own
    ordering, so every list comes out as `.all()` would give it.
    """

    def __init__(
        self, build: Callable[[int], QuerySet[Any]], levels: Levels, relations: list[str]
    ) -> None:
        super().__init__(lambda pk: _values(build(pk), levels, ordered=True), STAND_IN_PK)
        self.levels = levels
        self.relations = relations

    def tree(self, parent_pk: int) -> list[Any]:
        """Instances of the first level, each with its children's prefetch caches filled."""
        levels = self.levels
        names = [_attnames(model) for _, model in levels]
        pk_at = [
            names[depth].index(model._meta.pk.attname) for depth, (_, model) in enumerate(levels)
        ]
        seen: list[dict[Any, Model]] = [{} for _ in levels]
        children: dict[tuple[int, Any], list[Model]] = {}
        top: list[Any] = []
        for row in self.read(parent_pk):
            start, parent = 0, None
            for depth, (_, model) in enumerate(levels):
                values = row[start : start + len(names[depth])]
                start += len(names[depth])
                pk = values[pk_at[depth]]
                if pk is None:  # no child at this level (a LEFT JOIN's empty side)
                    break
                instance = seen[depth].get(pk)
                if instance is None:
                    instance = seen[depth][pk] = model.from_db(self.db, names[depth], values)
                    if parent is None:
                        top.append(instance)
                    else:
                        children[(depth - 1, parent.pk)].append(instance)
                    if depth + 1 < len(levels):
                        children[(depth, pk)] = []
                parent = instance
        for depth, relation in enumerate(self.relations):
            for pk, instance in seen[depth].items():
                relation_cache_fill(instance, relation, children[(depth, pk)])
        return top


def _attnames(model: type[Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def _values(queryset: QuerySet[Any], levels: Levels, *, ordered: bool = False) -> QuerySet[Any]:
    """`queryset` as values_list() of every concrete field of each level, in level order."""
    lookups = [
        prefix + field.name for prefix, model in levels for field in model._meta.concrete_fields
    ]
    if ordered:
        queryset = queryset.order_by(
            *(
                "-" + prefix + key[1:] if key.startswith("-") else prefix + key
                for prefix, model in levels
                for key in [*(str(key) for key in model._meta.ordering or ()), "pk"]
            )
        )
    return queryset.values_list(*lookups)


def _split(row: tuple[Any, ...], levels: Levels, db: str) -> list[Any]:
    """One instance per level of a row that joins each to one row of the next (None: no row)."""
    instances, start = [], 0
    for _, model in levels:
        names = _attnames(model)
        values = row[start : start + len(names)]
        start += len(names)
        pk = values[names.index(model._meta.pk.attname)]
        instances.append(None if pk is None else model.from_db(db, names, values))
    return instances


# Stand-ins no row has: see PreparedRead. Within a 32-bit integer's range, which
# Django checks a lookup's value against (outside it, the lookup matches nothing).
STAND_IN_PK = -1_987_654_321
_PACKAGE_LEVELS: Levels = [
    ("", Package),
    ("catalog__", Catalog),
    ("quotas__", PackageQuota),
    ("quotas__quota__", Quota),
]
_PACKAGE = PreparedRead(
    # The slugs name one package at most (unique per catalog; catalog slugs are unique).
    lambda catalog_slug, slug: _values(
        Package.objects.active().filter(catalog__slug=catalog_slug, slug=slug),
        _PACKAGE_LEVELS,
        ordered=True,
    ),
    "\x1fstand-in catalog slug",
    "\x1fstand-in package slug",
)
_PRICES = PreparedTree(
    lambda pk: PackagePrice.objects.filter(package_id=pk),
    [("", PackagePrice), ("amounts__", PackagePriceAmount)],
    ["amounts"],
)
_VARIANTS = PreparedTree(
    lambda pk: Variant.objects.filter(packages__id=pk),
    [
        ("", Variant),
        ("options__", VariantOption),
        ("options__prices__", VariantPrice),
        ("options__prices__amounts__", VariantPriceAmount),
    ],
    ["options", "prices", "amounts"],
)


def relation_cache_fill(instance: Model, relation: str, objects: Iterable[Model]) -> None:
    """Fill `instance.<relation>.all()` as prefetch_related() would, without its query.

    The queryset prefetch_related() stores is built when the relation is first
    asked for (`_PrefetchCache`): a checkout reads a package's whole tree, a
    hundred relations for a package with many variants, and uses a few of them,
    while building each one's queryset (its related manager, its filter, and
    django-money's wrapping of every queryset method) cost more than reading the rows.
    """
    cache = instance.__dict__.get("_prefetched_objects_cache")
    if not isinstance(cache, _PrefetchCache):
        cache = instance.__dict__["_prefetched_objects_cache"] = _PrefetchCache(instance, cache)
    cache.fill(relation, list(objects))


class _Pending(list):
    """The objects of a relation whose queryset is not built yet."""


class _PrefetchCache(dict):
    """A model instance's `_prefetched_objects_cache` that builds each queryset on first use.

    Django reads the cache by key (its related managers), with `in` and `get`
    (prefetch_related_objects), and pops a key when the relation is written to;
    each of those sees what prefetch_related() would have stored.
    """

    def __init__(self, instance: Model, existing: dict[str, Any] | None = None) -> None:
        super().__init__(existing or {})
        self._instance = instance

    def fill(self, relation: str, objects: list[Model]) -> None:
        super().__setitem__(relation, _Pending(objects))

    def __getitem__(self, relation: str) -> Any:
        value = super().__getitem__(relation)
        if not isinstance(value, _Pending):
            return value
        # Absent from the cache for a moment, so that the manager builds the queryset it
        # would query with; then it holds the objects, as Django's prefetch_one_level does.
        super().__delitem__(relation)
        queryset = getattr(self._instance, relation).get_queryset()
        queryset._result_cache = list(value)
        queryset._prefetch_done = True
        super().__setitem__(relation, queryset)
        return queryset

    def get(self, relation: str, default: Any = None) -> Any:
        return self[relation] if relation in self else default  # noqa: SIM401 (this is get)


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
