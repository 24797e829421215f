"""What customers may see and order: every customer path reads through these.

The visibility rules of DESIGN.md live here and nowhere else, so the pages,
the checkout and scaling all apply the same ones:

| state                       | listed | page               | orderable | scaling target |
|-----------------------------|--------|--------------------|-----------|----------------|
| active                      | yes    | yes                | yes       | yes            |
| hidden                      | no     | yes (private link) | yes       | yes            |
| retired                     | no     | "no longer sold"   | no        | no             |
| draft / disabled            | no     | 404 (staff preview)| no        | no             |
| sold out, no oversell       | marked | order disabled     | no        | no             |

Each page's selector owns its prefetches, so its query count does not grow
with the number of packages, prices, variants, features or quotas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from django.db.models import Prefetch, Q
from django.http import Http404
from djmoney.money import Money

from catalog.models import (
    Catalog,
    Feature,
    Package,
    PackageFeature,
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

# --- visibility -------------------------------------------------------------


def listed_packages() -> PackageQuerySet:
    return Package.objects.listed()


def scaling_target_filter() -> Q:
    """Packages a service may be moved to: active, not retired and not sold out."""
    sold_out = Q(stock_qty=0, oversell_enabled=False)
    return Q(status=Package.Status.ACTIVE, retired=False) & ~sold_out


def visible_catalog_or_404(slug: str) -> Catalog:
    """A catalog by its slug: hidden catalogs are unlisted, yet their link works."""
    try:
        return Catalog.objects.get(slug=slug)
    except Catalog.DoesNotExist:
        raise Http404("No such catalog.") from None


def can_preview(user) -> bool:
    return bool(user is not None and user.is_active and user.is_staff)


def package_for_customer_or_404(catalog_slug: str, package_slug: str, user=None) -> Package:
    """The package shown on its page, with everything the page reads prefetched.

    Draft and disabled packages are a 404 for customers; staff may preview them.
    Hidden and retired packages are reachable by their link.
    """
    packages = Package.objects.select_related("catalog").prefetch_related(
        Prefetch("prices", queryset=PackagePrice.objects.filter(enabled=True)),
        Prefetch("prices__amounts", queryset=PackagePriceAmount.objects.all()),
        Prefetch("features", queryset=PackageFeature.objects.select_related("feature")),
        Prefetch("quotas", queryset=PackageQuota.objects.select_related("quota")),
        Prefetch(
            "variants",
            queryset=Variant.objects.exclude(visibility=Variant.Visibility.HIDDEN),
        ),
        Prefetch("variants__options", queryset=VariantOption.objects.all()),
        Prefetch("variants__options__prices", queryset=VariantPrice.objects.all()),
        Prefetch("variants__options__prices__amounts", queryset=VariantPriceAmount.objects.all()),
        Prefetch(
            "scalable_to",
            queryset=_priced_packages(
                Package.objects.filter(scaling_target_filter()).select_related("catalog")
            ),
            to_attr="customer_scaling_targets",
        ),
    )
    if not can_preview(user):
        packages = packages.active()
    try:
        return packages.get(catalog__slug=catalog_slug, slug=package_slug)
    except Package.DoesNotExist:
        raise Http404("No such package.") from None


# --- catalog reads ----------------------------------------------------------


def _priced_packages(queryset: PackageQuerySet) -> PackageQuerySet:
    return queryset.prefetch_related(
        Prefetch("prices", queryset=PackagePrice.objects.filter(enabled=True)),
        Prefetch("prices__amounts", queryset=PackagePriceAmount.objects.all()),
    )


def index_catalogs() -> list[Catalog]:
    """Visible catalogs in staff order, each with `listed_packages` and their enabled prices."""
    return list(
        Catalog.objects.filter(status=Catalog.Status.VISIBLE).prefetch_related(
            Prefetch(
                "packages",
                queryset=_priced_packages(listed_packages()),
                to_attr="listed_packages",
            )
        )
    )


def catalog_packages(catalog: Catalog) -> list[Package]:
    """The catalog's listed packages with their prices, features and quotas."""
    return list(
        _priced_packages(listed_packages().filter(catalog=catalog)).prefetch_related(
            Prefetch("features", queryset=PackageFeature.objects.select_related("feature")),
            Prefetch("quotas", queryset=PackageQuota.objects.select_related("quota")),
        )
    )


