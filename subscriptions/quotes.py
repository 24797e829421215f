"""Quotes: every rule of what a customer may buy, and what it costs.

The checkout's review page and the order service build the same quote, so a
customer is refused exactly what the package page would not offer. The rules
of availability themselves live in `catalog.availability`; this module adds
the customer's own choices to them: quantity, pricing option, variants, the
per-user limit and the provider's checkout fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from djmoney.money import Money

from catalog.availability import (
    Offer,
    VariantChoice,
    customer_variants,
    offer,
    offer_refusal,
    offered_variants,
    package_refusal,
    variant_choice,
)
from catalog.currency import format_money, is_store_currency
from catalog.errors import ErrorCode, refuse
from catalog.models import Package, PackagePrice, Variant, VariantOption
from catalog.relations import related_objects
from catalog.selectors import packages_for_order
from catalog.stock import stock_covers
from catalog.text import trial_first_due, trial_offer
from provisioning.plugins.base import Plugin, form_error_messages
from provisioning.registry import plugin_for

from .models import Customer, LineKind, Service
from .periods import add_interval, first_paid_period_start

MAX_QUANTITY = 100


@dataclass
class QuoteLine:
    kind: str
    description: str
    unit_amount: Money
    quantity: int
    recurring: bool
    due_now: bool
    variant_code: str = ""
    option_value: str = ""

    @property
    def amount(self) -> Money:
        return self.unit_amount * self.quantity


@dataclass
class Quote:
    package: Package
    price: PackagePrice
    currency: str
    quantity: int
    options: list[VariantOption]
    lines: list[QuoteLine] = field(default_factory=list)
    trial_applies: bool = False
    # When the first payment falls due, if the checkout can know it: today
    # without a trial. A trial counts from when the service is ready, so its end
    # is no date yet (see first_due_label).
    first_due_at: datetime | None = None
    quoted_at: datetime | None = None

    def _sum(self, amounts: Iterable[Money]) -> Money:
        return sum(amounts, Money(0, self.currency))

    @property
    def total_due_now(self) -> Money:
        return self._sum(line.amount for line in self.lines if line.due_now)

    @property
    def recurring_total(self) -> Money:
        return self._sum(line.amount for line in self.lines if line.recurring)

    @property
    def recurring_unit_amount(self) -> Money:
        """What one unit (one service) is charged every period."""
        return self._sum(line.unit_amount for line in self.lines if line.recurring)

    @property
    def trial_label(self) -> str:
        if not self.trial_applies:
            return ""
        package = self.package
        return trial_offer(
            period=package.trial_period,
            interval=package.trial_interval,
            inside=self._trial_starts_first_period,
            then=f"{format_money(self.recurring_total)} {self.price.period_suffix()}",
        )

    @property
    def _trial_starts_first_period(self) -> bool:
        """An inside trial shorter than a period; a longer one is followed by it (see periods)."""
        package, price = self.package, self.price
        if package.trial_mode != Package.TrialMode.INSIDE or not price.time_interval:
            return False
        started = self.quoted_at or timezone.now()
        return started == first_paid_period_start(
            started=started,
            trial_ends=add_interval(started, package.trial_period, package.trial_interval),
            inside=True,
            count=price.time_interval,
            unit=price.billing_period,
        )

    @property
    def first_due_label(self) -> str:
        """When the first payment falls due, in words that are true at checkout."""
        if self.trial_applies:
            return trial_first_due(
                period=self.package.trial_period, interval=self.package.trial_interval
            )
        if self.first_due_at is not None:
            return f"{self.first_due_at:%Y-%m-%d}"
        return "nothing to pay"

    @property
    def variants_snapshot(self) -> list[dict[str, str]]:
        return [
            {
                "code": option.variant.code,
                "name": option.variant.name,
                "option": option.name,
                "value": option.value,
            }
            for option in self.options
        ]


def read_for_order(package: Package) -> Package:
    """`package` as packages_for_order() reads it; an instance it already read is reused.

    Reuse saves the checkout's POST reading it all twice, and is safe: stock,
    what orders race on, is read again under the package row's lock.
    """
    if "variants" in getattr(package, "_prefetched_objects_cache", {}):
        return package
    return packages_for_order().get(pk=package.pk)


def check_package(package: Package, quantity: int) -> None:
    refusal = package_refusal(package)
    if refusal is not None:
        raise refusal.error()
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise refuse(
            ErrorCode.QUANTITY_INVALID, "The quantity must be a whole number of 1 or more."
        )
    if quantity != 1 and package.allow_quantity != Package.Quantity.MULTIPLE:
        raise refuse(ErrorCode.QUANTITY_NOT_ALLOWED, "This package is sold one unit per order.")
    if quantity > MAX_QUANTITY:
        raise refuse(
            ErrorCode.QUANTITY_TOO_LARGE, f"At most {MAX_QUANTITY} units can be ordered at once."
        )
    if not stock_covers(package, quantity):
        raise refuse(
            ErrorCode.NOT_ENOUGH_STOCK,
            f"Only {package.stock_qty} unit(s) of this package are left.",
        )


def check_price(package: Package, price: PackagePrice | None, currency: str) -> Offer:
    if not is_store_currency(currency):
        raise refuse(
            ErrorCode.CURRENCY_INVALID, f"{currency} is not one of the store's currencies."
        )
    if price is None:
        raise refuse(ErrorCode.PRICE_REQUIRED, "Choose a pricing option.")
    # The package's own row, never the one given: its fields could be anyone's.
    price = next(
        (option for option in related_objects(package, "prices") if option.pk == price.pk), None
    )
    if price is None:
        raise refuse(
            ErrorCode.PRICE_NOT_OF_PACKAGE, "This pricing option does not belong to this package."
        )
    if not price.enabled:
        raise refuse(
            ErrorCode.PRICE_DISABLED, f"The pricing option “{price.name}” is not available."
        )
    sold = offer(price, currency)
    refusal = offer_refusal(sold)
    if refusal is not None:
        raise refusal.error()
    return sold


def check_variants(
    package: Package, price: PackagePrice, options: Iterable[VariantOption], currency: str
) -> list[VariantChoice]:
    """The chosen options as sold with `price`, in the variants' staff order."""
    variants = {variant.pk: variant for variant in related_objects(package, "variants")}
    own_options = {
        option.pk: option
        for variant in variants.values()
        for option in related_objects(variant, "options")
    }
    choosable = {variant.pk for variant in customer_variants(package)}
    chosen: list[VariantChoice] = []
    per_variant: dict[int, int] = {}
    for given in options:
        option = own_options.get(given.pk)
        if option is None:
            raise refuse(
                ErrorCode.VARIANT_NOT_OF_PACKAGE,
                f"“{given.name}” is not an option of this package.",
            )
        variant = variants[option.variant_id]
        option.variant = variant
        if variant.pk not in choosable:
            raise refuse(ErrorCode.VARIANT_HIDDEN, f"“{variant.name}” cannot be chosen.")
        per_variant[variant.pk] = per_variant.get(variant.pk, 0) + 1
        if per_variant[variant.pk] > 1 and variant.type != Variant.Type.CHECKBOX:
            raise refuse(ErrorCode.VARIANT_DUPLICATE, f"Choose one option for “{variant.name}”.")
        choice = variant_choice(option, price.name, currency)
        if choice is None:
            if option.price_named(price.name) is None:
                raise refuse(
                    ErrorCode.VARIANT_NO_PRICE,
                    f"“{variant.name}: {option.name}” cannot be bought with “{price.name}”.",
                )
            raise refuse(
                ErrorCode.VARIANT_NOT_IN_CURRENCY,
                f"“{variant.name}: {option.name}” is not sold in {currency}.",
            )
        chosen.append(choice)
    # A drop-down or radio variant the page offers with this price needs a choice.
    for offered in offered_variants(package, price, currency):
        variant = offered.variant
        if variant.type != Variant.Type.CHECKBOX and variant.pk not in per_variant:
            raise refuse(ErrorCode.VARIANT_REQUIRED, f"Choose an option for “{variant.name}”.")
    chosen.sort(
        key=lambda choice: (
            choice.option.variant.sort_order,
            choice.option.variant.name,
            choice.option.pk,
        )
    )
    return chosen


