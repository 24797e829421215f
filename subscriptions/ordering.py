"""Placing and cancelling orders: the quote checked again under locks, then written once.

An order snapshots everything it charges, takes its stock last (so the package
row is locked only briefly), and issues its invoice in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.models import Count, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from djmoney.money import Money

from catalog.errors import ErrorCode, Refusal, refuse
from catalog.models import Package, PackagePrice, VariantOption
from catalog.relations import relation_cache_fill
from catalog.selectors import STAND_IN_PK, PreparedRead, PreparedUpdate
from catalog.stock import (
    stock_lock,
    stock_lock_query,
    stock_take,
    stock_take_at_once,
    stock_take_query,
    stock_take_values,
    stock_units_to_take,
)

from .bulk import instances_insert, instances_insert_returning_with_parent, rows_together
from .events import Kind, service_events_record
from .invoicing import invoice_issue_new, invoice_settle
from .lifecycle import service_cancel_for_closing, service_end
from .models import Customer, Invoice, InvoiceLine, LineKind, Order, OrderLine, Service
from .notifications import notify_order_placed
from .quotas import quota_snapshot
from .quotes import (
    Quote,
    QuoteLine,
    build_quote,
    check_held,
    check_package,
    checkout_fields_clean,
    held_services,
    read_for_order,
)


def _customer_lock_sql() -> str:
    """Reads the customer (`%s`) holding their row's lock, until commit.

    Every order of one customer for a package with a per-user limit takes this lock
    before it counts what they hold, so what they hold is counted and enforced by one
    transaction at a time. Written as SQL: the ORM spent more CPU building this one
    line than the database spent running it.
    """
    connection = connections[router.db_for_write(Customer)]
    quote = connection.ops.quote_name
    meta = get_user_model()._meta
    key = quote(str(meta.pk.column))
    lock = connection.ops.for_update_sql() if connection.features.has_select_for_update else ""
    return f"SELECT {key} FROM {quote(meta.db_table)} WHERE {key} = %s {lock}"


def _lock_customer(customer: Customer) -> None:
    connection = connections[router.db_for_write(Customer)]
    with connection.cursor() as cursor:
        cursor.execute(_customer_lock_sql(), [customer.pk])


def _held_before(package_id: int, customer_id: int, order_id: int) -> Coalesce:
    """How many of the package the customer held before this order (their live services
    of it, less this order's), as an expression of the statements below."""
    return Coalesce(
        Subquery(
            held_services(package_id, customer_id)
            .exclude(order_id=order_id)
            .values("customer")
            .annotate(n=Count("pk"))
            .values("n")
        ),
        0,
    )


# The stock lock that also counts what the customer held before this order: see stock_lock.
_STOCK_LOCK_HELD = PreparedRead(
    lambda package_id, customer_id, order_id: stock_lock_query(
        package_id, held=_held_before(package_id, customer_id, order_id)
    ),
    STAND_IN_PK,
    STAND_IN_PK - 1,
    STAND_IN_PK - 2,
)
# The stock taken at once, when the customer held at most `most_held` before this order
# (the limit less its units): see stock_take_at_once.
_STOCK_TAKE_HELD = PreparedUpdate(
    lambda package_id, units, customer_id, order_id, most_held: (
        stock_take_query(package_id, units)
        .alias(held=_held_before(package_id, customer_id, order_id))
        .filter(held__lte=most_held)
    ),
    stock_take_values,
    ["stock_qty"],
    STAND_IN_PK,
    STAND_IN_PK - 1,
    STAND_IN_PK - 2,
    STAND_IN_PK - 3,
    STAND_IN_PK - 4,
)


def _line_fields(line: QuoteLine, number: int) -> dict[str, Any]:
    """What an order line and an invoice line both copy from a quote line."""
    return {
        "kind": line.kind,
        "description": line.description,
        "unit_amount": line.unit_amount,
        "quantity": line.quantity,
        "amount": line.amount,
        "sort_order": number,
    }


def order_place(
    *,
    customer: Customer,
    package: Package,
    price: PackagePrice | None,
    variant_options: Iterable[VariantOption],
    quantity: int,
    currency: str,
    checkout_fields: dict[str, Any] | None = None,
    checkout_token: str = "",
) -> Order:
    """Place an order: re-check every rule, take stock, snapshot, invoice, create services.

    Raises ValidationError (with a code) when the order cannot be placed;
    then nothing is written. A checkout token already used returns the order
    placed with it: the unique (customer, token) key refuses the second write,
    and only then is the first order looked up, so a checkout pays no query for it.
    """
    try:
        return _order_write(
            customer=customer,
            package=package,
            price=price,
            variant_options=list(variant_options),
            quantity=quantity,
            currency=currency,
            checkout_fields=checkout_fields or {},
            checkout_token=checkout_token,
        )
    except (IntegrityError, ValidationError):
        # Placed already (a double click, a reload): its rules may refuse a second
        # order now (the per-user limit it reached), but the customer gets the first.
        placed = (
            Order.objects.filter(customer=customer, checkout_token=checkout_token).first()
            if checkout_token
            else None
        )
        if placed is None:
            raise
        return placed


@transaction.atomic
def _order_write(
    *,
    customer: Customer,
    package: Package,
    price: PackagePrice | None,
    variant_options: list[VariantOption],
    quantity: int,
    currency: str,
    checkout_fields: dict[str, Any],
    checkout_token: str,
) -> Order:
    # The order's lines, the invoice's lines, the events and the notice's task row are
    # written together as the block ends (one statement on PostgreSQL); nothing in it
    # reads them back.
    with rows_together():
        package = read_for_order(package)
        limited = package.has_per_user_limit
        # On PostgreSQL the order's row takes the customer's lock as it is written, below:
        # a round trip less, and still before what they hold is counted.
        lock_with_order = limited and connections[router.db_for_write(Order)].vendor == "postgresql"
        if limited and not lock_with_order:
            _lock_customer(customer)
        # The per-user limit is checked below, under the customer's lock.
        quote = build_quote(
            package=package,
            price=price,
            variant_options=variant_options,
            quantity=quantity,
            currency=currency,
        )
        fields = checkout_fields_clean(package=package, data=checkout_fields)
        taken = stock_units_to_take(package, quantity)  # confirmed under the lock below

        price = quote.price
        order = Order(
            customer=customer,
            checkout_token=checkout_token,
            package=package,
            package_name=package.name,
            package_price=price,
            price_name=price.name,
            price_type=price.type,
            period_label=price.period_label(),
            quantity=quantity,
            currency=currency,
            total=quote.total_due_now,
            recurring_total=quote.recurring_total,
            checkout_fields=fields,
            stock_taken=taken,
        )
        # Field checks only: the database enforces the constraints and unique keys,
        # and asking it first would cost a query each inside the locked transaction.
        clean = {"validate_unique": False, "validate_constraints": False}
        order.full_clean(exclude=["customer", "package", "package_price"], **clean)

        trial = quote.trial_applies
        quotas = quota_snapshot(package, currency)
        services = [
            Service(
                customer=customer,
                order=order,
                package=package,
                package_name=package.name,
                price_name=price.name,
                price_type=price.type,
                time_interval=price.time_interval,
                billing_period=price.billing_period,
                currency=currency,
                recurring_amount=quote.recurring_unit_amount,
                variants=quote.variants_snapshot,
                checkout_fields=fields,
                trial_period=package.trial_period if trial else 0,
                trial_interval=package.trial_interval if trial else "",
                trial_mode=package.trial_mode if trial else "",
                grace_period=package.grace_period,
                grace_interval=package.grace_interval if package.grace_period else "",
                package_amount=_recurring_package_amount(quote),
                provider_instance_id=package.provider_instance_id,
                provisioning_options=package.provisioning_options,
                package_settings=package.package_settings,
                quotas=quotas,
                overages_enabled=package.overages_enabled,
                took_stock=unit < taken,
            )
            for unit in range(quantity)
        ]
        for service in services:
            service.full_clean(
                exclude=["customer", "order", "package", "provider_instance"], **clean
            )
        # The order and its services in one statement (on PostgreSQL).
        instances_insert_returning_with_parent(
            order,
            Service,
            services,
            "order",
            parent_raw={"customer_id": f"({_customer_lock_sql()})"} if lock_with_order else None,
        )
        instances_insert(
            OrderLine,
            [
                OrderLine(
                    order=order,
                    **_line_fields(line, number),
                    variant_code=line.variant_code,
                    option_value=line.option_value,
                    recurring=line.recurring,
                    due_now=line.due_now,
                )
                for number, line in enumerate(quote.lines)
            ],
        )

        # The invoice is built and checked before the stock lock below: the package row
        # stays locked only for the statements that must follow it.
        invoice = Invoice(
            customer=customer,
            order=order,
            currency=currency,
            total=quote.total_due_now,
            due_at=timezone.now(),
        )
        invoice.full_clean(exclude=["customer", "order"], **clean)
        invoice_lines = [
            InvoiceLine(**_line_fields(line, number))
            for number, line in enumerate(line for line in quote.lines if line.due_now)
        ]

        # Stock is taken last, so the package row stays locked only for the few statements
        # left before commit; a refusal rolls all back. What the customer held before this
        # order is read under the customer's lock, so no other order of theirs can change it
        # until this one commits.
        if package.has_stock and not _stock_taken_at_once(package, quantity, customer, order):
            # Refused at once, or oversold: the checks under the row's lock say why.
            if limited:
                [held_before] = stock_lock(package, _STOCK_LOCK_HELD, customer.pk, order.pk)
            else:
                stock_lock(package)
            check_package(package, quantity)
            if limited:
                check_held(package, held_before, quantity)
            locked_taken = stock_take(package, quantity)
            if locked_taken != taken:  # oversold: fewer units were left than when quoted
                order.stock_taken = locked_taken
                order.save(update_fields=["stock_taken"])
                Service.objects.filter(order=order).update(took_stock=False)
                Service.objects.filter(
                    pk__in=[service.pk for service in services[:locked_taken]]
                ).update(took_stock=True)
        elif not package.has_stock and limited:
            check_held(
                package, held_services(package, customer).exclude(order=order).count(), quantity
            )

        invoice_issue_new(invoice=invoice, lines=invoice_lines)
        service_events_record(
            kind=Kind.ORDERED,
            message=f"Order {order.number}, invoice {invoice.number} ({invoice.total})",
            service_ids=[s.pk for s in services],
            data={"order": order.pk, "invoice": invoice.pk},
            actor=customer,
        )
        notify_order_placed(order=order, invoice=invoice, package=package)
    if invoice.total.amount == 0:
        invoice_settle(invoice, order)
    # Where the customer goes next: the view reads the invoice from here, not again.
    relation_cache_fill(order, "invoices", [invoice])
    return order


def _stock_taken_at_once(package: Package, quantity: int, customer: Customer, order: Order) -> bool:
    """The order's units taken in one statement, which checks all the locked path checks
    (the per-user limit too); False when it refused, with nothing changed."""
    if not package.has_per_user_limit:
        return stock_take_at_once(package, quantity)
    most_held = package.per_user_limit - quantity
    return stock_take_at_once(package, quantity, _STOCK_TAKE_HELD, customer.pk, order.pk, most_held)


def _recurring_package_amount(quote: Quote) -> Money:
    """The pricing option's own part of what one unit is charged every period."""
    return sum(
        (
            line.unit_amount
            for line in quote.lines
            if line.kind == LineKind.PRICE and line.recurring
        ),
        Money(0, quote.currency),
    )


def order_never_provisioned(order: Order) -> bool:
    """No service of the order was ever set up by its provider."""
    return not order.services.filter(Q(activated_at__isnull=False) | ~Q(remote_id="")).exists()


@transaction.atomic
def order_cancel(*, order: Order, refunded: bool = False) -> Order:
    """Cancel an order that is not paid yet: its invoice and services end, stock comes back.

    `refunded`: its payment was given back (payments.services.payment_refund), so
    a paid order may be cancelled too, as long as nothing was provisioned yet.
    """
    order = Order.objects.select_for_update().get(pk=order.pk)
    cancellable = order.status == Order.Status.AWAITING_PAYMENT or (
        refunded and order.status == Order.Status.PAID and order_never_provisioned(order)
    )
    if not cancellable:
        raise refuse(
            ErrorCode.ORDER_NOT_CANCELLABLE,
            f"Order {order.number} is {order.get_status_display().lower()}; "
            "only an order awaiting payment can be cancelled.",
        )
    now = timezone.now()
    order.status = Order.Status.CANCELLED
    order.cancelled_at = now
    order.save(update_fields=["status", "cancelled_at"])
    order.invoices.filter(status=Invoice.Status.UNPAID).update(
        status=Invoice.Status.CANCELLED, cancelled_at=now
    )
    for service in order.services.select_for_update().filter(status__in=Service.LIVE_STATUSES):
        service_end(service, Service.Status.CANCELLED)
    return order


def account_close_refusal(*, customer: Customer) -> Refusal | None:
    """Why the customer may not close their account themselves; None when they may."""
    kept = [
        service
        for service in Service.objects.live().filter(customer=customer).select_related("package")
        if not service.package.allow_cancellation
    ]
    if kept:
        names = ", ".join(str(service) for service in kept)
        return Refusal(
            ErrorCode.CANCELLATION_NOT_ALLOWED,
            f"These services cannot be cancelled by customers: {names}. "
            "Contact us to close your account.",
        )
    return None


@transaction.atomic
def customer_close_account(*, customer: Customer) -> list[Service]:
    """A customer leaves: orders awaiting payment are cancelled, every live service ends at
    its period end (now when none runs), and the login is turned off. Paid orders and all
    invoices stay, as the law requires."""
    customer = get_user_model().objects.select_for_update().get(pk=customer.pk)
    refusal = account_close_refusal(customer=customer)
    if refusal is not None:
        raise refusal.error()
    for order in Order.objects.filter(customer=customer, status=Order.Status.AWAITING_PAYMENT):
        order_cancel(order=order)
    ended = [
        service_cancel_for_closing(service)
        for service in Service.objects.live().filter(customer=customer).order_by("pk")
    ]
    customer.is_active = False
    customer.save(update_fields=["is_active"])
    return ended