# --- prices -----------------------------------------------------------------


def enabled_prices(package: Package) -> list[PackagePrice]:
    """Enabled pricing options in staff order (works with or without a filtered prefetch)."""
    prices = [price for price in package.prices.all() if price.enabled]
    prices.sort(key=lambda price: (price.sort_order, price.pk or 0))
    return prices


def _positive(fee: Money | None) -> Money | None:
    # A zero fee is stored like any other; customers are not told about it.
    return fee if fee and fee.amount > 0 else None


@dataclass(frozen=True)
class Offer:
    """A pricing option as sold in one currency."""

    option: PackagePrice
    currency: str
    amount: PackagePriceAmount | None  # None for free options and for unpriced ones

    @property
    def is_available(self) -> bool:
        return self.option.is_free or self.amount is not None

    @property
    def price(self) -> Money | None:
        return self.amount.price if self.amount else None

    @property
    def setup_fee(self) -> Money | None:
        return _positive(self.amount.setup_fee) if self.amount else None

    @property
    def signup_fee(self) -> Money | None:
        return _positive(self.amount.signup_fee) if self.amount else None


def offer(option: PackagePrice, currency: str) -> Offer:
    amount = None if option.is_free else option.amount_in(currency)
    return Offer(option=option, currency=currency, amount=amount)


def package_offers(package: Package, currency: str) -> list[Offer]:
    return [offer(option, currency) for option in enabled_prices(package)]


def _cheapest(offers: list[Offer]) -> Offer | None:
    """The cheapest paid offer, or the first free one when nothing is paid."""
    paid = [item for item in offers if item.amount is not None]
    if paid:
        return min(paid, key=lambda item: item.amount.price.amount)
    return offers[0] if offers else None


def starting_offer(package: Package, currency: str) -> Offer | None:
    """The package's "from ..." price in `currency`."""
    return _cheapest([item for item in package_offers(package, currency) if item.is_available])


def cheapest_offer(packages: list[Package], currency: str) -> Offer | None:
    """A catalog's "from ..." price: the cheapest offer among packages one can order."""
    offers = [
        starting_offer(package, currency)
        for package in packages
        if package_orderability(package, currency).orderable
    ]
    return _cheapest([item for item in offers if item is not None])


def selected_price(package: Package, currency: str, requested: str | None) -> PackagePrice | None:
    """The pricing option named by `?price=<id>`, else the first one sold in `currency`."""
    prices = enabled_prices(package)
    for price in prices:
        if requested and str(price.pk) == str(requested):
            return price
    for price in prices:
        if offer(price, currency).is_available:
            return price
    return prices[0] if prices else None


# --- orderability -----------------------------------------------------------


class Orderability(NamedTuple):
    orderable: bool
    reason: str = ""


class Reason:
    INACTIVE = "This package is not available."
    RETIRED = "This package is no longer sold."
    SOLD_OUT = "This package is sold out."
    NO_PRICING = "This package has no pricing option on sale."
    NOT_PRICED = "This package is not sold in {currency}."
    PRICE_NOT_SOLD = "This pricing option is not on sale."
    PRICE_NOT_PRICED = "The “{name}” option is not sold in {currency}."


class Refusal(NamedTuple):
    """Why an order cannot be placed: a stable code and a message for the customer."""

    code: str
    message: str


def package_refusal(package: Package) -> Refusal | None:
    """Why nobody may order `package` now, whatever they choose; None when they may.

    Stock is read from the instance: the order service passes a row it has locked.
    """
    if not package.is_active:
        return Refusal("not_available", Reason.INACTIVE)
    if package.retired:
        return Refusal("retired", Reason.RETIRED)
    if package.is_sold_out:
        return Refusal("sold_out", Reason.SOLD_OUT)
    return None


