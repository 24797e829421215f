"""Reads for the customer area and checkout; each owns its prefetches.

Every customer read filters by the customer, so another customer's record is
a 404, never a 403 that would confirm it exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404, QueryDict
from django.shortcuts import get_object_or_404

from catalog.availability import scaling_target_filter
from catalog.errors import Refusal
from catalog.models import Package, PackagePrice, VariantOption
from catalog.relations import related_objects
from catalog.selection import parse_selection
from catalog.selectors import package_for_order, packages_for_order

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
    package = package_for_order(catalog_slug=catalog_slug, package_slug=package_slug)
    if package is None:
        raise Http404("No such package.")
    return package


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
        price = next(
            (p for p in related_objects(package, "prices") if p.pk == selection.price_id), None
        )
        if price is None:
            price = PackagePrice.objects.filter(pk=selection.price_id).first()
    variants = {variant.code: variant for variant in related_objects(package, "variants")}
    options = []
    for code, values in selection.variants.items():
        variant = variants.get(code)
        for value in values:
            option = None
            if variant is not None and isinstance(value, int):
                option = next(
                    (o for o in related_objects(variant, "options") if o.pk == value), None
                )
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


@dataclass(frozen=True)
class ServiceState:
    """Where a service stands, for its customer: the page renders this and decides nothing.

    `code` is one of: awaiting_payment, provisioning, provisioning_failed, trial, active,
    grace, suspended, cancelled, terminated. `invoice` is the unpaid invoice to pay (with
    the page's Pay link); the dates are those the state promises.
    """

    code: str
    invoice: Invoice | None = None
    trial_ends_at: datetime | None = None
    grace_ends_at: datetime | None = None
    terminates_at: datetime | None = None
    ends_at: datetime | None = None
    ended_at: datetime | None = None
    suspended_for_payment: bool = False
    next_payment_due: datetime | None = None


def service_unpaid_invoice(*, service: Service) -> Invoice | None:
    """The service's oldest unpaid invoice, its order's included (one query)."""
    return (
        Invoice.objects.filter(
            Q(pk__in=Invoice.objects.of_service(service.pk).values("pk"))
            | Q(order_id=service.order_id, kind=Invoice.Kind.ORDER)
            | Q(service_id=service.pk),
            status=Invoice.Status.UNPAID,
        )
        .order_by("due_at", "pk")
        .first()
    )


def service_state(*, service: Service) -> ServiceState:
    """The one answer to "what is going on with my service?" (at most one query)."""
    S = Service.Status
    if service.status == S.TERMINATED:
        return ServiceState("terminated", ended_at=service.terminated_at)
    if service.status == S.CANCELLED:
        return ServiceState("cancelled", ended_at=service.cancelled_at)
    invoice = service_unpaid_invoice(service=service)
    ends_at = service.cancel_at
    if service.status == S.PENDING:
        if service.order.status == Order.Status.AWAITING_PAYMENT:
            return ServiceState("awaiting_payment", invoice=invoice)
        if service.needs_attention:
            return ServiceState("provisioning_failed")
        return ServiceState("provisioning")
    if service.status == S.GRACE:
        return ServiceState(
            "grace", invoice=invoice, grace_ends_at=service.grace_ends_at, ends_at=ends_at
        )
    if service.status == S.SUSPENDED:
        return ServiceState(
            "suspended",
            invoice=invoice,
            suspended_for_payment=invoice is not None,
            # Dated by the billing run's dunning step (BILLING_TERMINATE_AFTER_DAYS).
            terminates_at=service.terminates_at if invoice is not None else None,
            ends_at=ends_at,
        )
    return ServiceState(
        "trial" if service.status == S.TRIAL else "active",
        invoice=invoice,
        trial_ends_at=service.trial_ends_at if service.status == S.TRIAL else None,
        ends_at=ends_at,
        next_payment_due=service.next_payment_due,
    )
