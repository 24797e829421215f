"""Reads for the customer area and checkout; each owns its prefetches.

Every customer read filters by the customer, so another customer's record is
a 404, never a 403 that would confirm it exists.
"""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.http import QueryDict
from django.shortcuts import get_object_or_404

from catalog.availability import scaling_target_filter
from catalog.errors import Refusal
from catalog.models import Package, PackagePrice, VariantOption
from catalog.selection import parse_selection
from catalog.selectors import packages_for_order

from .models import Customer, Invoice, Order, PlanChange, Service


def customer_orders(*, customer: Customer) -> QuerySet[Order]:
    return Order.objects.filter(customer=customer)


def customer_services(*, customer: Customer) -> QuerySet[Service]:
    return Service.objects.filter(customer=customer)


def customer_invoices(*, customer: Customer) -> QuerySet[Invoice]:
    return Invoice.objects.filter(customer=customer)


def customer_order_or_404(*, customer: Customer, pk: int) -> Order:
    return get_object_or_404(
        customer_orders(customer=customer).prefetch_related(
            "lines", "invoices", Prefetch("services", queryset=Service.objects.order_by("id"))
        ),
        pk=pk,
    )


def customer_service_or_404(*, customer: Customer, pk: int) -> Service:
    return get_object_or_404(
        customer_services(customer=customer).select_related("order", "package"), pk=pk
    )


def package_for_checkout_or_404(*, catalog_slug: str, package_slug: str) -> Package:
    """Draft and disabled packages do not exist for customers; retired ones say so at checkout."""
    return get_object_or_404(
        packages_for_order().active(), catalog__slug=catalog_slug, slug=package_slug
    )


def selection_from_data(
    *, package: Package, data: QueryDict
) -> tuple[PackagePrice | None, list[VariantOption], int]:
    """The pricing option, variant options and quantity a checkout form (GET or POST) carries.

    Ids that do not belong to this package are still returned as stand-ins,
    so the order service is the one that refuses them, with its message.
    """
    selection = parse_selection(data)
    price = None
    if selection.price_id is not None:
        price = next((p for p in package.prices.all() if p.pk == selection.price_id), None)
        if price is None:
            price = PackagePrice.objects.filter(pk=selection.price_id).first()
    variants = {variant.code: variant for variant in package.variants.all()}
    options = []
    for code, values in selection.variants.items():
        variant = variants.get(code)
        for value in values:
            option = None
            if variant is not None and isinstance(value, int):
                option = next((o for o in variant.options.all() if o.pk == value), None)
            # Unknown to this package: a stand-in the service refuses by what was posted,
            # never by reading another package's option (its name may not be public).
            options.append(option or VariantOption(pk=0, name=f"{code}={value}"))
    quantity = 1 if selection.quantity is None else selection.quantity
    return price, options, quantity


def service_change_targets(*, service: Service) -> list[tuple[Package, str]]:
    """The packages the service page offers to move to, each with its “Monthly: 20 USD” label.

    Only what the change service would accept right now, by the same rule
    (`catalog.availability.scaling_offer`); it checks all of it again.
    """
    targets = packages_for_order().filter(scaling_target_filter(), scalable_from=service.package_id)
    offered = []
    for target in targets:
        sold = service.scaling_offer(target)
        if isinstance(sold, Refusal):
            continue
        amount = sold.price
        name = sold.option.name
        offered.append((target, f"{name}: {amount}" if amount else name))
    return offered


def service_scheduled_change(*, service: Service) -> PlanChange | None:
    return service.plan_changes.filter(status=PlanChange.Status.SCHEDULED).first()
