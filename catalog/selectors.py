"""Reads of the catalog: what a quote needs, and the warnings staff see."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
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
from .relations import relation_cache_fill


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
    """The active package at these slugs with what a quote and an order read.

    The same objects `packages_for_order()` gives, read with fewer round trips
    (it takes seven, and one more for the quotas). On PostgreSQL one statement: the
    package with its catalog, and as JSON columns its quotas with their quota (what
    each service snapshots), its pricing options with their amounts, its variants
    down to their options' prices' amounts (`PreparedNested`). Elsewhere three: the
    package with its catalog LEFT JOINed to its quotas (a row per quota), its pricing
    options LEFT JOINed to their amounts, its variants LEFT JOINed down to the amounts.
    The checkout reads one package per request, so the rows a join repeats cost less
    than the queries it saves. Each statement's SQL is built once per process
    (`PreparedRead`).
    """
    if connections[_PACKAGE_AT_ONCE.db].vendor == "postgresql":
        rows = _PACKAGE_AT_ONCE.read(catalog_slug, package_slug)
        if not rows:
            return None
        [(*columns, quota_rows, price_rows, variant_rows)] = rows
        package, catalog = _split(tuple(columns), _PACKAGE_LEVELS[:2], _PACKAGE_AT_ONCE.db)
    else:
        rows = _PACKAGE.read(catalog_slug, package_slug)
        if not rows:
            return None
        package, catalog = _split(rows[0], _PACKAGE_LEVELS[:2], _PACKAGE.db)
        width = _width(_PACKAGE_LEVELS[:2])
        quota_rows = [row[width:] for row in rows]
        price_rows = _PRICES.read(package.pk)
        variant_rows = _VARIANTS.read(package.pk)
    Package.catalog.field.set_cached_value(package, catalog)
    quotas = []
    for row in quota_rows:
        quota, of = _split(row, _QUOTA_LEVELS, _PACKAGE.db)
        if quota is not None:  # None: the package has no quotas (the LEFT JOIN's empty side)
            PackageQuota.quota.field.set_cached_value(quota, of)
            quotas.append(quota)
    relation_cache_fill(package, "quotas", quotas)
    relation_cache_fill(package, "prices", _PRICES.tree(price_rows))
    relation_cache_fill(package, "variants", _VARIANTS.tree(variant_rows))
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
        sql, stand_in_params, slots, converters = self.compiled()
        params = list(stand_in_params)
        for position, argument in slots:
            params[position] = args[argument]
        with connections[self.db].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return self.converted(rows, converters)

    def compiled(self) -> _Compiled:
        """The SQL for this database, built on its first read."""
        key = (self.db, connections[self.db].vendor)
        return self._compiled.get(key) or self._compiled.setdefault(key, self._compile())

    def converted(self, rows: list[Any], converters: list[Any]) -> list[tuple[Any, ...]]:
        if not converters:
            return rows
        connection = connections[self.db]
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


class PreparedRows(PreparedRead):
    """A PreparedRead of every concrete field of each level (values() prefix, model), as
    `_values` gives them, sorted by each level's own ordering.

    `json_sql` is the same read as one JSON column of another statement (`PreparedNested`).
    """

    def __init__(
        self, build: Callable[..., QuerySet[Any]], levels: Levels, *stand_ins: int | str
    ) -> None:
        super().__init__(lambda *args: _values(build(*args), levels, ordered=True), *stand_ins)
        self.levels = levels

    def json_sql(self) -> tuple[str, tuple[Any, ...]]:
        """A scalar subquery giving this read's rows as a JSON array of objects, one key per
        column (its values() lookup), in the read's order; and its parameters."""
        for _, model in self.levels:
            for field in model._meta.concrete_fields:
                if not _same_in_json(field):
                    raise ImproperlyConfigured(
                        f"{model.__name__}.{field.name} would not come back from JSON as the "
                        "database driver gives it: read it in a query of its own."
                    )
        sql, params, _, _ = self.compiled()
        order = ", ".join(
            f"t.{_quote(self.db, lookup)}{' DESC' if descending else ''}"
            for lookup, descending in _ordering(self.levels)
        )
        return f"(SELECT COALESCE(json_agg(t ORDER BY {order}), '[]')::text FROM ({sql}) t)", params

    def rows_from_json(self, text: str) -> list[tuple[Any, ...]]:
        """The rows `read` would give, from the column `json_sql` built."""
        # Numbers with a fraction (the amounts, numeric(x, 2)) as the driver gives them.
        objects = json.loads(text, parse_float=Decimal)
        return self.converted([tuple(row.values()) for row in objects], self.compiled()[3])


class PreparedTree(PreparedRows):
    """PreparedRows of one parent's children LEFT JOINed down to their own children.

    `levels` are (values() prefix, model) from the top down, each the children of
    the one above through `relations[i]`; rows are sorted by each level's own
    ordering, so every list comes out as `.all()` would give it.
    """

    def __init__(
        self,
        build: Callable[..., QuerySet[Any]],
        levels: Levels,
        relations: list[str],
        *stand_ins: int | str,
    ) -> None:
        super().__init__(build, levels, *stand_ins)
        self.relations = relations

    def tree(self, rows: list[tuple[Any, ...]]) -> list[Any]:
        """Instances of the first level of `rows` (this read's), each with its children's
        prefetch caches filled."""
        levels = self.levels
        names = [_attnames(model) for _, model in levels]
        pk_at = [
            names[depth].index(model._meta.pk.attname) for depth, (_, model) in enumerate(levels)
        ]
        seen: list[dict[Any, Model]] = [{} for _ in levels]
        children: dict[tuple[int, Any], list[Model]] = {}
        top: list[Any] = []
        for row in rows:
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