def package_orderability(
    package: Package, currency: str, price: PackagePrice | None = None
) -> Orderability:
    """Whether customers may order `package` in `currency` (and with `price`, when given).

    The reason says why not, in words a customer understands; the order
    service applies the same rules (package_refusal, offer, variant_choice).
    """
    refusal = package_refusal(package)
    if refusal is not None:
        return Orderability(False, refusal.message)
    options = enabled_prices(package)
    if not options:
        return Orderability(False, Reason.NO_PRICING)
    if price is not None and (price.package_id != package.pk or price not in options):
        return Orderability(False, Reason.PRICE_NOT_SOLD)
    if not any(offer(option, currency).is_available for option in options):
        return Orderability(False, Reason.NOT_PRICED.format(currency=currency))
    if price is not None and not offer(price, currency).is_available:
        return Orderability(
            False, Reason.PRICE_NOT_PRICED.format(name=price.name, currency=currency)
        )
    return Orderability(True)


# --- variants ---------------------------------------------------------------


@dataclass(frozen=True)
class VariantChoice:
    option: VariantOption
    amount: VariantPriceAmount

    @property
    def price(self) -> Money:
        return self.amount.price

    @property
    def setup_fee(self) -> Money | None:
        return _positive(self.amount.setup_fee)


@dataclass(frozen=True)
class OfferedVariant:
    variant: Variant
    choices: list[VariantChoice]


def customer_variants(package: Package) -> list[Variant]:
    """The package's variants customers see and may choose (works with any prefetch)."""
    return [
        variant
        for variant in package.variants.all()
        if variant.visibility != Variant.Visibility.HIDDEN
    ]


def variant_choice(option: VariantOption, price_name: str, currency: str) -> VariantChoice | None:
    """An option can be bought with a pricing option only through a variant price of its name."""
    variant_price = option.price_named(price_name)
    if variant_price is None:
        return None
    amount = variant_price.amount_in(currency)
    return VariantChoice(option=option, amount=amount) if amount is not None else None


def offered_variants(
    package: Package, price: PackagePrice | None, currency: str
) -> list[OfferedVariant]:
    """Visible variants with the options that can be bought with `price` in `currency`.

    Options without a variant price named exactly like `price` (or without an
    amount in `currency`) are left out; a variant left with no option is too.
    """
    if price is None:
        return []
    offered = []
    for variant in customer_variants(package):
        choices = [
            choice
            for option in variant.options.all()
            if (choice := variant_choice(option, price.name, currency)) is not None
        ]
        if choices:
            offered.append(OfferedVariant(variant=variant, choices=choices))
    return offered


def customer_scaling_targets(package: Package) -> list[Package]:
    targets = getattr(package, "customer_scaling_targets", None)
    if targets is None:
        targets = package.scalable_to.filter(scaling_target_filter()).select_related("catalog")
    return list(targets)


# --- comparison -------------------------------------------------------------


@dataclass(frozen=True)
class ComparisonRow:
    label: str
    kind: str  # "feature" or "quota"
    definition: Feature | Quota
    cells: list[PackageFeature | PackageQuota | None]


def comparison_rows(packages: list[Package]) -> list[ComparisonRow]:
    """Every feature and quota of `packages`, one row each, one cell per package."""
    definitions: dict[tuple[str, int], Feature | Quota] = {}
    values: list[dict[tuple[str, int], PackageFeature | PackageQuota]] = []
    for package in packages:
        by_key = {}
        for value in package.features.all():
            by_key["feature", value.feature_id] = value
            definitions.setdefault(("feature", value.feature_id), value.feature)
        for value in package.quotas.all():
            by_key["quota", value.quota_id] = value
            definitions.setdefault(("quota", value.quota_id), value.quota)
        values.append(by_key)
    # Features first, then quotas, each in staff order.
    keys = sorted(
        definitions,
        key=lambda key: (key[0] != "feature", definitions[key].sort_order, definitions[key].name),
    )
    return [
        ComparisonRow(
            label=definitions[key].name,
            kind=key[0],
            definition=definitions[key],
            cells=[by_key.get(key) for by_key in values],
        )
        for key in keys
    ]
