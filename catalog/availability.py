"""What customers may order, in which currency and with which options.

The visibility rules of DESIGN.md live here and nowhere else; the storefront
pages, the checkout's order service and plan changes all call them, as
django-oscar's basket and checkout both call `partner/availability.py`:

| state                       | listed | page               | orderable | scaling target |
|-----------------------------|--------|--------------------|-----------|----------------|
| active                      | yes    | yes                | yes       | yes            |
| hidden                      | no     | yes (private link) | yes       | yes            |
| retired                     | no     | "no longer sold"   | no        | no             |
| draft / disabled            | no     | 404 (staff preview)| no        | no             |
| sold out, no oversell       | marked | order disabled     | no        | no             |

Functions read what is prefetched on the instances they are given, so a page
that prefetches once calls them per package without further queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from django.db.models import Q
from djmoney.money import Money

from .errors import ErrorCode, Refusal
from .models import (
    SOLD_OUT,
    Package,
    PackagePrice,
    PackagePriceAmount,
    Variant,
    VariantOption,
    VariantPriceAmount,
)
from .relations import related_objects


class Reason:
    """What customers are told; the order service words its refusals the same way."""

    INACTIVE = "This package is not available."
    RETIRED = "This package is no longer sold."
    SOLD_OUT = "This package is sold out."
    NO_PRICING = "This package has no pricing option on sale."
    NOT_PRICED = "This package is not sold in {currency}."
    PRICE_NOT_SOLD = "This pricing option is not on sale."
    PRICE_NOT_PRICED = "The “{name}” option is not sold in {currency}."


# --- the package ---------------------------------------------------------------


def scaling_target_filter() -> Q:
    """Packages a service may be moved to: active, not retired and not sold out."""
    return Q(status=Package.Status.ACTIVE, retired=False) & ~SOLD_OUT


def package_refusal(package: Package) -> Refusal | None:
    """Why nobody may order `package` now, whatever they choose; None when they may.

    Stock is read from the instance: the order service passes a row it has locked.
    """
    if not package.is_active:
        return Refusal(ErrorCode.NOT_AVAILABLE, Reason.INACTIVE)
    if package.retired:
        return Refusal(ErrorCode.RETIRED, Reason.RETIRED)
    if package.is_sold_out:
        return Refusal(ErrorCode.SOLD_OUT, Reason.SOLD_OUT)
    return None


# --- prices ----------------------------------------------------------------------


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


def offer_refusal(sold: Offer) -> Refusal | None:
    """Why the option cannot be bought in the offer's currency; None when it can."""
    if sold.is_available:
        return None
    return Refusal(
        ErrorCode.PRICE_NOT_IN_CURRENCY,
        Reason.PRICE_NOT_PRICED.format(name=sold.option.name, currency=sold.currency),
    )


def package_offers(package: Package, currency: str) -> list[Offer]:
    return [offer(option, currency) for option in package.enabled_prices()]


def _cheapest(offers: list[Offer]) -> Offer | None:
    """The cheapest paid offer, or the first free one when nothing is paid."""
    paid = [item for item in offers if item.amount is not None]
    if paid:
        return min(paid, key=lambda item: item.amount.price.amount)  # type: ignore[union-attr]
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


class Orderability(NamedTuple):
    orderable: bool
    reason: str = ""


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
    options = package.enabled_prices()
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


# --- plan changes ----------------------------------------------------------------


def scaling_offer(
    target: Package,
    *,
    price_name: str,
    price_type: str,
    time_interval: int | None,
    billing_period: str,
    currency: str,
) -> Offer | Refusal:
    """What a service billed by the named option would pay on `target`, or why it cannot move.

    A target sells the option of the same name, in the service's currency, over
    the same period: proration compares one period with another of the same
    length. The service page and the plan-change service both ask this.
    """
    refusal = package_refusal(target)
    if refusal is not None:
        return refusal
    price = next((p for p in target.enabled_prices() if p.name == price_name), None)
    if price is None:
        return Refusal(
            ErrorCode.NO_SAME_PRICE, f"“{target.name}” has no “{price_name}” pricing option."
        )
    sold = offer(price, currency)
    refusal = offer_refusal(sold)
    if refusal is not None:
        return refusal
    if (price.type, price.time_interval, price.billing_period) != (
        price_type,
        time_interval,
        billing_period,
    ):
        return Refusal(
            ErrorCode.PRICE_PERIOD_DIFFERS,
            f"“{target.name}” bills “{price.name}” over another period.",
        )
    return sold


# --- variants --------------------------------------------------------------------


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
        for variant in related_objects(package, "variants")
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
            for option in related_objects(variant, "options")
            if (choice := variant_choice(option, price.name, currency)) is not None
        ]
        if choices:
            offered.append(OfferedVariant(variant=variant, choices=choices))
    return offered