def held_services(package: Package | int, customer: Customer | int) -> QuerySet[Service]:
    """The customer's live services of the package: what its per-user limit counts.

    Either may be given by its id (a prepared statement's stand-in, see ordering).
    """
    return Service.objects.live().filter(customer=customer, package=package)


def check_per_user_limit(package: Package, customer: Customer | None, quantity: int) -> None:
    if not package.has_per_user_limit or customer is None:
        return
    check_held(package, held_services(package, customer).count(), quantity)


def check_held(package: Package, held: int, quantity: int) -> None:
    """Refuse `quantity` more units to a customer holding `held` of a per-user limited package."""
    if package.has_per_user_limit and held + quantity > package.per_user_limit:
        left = max(package.per_user_limit - held, 0)
        raise refuse(
            ErrorCode.PER_USER_LIMIT,
            f"You may hold at most {package.per_user_limit} of this package"
            + (f"; you can order {left} more." if left else "; you hold that many already."),
        )


def build_quote(
    *,
    package: Package,
    price: PackagePrice | None,
    variant_options: Iterable[VariantOption],
    quantity: int,
    currency: str,
    customer: Customer | None = None,
) -> Quote:
    check_package(package, quantity)
    sold = check_price(package, price, currency)
    price = sold.option
    chosen = check_variants(package, price, variant_options, currency)
    check_per_user_limit(package, customer, quantity)

    now = timezone.now()
    trial_applies = package.has_trial and price.is_recurring
    # With a trial, the recurring charges fall due when the trial ends.
    recurring_due_now = not trial_applies
    zero = Money(0, currency)
    quote = Quote(
        package=package,
        price=price,
        currency=currency,
        quantity=quantity,
        options=[choice.option for choice in chosen],
        trial_applies=trial_applies,
        quoted_at=now,
    )
    lines = quote.lines
    lines.append(
        QuoteLine(
            kind=LineKind.PRICE,
            description=f"{package.name} – {price.name} ({price.period_label()})",
            unit_amount=sold.price or zero,
            quantity=quantity,
            recurring=price.is_recurring,
            due_now=recurring_due_now or not price.is_recurring,
        )
    )
    for choice in chosen:
        option = choice.option
        lines.append(
            QuoteLine(
                kind=LineKind.VARIANT,
                description=f"{option.variant.name}: {option.name}",
                unit_amount=choice.price,
                quantity=quantity,
                recurring=price.is_recurring,
                due_now=recurring_due_now or not price.is_recurring,
                variant_code=option.variant.code,
                option_value=option.value,
            )
        )
    if sold.setup_fee:
        lines.append(
            QuoteLine(
                kind=LineKind.SETUP_FEE,
                description=f"Setup fee – {package.name}",
                unit_amount=sold.setup_fee,
                quantity=quantity,
                recurring=False,
                due_now=True,
            )
        )
    for choice in chosen:
        option = choice.option
        if choice.setup_fee:
            lines.append(
                QuoteLine(
                    kind=LineKind.SETUP_FEE,
                    description=f"Setup fee – {option.variant.name}: {option.name}",
                    unit_amount=choice.setup_fee,
                    quantity=quantity,
                    recurring=False,
                    due_now=True,
                    variant_code=option.variant.code,
                    option_value=option.value,
                )
            )
    if sold.signup_fee:
        lines.append(
            QuoteLine(
                kind=LineKind.SIGNUP_FEE,
                description="Signup fee (once per order)",
                unit_amount=sold.signup_fee,
                quantity=1,
                recurring=False,
                due_now=True,
            )
        )
    if not trial_applies and not price.is_free:
        quote.first_due_at = now
    return quote


def order_quote(
    *,
    package: Package,
    price: PackagePrice | None,
    variant_options: Iterable[VariantOption],
    quantity: int,
    currency: str,
    customer: Customer | None = None,
) -> Quote:
    """The review summary of an order, or a ValidationError saying why it cannot be placed."""
    return build_quote(
        package=read_for_order(package),
        price=price,
        variant_options=list(variant_options),
        quantity=quantity,
        currency=currency,
        customer=customer,
    )


def checkout_fields_clean(*, package: Package, data: dict[str, Any]) -> dict[str, Any]:
    """The plugin's checkout form, validated; its errors refuse the order."""
    plugin = package_plugin(package)
    form = plugin.checkout_form(data=data or {})
    if not form.is_valid():
        raise refuse(ErrorCode.CHECKOUT_FIELDS_INVALID, " ".join(form_error_messages(form)))
    return plugin.serialize_package_options(form.cleaned_data)


def package_plugin(package: Package) -> Plugin:
    return plugin_for(package.provider_instance)[0]