class PreparedNested(PreparedRead):
    """A PreparedRead whose rows end with other reads' rows, one JSON column each: one
    statement and round trip instead of one per read (PostgreSQL's json_agg).

    The nested reads take the same arguments as `top`; each of the rows read ends
    with the list of each nested read's rows, converted as its own `read` gives them.
    """

    def __init__(self, top: PreparedRead, nested: list[PreparedRows]) -> None:
        super().__init__(top._build, *top._stand_ins)
        self._top = top
        self._nested = nested

    def read(self, *args: Any) -> list[tuple[Any, ...]]:
        count = len(self._nested)
        return [
            (
                *row[:-count],
                *(
                    nested.rows_from_json(text)
                    for nested, text in zip(self._nested, row[-count:], strict=True)
                ),
            )
            for row in super().read(*args)
        ]

    def _compile(self) -> _Compiled:
        top_sql, top_params, _, converters = self._top.compiled()
        columns: list[str] = []
        params: list[Any] = []
        for nested in self._nested:
            sql, nested_params = nested.json_sql()
            columns.append(sql)
            params.extend(nested_params)
        # The select list's parameters come first in the text, then the FROM's.
        sql = f"SELECT p.*, {', '.join(columns)} FROM ({top_sql}) p"
        return self._with_slots(sql, [*params, *top_params], converters)


# Columns whose JSON value is what psycopg gives: numbers, text, booleans, and numerics with
# a fraction (JSON would give 10 for a numeric(x, 0) 10, an int where psycopg gives Decimal).
_JSON_TYPES = {
    "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField",
    "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
    "PositiveSmallIntegerField", "CharField", "SlugField", "TextField", "BooleanField",
}  # fmt: skip


def _same_in_json(field: Any) -> bool:
    if field.is_relation:
        field = field.target_field
    if field.get_internal_type() == "DecimalField":
        return bool(field.decimal_places)
    return field.get_internal_type() in _JSON_TYPES


def _ordering(levels: Levels) -> list[tuple[str, bool]]:
    """(values() lookup, descending) of each level's ordering, then its primary key."""
    return [
        (prefix + (model._meta.pk.name if key == "pk" else key.removeprefix("-")), key[0] == "-")
        for prefix, model in levels
        for key in [*(str(key) for key in model._meta.ordering or ()), "pk"]
    ]


def _quote(db: str, name: str) -> str:
    return connections[db].ops.quote_name(name)


def _width(levels: Levels) -> int:
    return sum(len(model._meta.concrete_fields) for _, model in levels)


def _attnames(model: type[Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def _values(queryset: QuerySet[Any], levels: Levels, *, ordered: bool = False) -> QuerySet[Any]:
    """`queryset` as values_list() of every concrete field of each level, in level order."""
    lookups = [
        prefix + field.name for prefix, model in levels for field in model._meta.concrete_fields
    ]
    if ordered:
        queryset = queryset.order_by(
            *(("-" if descending else "") + lookup for lookup, descending in _ordering(levels))
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
_QUOTA_LEVELS: Levels = [("", PackageQuota), ("quota__", Quota)]
_PACKAGE_LEVELS: Levels = [
    ("", Package),
    ("catalog__", Catalog),
    *((f"quotas__{prefix}", model) for prefix, model in _QUOTA_LEVELS),
]
_SLUGS = ("\x1fstand-in catalog slug", "\x1fstand-in package slug")
# The slugs name one package at most (unique per catalog; catalog slugs are unique).
_PACKAGE = PreparedRead(
    lambda catalog_slug, slug: _values(
        Package.objects.active().filter(catalog__slug=catalog_slug, slug=slug),
        _PACKAGE_LEVELS,
        ordered=True,
    ),
    *_SLUGS,
)
_PRICE_LEVELS: Levels = [("", PackagePrice), ("amounts__", PackagePriceAmount)]
_PRICES = PreparedTree(
    lambda pk: PackagePrice.objects.filter(package_id=pk), _PRICE_LEVELS, ["amounts"], STAND_IN_PK
)
_VARIANT_LEVELS: Levels = [
    ("", Variant),
    ("options__", VariantOption),
    ("options__prices__", VariantPrice),
    ("options__prices__amounts__", VariantPriceAmount),
]
_VARIANTS = PreparedTree(
    lambda pk: Variant.objects.filter(packages__id=pk),
    _VARIANT_LEVELS,
    ["options", "prices", "amounts"],
    STAND_IN_PK,
)
# The same reads in one statement (PostgreSQL): the package with its catalog, then its
# quotas, prices and variants as JSON columns, each found by the same slugs.
_PACKAGE_AT_ONCE = PreparedNested(
    PreparedRead(
        lambda catalog_slug, slug: _values(
            Package.objects.active().filter(catalog__slug=catalog_slug, slug=slug),
            _PACKAGE_LEVELS[:2],
        ),
        *_SLUGS,
    ),
    [
        PreparedRows(
            lambda catalog_slug, slug: PackageQuota.objects.filter(
                package__catalog__slug=catalog_slug, package__slug=slug
            ),
            _QUOTA_LEVELS,
            *_SLUGS,
        ),
        PreparedRows(
            lambda catalog_slug, slug: PackagePrice.objects.filter(
                package__catalog__slug=catalog_slug, package__slug=slug
            ),
            _PRICE_LEVELS,
            *_SLUGS,
        ),
        PreparedRows(
            lambda catalog_slug, slug: Variant.objects.filter(
                packages__catalog__slug=catalog_slug, packages__slug=slug
            ),
            _VARIANT_LEVELS,
            *_SLUGS,
        ),
    ],
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
