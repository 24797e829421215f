"""Writes customers, staff and jobs make: orders, invoices, payments, service lifecycle.

The order service trusts nothing the checkout form posted: every rule is
checked again here, with the storefront's own rule functions, so a customer
is refused exactly what the package page would not offer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Prefetch, Q, Sum
from django.utils import timezone
from djmoney.money import Money

from catalog.models import (
    NotificationEvent,
    Package,
    PackagePrice,
    PackageQuerySet,
    PackageScaling,
    PriceType,
    Variant,
    VariantOption,
)
from provisioning.registry import get_plugin
from storefront.currency import format_money, is_store_currency
from storefront.display import plural
from storefront.selectors import (
    Offer,
    Reason,
    VariantChoice,
    customer_variants,
    offer,
    offered_variants,
    package_refusal,
    variant_choice,
)

from .jobs import provisioning_job_cancel_open, provisioning_job_enqueue
from .models import (
    Invoice,
    InvoiceLine,
    LineKind,
    Order,
    OrderLine,
    Payment,
    PlanChange,
    ProvisioningJob,
    Service,
)
from .notifications import notify_invoice, notify_order_placed, notify_service
from .periods import add_interval

MAX_QUANTITY = 100


def refuse(message: str, code: str) -> ValidationError:
    return ValidationError(message, code=code)


@transaction.atomic
def customer_sign_up(*, email: str, password: str):
    """A customer account; the email is the login (and the username, which keeps it unique)."""
    email = email.strip().lower()
    User = get_user_model()
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError(
            {"email": "An account with this email address already exists."}, code="email_taken"
        )
    user = User(username=email, email=email)
    user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    return user


# --- quoting: every rule of what may be bought ------------------------------


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
        return f"{plural(package.trial_period, package.trial_interval)} ({package.get_trial_mode_display()})"

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


def _read_for_order(package: Package) -> Package:
    """`package` as packages_for_order() reads it; an instance it already read is reused.

    Reuse saves the checkout's POST reading it all twice, and is safe: stock,
    what orders race on, is read again under the package row's lock.
    """
    if "variants" in getattr(package, "_prefetched_objects_cache", {}):
        return package
    return packages_for_order().get(pk=package.pk)


def _check_package(package: Package, quantity: int) -> None:
    refusal = package_refusal(package)
    if refusal is not None:
        raise refuse(refusal.message, refusal.code)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise refuse("The quantity must be a whole number of 1 or more.", "quantity_invalid")
    if quantity != 1 and package.allow_quantity != Package.Quantity.MULTIPLE:
        raise refuse("This package is sold one unit per order.", "quantity_not_allowed")
    if quantity > MAX_QUANTITY:
        raise refuse(f"At most {MAX_QUANTITY} units can be ordered at once.", "quantity_too_large")
    if package.has_stock and not package.oversell_enabled and package.stock_qty < quantity:
        raise refuse(
            f"Only {package.stock_qty} unit(s) of this package are left.", "not_enough_stock"
        )


def _check_price(package: Package, price: PackagePrice | None, currency: str) -> Offer:
    if not is_store_currency(currency):
        raise refuse(f"{currency} is not one of the store's currencies.", "currency_invalid")
    if price is None:
        raise refuse("Choose a pricing option.", "price_required")
    # The package's own row, never the one given: its fields could be anyone's.
    price = next((option for option in package.prices.all() if option.pk == price.pk), None)
    if price is None:
        raise refuse("This pricing option does not belong to this package.", "price_not_of_package")
    if not price.enabled:
        raise refuse(f"The pricing option “{price.name}” is not available.", "price_disabled")
    sold = offer(price, currency)
    if not sold.is_available:
        raise refuse(
            Reason.PRICE_NOT_PRICED.format(name=price.name, currency=currency),
            "price_not_in_currency",
        )
    return sold


def _check_variants(
    package: Package, price: PackagePrice, options: Iterable[VariantOption], currency: str
) -> list[VariantChoice]:
    """The chosen options as sold with `price`, in the variants' staff order."""
    variants = {variant.pk: variant for variant in package.variants.all()}
    own_options = {
        option.pk: option for variant in variants.values() for option in variant.options.all()
    }
    choosable = {variant.pk for variant in customer_variants(package)}
    chosen: list[VariantChoice] = []
    per_variant: dict[int, int] = {}
    for given in options:
        option = own_options.get(given.pk)
        if option is None:
            raise refuse(
                f"“{given.name}” is not an option of this package.", "variant_not_of_package"
            )
        variant = variants[option.variant_id]
        option.variant = variant
        if variant.pk not in choosable:
            raise refuse(f"“{variant.name}” cannot be chosen.", "variant_hidden")
        per_variant[variant.pk] = per_variant.get(variant.pk, 0) + 1
        if per_variant[variant.pk] > 1 and variant.type != Variant.Type.CHECKBOX:
            raise refuse(f"Choose one option for “{variant.name}”.", "variant_duplicate")
        choice = variant_choice(option, price.name, currency)
        if choice is None:
            if option.price_named(price.name) is None:
                raise refuse(
                    f"“{variant.name}: {option.name}” cannot be bought with “{price.name}”.",
                    "variant_no_price",
                )
            raise refuse(
                f"“{variant.name}: {option.name}” is not sold in {currency}.",
                "variant_not_in_currency",
            )
        chosen.append(choice)
    # A drop-down or radio variant the page offers with this price needs a choice.
    for offered in offered_variants(package, price, currency):
        variant = offered.variant
        if variant.type != Variant.Type.CHECKBOX and variant.pk not in per_variant:
            raise refuse(f"Choose an option for “{variant.name}”.", "variant_required")
    chosen.sort(
        key=lambda choice: (
            choice.option.variant.sort_order,
            choice.option.variant.name,
            choice.option.pk,
        )
    )
    return chosen


def _check_per_user_limit(package: Package, customer, quantity: int) -> None:
    if not package.has_per_user_limit or customer is None:
        return
    held = Service.objects.live().filter(customer=customer, package=package).count()
    if held + quantity > package.per_user_limit:
        left = max(package.per_user_limit - held, 0)
        raise refuse(
            f"You may hold at most {package.per_user_limit} of this package"
            + (f"; you can order {left} more." if left else "; you hold that many already."),
            "per_user_limit",
        )


def _build_quote(
    *,
    package: Package,
    price: PackagePrice | None,
    variant_options: Iterable[VariantOption],
    quantity: int,
    currency: str,
    customer=None,
) -> Quote:
    _check_package(package, quantity)
    sold = _check_price(package, price, currency)
    price = sold.option
    chosen = _check_variants(package, price, variant_options, currency)
    _check_per_user_limit(package, customer, quantity)

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
    if trial_applies:
        quote.first_due_at = add_interval(now, package.trial_period, package.trial_interval)
    elif not price.is_free:
        quote.first_due_at = now
    return quote


def order_quote(
    *,
    package: Package,
    price: PackagePrice | None,
    variant_options: Iterable[VariantOption],
    quantity: int,
    currency: str,
    customer=None,
) -> Quote:
    """The review summary of an order, or a ValidationError saying why it cannot be placed."""
    return _build_quote(
        package=_read_for_order(package),
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
        messages = [
            f"{form.fields[name].label or name}: {' '.join(errors)}"
            if name in form.fields
            else " ".join(errors)
            for name, errors in form.errors.items()
        ]
        raise ValidationError(" ".join(messages), code="checkout_fields_invalid")
    return plugin.serialize_package_options(form.cleaned_data)


def package_plugin(package: Package):
    """A package without a provider instance is set up by hand, like the Manual plugin."""
    if package.provider_instance_id:
        return package.provider_instance.get_real_instance().plugin
    return get_plugin("manual")


# --- placing orders ----------------------------------------------------------


def _lock_customer(customer) -> None:
    # Every order of one customer takes this lock first, so the per-user limit
    # is counted and enforced by one transaction at a time.
    get_user_model().objects.select_for_update().filter(pk=customer.pk).exists()


def _lock_stock(package: Package) -> None:
    """Re-read the fields orders race on, holding the package row's lock until commit."""
    row = (
        Package.objects.select_for_update()
        .values("stock_qty", "oversell_enabled", "status", "retired")
        .get(pk=package.pk)
    )
    for name, value in row.items():
        setattr(package, name, value)


def _units_to_take(package: Package, quantity: int) -> int:
    """With oversell the stock stops at zero and the rest of the units are oversold."""
    if not package.has_stock:
        return 0
    if package.oversell_enabled:
        return min(quantity, max(package.stock_qty, 0))
    return quantity


def _take_stock(package: Package, quantity: int) -> int:
    """Take the units from stock; call it holding the package row's lock."""
    taken = _units_to_take(package, quantity)
    if taken:
        # Conditional even under the row lock: on a database without row locks
        # it still never takes a unit that is not there.
        updated = Package.objects.filter(pk=package.pk, stock_qty__gte=taken).update(
            stock_qty=F("stock_qty") - taken
        )
        if not updated:
            raise refuse(Reason.SOLD_OUT, "sold_out")
    return taken


def _release_stock(*, package_id: int, units: int) -> None:
    if units:
        # Only while stock is tracked: -1 (unlimited) stays -1.
        Package.objects.filter(pk=package_id, stock_qty__gte=0).update(
            stock_qty=F("stock_qty") + units
        )


@transaction.atomic
def order_place(
    *,
    customer,
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
    then nothing is written.
    """
    variant_options = list(variant_options)
    _lock_customer(customer)
    if checkout_token:
        placed = Order.objects.filter(customer=customer, checkout_token=checkout_token).first()
        if placed is not None:
            return placed

    package = _read_for_order(package)
    quote = _build_quote(
        package=package,
        price=price,
        variant_options=variant_options,
        quantity=quantity,
        currency=currency,
        customer=customer,
    )
    fields = checkout_fields_clean(package=package, data=checkout_fields or {})
    taken = _units_to_take(package, quantity)  # confirmed under the lock below

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
    order.save()
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            kind=line.kind,
            description=line.description,
            variant_code=line.variant_code,
            option_value=line.option_value,
            unit_amount=line.unit_amount,
            quantity=line.quantity,
            amount=line.amount,
            recurring=line.recurring,
            due_now=line.due_now,
            sort_order=number,
        )
        for number, line in enumerate(quote.lines)
    )

    now = timezone.now()
    invoice = Invoice(
        customer=customer,
        order=order,
        currency=currency,
        total=quote.total_due_now,
        due_at=now,
    )
    invoice.full_clean(exclude=["customer", "order"], **clean)
    invoice.save()
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            kind=line.kind,
            description=line.description,
            unit_amount=line.unit_amount,
            quantity=line.quantity,
            amount=line.amount,
            sort_order=number,
        )
        for number, line in enumerate(line for line in quote.lines if line.due_now)
    )

    trial = quote.trial_applies
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
            took_stock=unit < taken,
        )
        for unit in range(quantity)
    ]
    for service in services:
        service.full_clean(exclude=["customer", "order", "package", "provider_instance"], **clean)
    Service.objects.bulk_create(services)

    if package.has_stock:
        # Stock is taken last, so the package row stays locked only for the
        # few statements left before commit; a refusal here rolls all back.
        _lock_stock(package)
        _check_package(package, quantity)
        locked_taken = _take_stock(package, quantity)
        if locked_taken != taken:  # oversold: fewer units were left than when quoted
            order.stock_taken = locked_taken
            order.save(update_fields=["stock_taken"])
            Service.objects.filter(order=order).update(took_stock=False)
            Service.objects.filter(
                pk__in=[service.pk for service in services[:locked_taken]]
            ).update(took_stock=True)

    notify_order_placed(order=order, invoice=invoice, package=package)
    if invoice.total.amount == 0:
        _invoice_settle(invoice, order)
    return order


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


def _order_mark_paid(order: Order) -> None:
    """Paid (or nothing to pay): each service's provisioning is queued in this transaction."""
    order.status = Order.Status.PAID
    order.paid_at = timezone.now()
    order.save(update_fields=["status", "paid_at"])
    for service in order.services.filter(status=Service.Status.PENDING):
        provisioning_job_enqueue(service=service, action=ProvisioningJob.Action.CREATE)


def _invoice_settle(invoice: Invoice, order: Order | None = None) -> None:
    invoice.status = Invoice.Status.PAID
    invoice.paid_at = timezone.now()
    invoice.save(update_fields=["status", "paid_at"])
    if invoice.service_id:
        _service_invoice_paid(invoice)
    elif invoice.order_id:
        order = order or Order.objects.select_for_update().get(pk=invoice.order_id)
        if order.status == Order.Status.AWAITING_PAYMENT:
            _order_mark_paid(order)


@transaction.atomic
def invoice_record_payment(
    *,
    invoice: Invoice,
    amount: Money,
    method: str = Payment.Method.STAFF,
    reference: str = "",
    recorded_by=None,
) -> Payment:
    """The one place a payment is recorded; a gateway calls this too.

    When the invoice is paid in full, its order is paid and provisioning starts.
    """
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != Invoice.Status.UNPAID:
        raise ValidationError(
            f"Invoice {invoice.number} is {invoice.get_status_display().lower()}; "
            "it takes no payment.",
            code="invoice_not_unpaid",
        )
    if str(amount.currency) != invoice.currency:
        raise ValidationError(
            f"Invoice {invoice.number} is in {invoice.currency}, not {amount.currency}.",
            code="payment_currency",
        )
    paid = _paid(invoice)
    balance = invoice.total.amount - paid
    if amount.amount <= 0 or amount.amount > balance:
        raise ValidationError(
            f"A payment must be above zero and at most the balance of {balance} {invoice.currency}.",
            code="payment_amount",
        )
    payment = Payment(
        invoice=invoice,
        amount=amount,
        method=method,
        reference=reference,
        recorded_by=recorded_by,
    )
    payment.full_clean(exclude=["invoice", "recorded_by"])
    payment.save()
    notify_invoice(NotificationEvent.PAYMENT_RECEIVED, invoice, payment=payment)
    if paid + amount.amount >= invoice.total.amount:
        _invoice_settle(invoice)
    return payment


def _paid(invoice: Invoice) -> Decimal:
    # Payments are in the invoice's currency: invoice_record_payment refuses any other.
    return invoice.payments.aggregate(total=Sum("amount"))["total"] or Decimal("0")


def invoice_balance(invoice: Invoice) -> Money:
    return Money(invoice.total.amount - _paid(invoice), invoice.currency)


@transaction.atomic
def order_cancel(*, order: Order) -> Order:
    """Cancel an order that is not paid yet: its invoice and services end, stock comes back."""
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status != Order.Status.AWAITING_PAYMENT:
        raise ValidationError(
            f"Order {order.number} is {order.get_status_display().lower()}; "
            "only an order awaiting payment can be cancelled.",
            code="order_not_cancellable",
        )
    now = timezone.now()
    order.status = Order.Status.CANCELLED
    order.cancelled_at = now
    order.save(update_fields=["status", "cancelled_at"])
    order.invoices.filter(status=Invoice.Status.UNPAID).update(
        status=Invoice.Status.CANCELLED, cancelled_at=now
    )
    for service in order.services.select_for_update().filter(status__in=Service.LIVE_STATUSES):
        _service_end(service, Service.Status.CANCELLED)
    return order


# --- service lifecycle -------------------------------------------------------


def _service_end(service: Service, status: str) -> None:
    """Cancel or terminate now. A service that never started gives its stock back."""
    now = timezone.now()
    started = service.activated_at is not None or bool(service.remote_id)
    service.status = status
    if status == Service.Status.CANCELLED:
        service.cancelled_at = now
    else:
        service.terminated_at = now
    if service.took_stock and service.activated_at is None:
        _release_stock(package_id=service.package_id, units=1)
        service.took_stock = False
    service.save()
    notify_service(
        NotificationEvent.SERVICE_CANCELLED
        if status == Service.Status.CANCELLED
        else NotificationEvent.SERVICE_TERMINATED,
        service,
    )
    for change in service.plan_changes.filter(status=PlanChange.Status.SCHEDULED):
        _plan_change_cancel(change, now)
    provisioning_job_cancel_open(service=service, action=ProvisioningJob.Action.CREATE)
    if (
        started
        and not service.jobs.filter(
            action=ProvisioningJob.Action.TERMINATE, status__in=ProvisioningJob.OPEN_STATUSES
        ).exists()
    ):
        provisioning_job_enqueue(service=service, action=ProvisioningJob.Action.TERMINATE)


def service_start(service: Service, *, now: datetime | None = None) -> None:
    """The provider has set it up: the trial or the first period begins now."""
    now = now or timezone.now()
    service.activated_at = now
    recurring = service.price_type == PriceType.RECURRING
    if service.trial_period and recurring:
        service.status = Service.Status.TRIAL
        service.trial_started_at = now
        service.trial_ends_at = add_interval(now, service.trial_period, service.trial_interval)
        # outside: the first paid period follows the trial; inside: it began with it.
        start = service.trial_ends_at if service.trial_mode == Package.TrialMode.OUTSIDE else now
        service.current_period_start = start
        service.current_period_end = max(
            add_interval(start, service.time_interval, service.billing_period),
            service.trial_ends_at,
        )
        service.next_due_at = service.trial_ends_at
    else:
        service.status = Service.Status.ACTIVE
        if recurring:
            service.current_period_start = now
            service.current_period_end = add_interval(
                now, service.time_interval, service.billing_period
            )
            service.next_due_at = service.current_period_end


@transaction.atomic
def service_request_cancellation(*, service: Service, customer, mode: str) -> Service:
    """A customer asks to end their service, once, where the package allows it."""
    service = Service.objects.select_for_update().select_related("package").get(pk=service.pk)
    if service.customer_id != customer.pk:
        raise ValidationError("This is not your service.", code="not_owner")
    if not service.package.allow_cancellation:
        raise ValidationError(
            "This package cannot be cancelled by customers; contact us.",
            code="cancellation_not_allowed",
        )
    if service.cancel_requested_at is not None:
        raise ValidationError(
            "You have already asked to cancel this service.", code="cancellation_requested"
        )
    if not service.is_live:
        raise ValidationError("This service has already ended.", code="service_ended")
    if mode not in Service.CancelMode.values:
        raise ValidationError("Choose when the service should end.", code="cancel_mode")
    now = timezone.now()
    service.cancel_requested_at = now
    service.cancel_mode = mode
    if mode == Service.CancelMode.PERIOD_END:
        end = service.current_period_end or service.trial_ends_at
        if service.trial_ends_at and service.status == Service.Status.TRIAL:
            end = service.trial_ends_at
        if end is None or end <= now:
            raise ValidationError(
                "This service has no billing period running; cancel it immediately instead.",
                code="no_period",
            )
        service.cancel_at = end
        service.save()
    else:
        service.cancel_at = now
        _service_end(service, Service.Status.CANCELLED)
    return service


def services_apply_due_cancellations(*, now: datetime | None = None) -> int:
    """End the services whose cancellation at period end has come; run it periodically."""
    now = now or timezone.now()
    ended = 0
    due = Service.objects.live().filter(cancel_at__lte=now).values_list("pk", flat=True)
    for pk in due:
        with transaction.atomic():
            service = Service.objects.select_for_update().get(pk=pk)
            if service.is_live and service.cancel_at and service.cancel_at <= now:
                _service_end(service, Service.Status.CANCELLED)
                ended += 1
    return ended


def _service_change(service: Service, action: str, allowed: tuple[str, ...]) -> ProvisioningJob:
    service = Service.objects.select_for_update().get(pk=service.pk)
    if service.status not in allowed:
        raise ValidationError(
            f"A {service.get_status_display().lower()} service cannot be {action}ed.",
            code="bad_status",
        )
    if service.jobs.filter(action=action, status__in=ProvisioningJob.OPEN_STATUSES).exists():
        raise ValidationError(f"A {action} of this service is already under way.", code="open_job")
    return provisioning_job_enqueue(service=service, action=action)


@transaction.atomic
def service_suspend(*, service: Service) -> ProvisioningJob:
    S = Service.Status
    return _service_change(service, "suspend", (S.TRIAL, S.ACTIVE, S.GRACE))


@transaction.atomic
def service_unsuspend(*, service: Service) -> ProvisioningJob:
    return _service_change(service, "unsuspend", (Service.Status.SUSPENDED,))


@transaction.atomic
def service_terminate(*, service: Service) -> Service:
    """Staff end a service now; the provider removes it in a job."""
    service = Service.objects.select_for_update().get(pk=service.pk)
    if service.status == Service.Status.TERMINATED:
        raise ValidationError("This service is already terminated.", code="bad_status")
    _service_end(service, Service.Status.TERMINATED)
    return service


# --- billing: renewals, trials ending, grace and suspension -------------------


def _enqueue_once(service: Service, action: str, payload: dict | None = None) -> None:
    # One open job per action and service (a database constraint): an open one
    # still to run reads the service as it is then, so it covers this change too.
    if not service.jobs.filter(action=action, status__in=ProvisioningJob.OPEN_STATUSES).exists():
        provisioning_job_enqueue(service=service, action=action, payload=payload)


def _service_invoice(
    *,
    service: Service,
    kind: str,
    description: str,
    amount: Money,
    due_at: datetime,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
) -> Invoice:
    invoice = Invoice(
        customer_id=service.customer_id,
        service=service,
        kind=kind,
        period_start=period_start,
        period_end=period_end,
        currency=service.currency,
        total=amount,
        due_at=due_at,
    )
    invoice.full_clean(exclude=["customer", "order", "service"], validate_constraints=False)
    invoice.save()
    InvoiceLine.objects.create(
        invoice=invoice,
        kind=LineKind.PRICE,
        description=description,
        unit_amount=amount,
        quantity=1,
        amount=amount,
    )
    notify_invoice(NotificationEvent.INVOICE_CREATED, invoice)
    if amount.amount == 0:
        _invoice_settle(invoice)
    return invoice


def _next_billing_period(service: Service) -> tuple[datetime, datetime, datetime] | None:
    """(start, end, due) of the period to bill next, or None when there is none."""
    if service.price_type != PriceType.RECURRING or service.current_period_end is None:
        return None
    if service.status == Service.Status.TRIAL:
        # Outside: the first paid period follows the trial; inside: it began with
        # it. Either way its first invoice falls due when the trial ends.
        if service.trial_ends_at is None:
            return None
        return service.current_period_start, service.current_period_end, service.trial_ends_at
    start = service.current_period_end
    return start, add_interval(start, service.time_interval, service.billing_period), start


def _service_renewal_issue(service: Service, now: datetime) -> Invoice | None:
    """Bill the service's next period when it has come; call it holding the service's lock."""
    S = Service.Status
    if service.status not in (S.TRIAL, S.ACTIVE, S.GRACE, S.SUSPENDED) or service.cancel_at:
        return None
    period = _next_billing_period(service)
    if period is None or period[2] > now:
        return None
    start, end, due = period
    renewals = service.invoices.filter(kind=Invoice.Kind.RENEWAL)
    # The period advances only when its invoice is paid, so an unpaid one means
    # this period is billed already.
    if renewals.filter(Q(period_start=start) | Q(status=Invoice.Status.UNPAID)).exists():
        return None
    return _service_invoice(
        service=service,
        kind=Invoice.Kind.RENEWAL,
        description=f"{service.package_name} – {service.price_name}, "
        f"{start:%Y-%m-%d} to {end:%Y-%m-%d}",
        amount=service.recurring_amount,
        due_at=due,
        period_start=start,
        period_end=end,
    )


def _service_overdue(service: Service, now: datetime) -> tuple[bool, bool]:
    """Unpaid past the due date: grace first, then suspension.

    Returns (entered grace, suspension queued).
    """
    S = Service.Status
    if service.status not in (S.TRIAL, S.ACTIVE, S.GRACE):
        return False, False
    overdue = (
        service.invoices.filter(status=Invoice.Status.UNPAID, due_at__lte=now)
        .order_by("due_at")
        .first()
    )
    if overdue is None:
        return False, False
    entered_grace = suspended = False
    if service.status != S.GRACE:
        service.status = S.GRACE
        # The grace period snapshotted at order time: catalog edits change no service.
        service.grace_ends_at = add_interval(
            overdue.due_at, service.grace_period, service.grace_interval or "day"
        )
        service.save(update_fields=["status", "grace_ends_at"])
        entered_grace = True
        notify_service(NotificationEvent.PAYMENT_OVERDUE, service, invoice=overdue)
    suspending = service.jobs.filter(
        action=ProvisioningJob.Action.SUSPEND, status__in=ProvisioningJob.OPEN_STATUSES
    )
    if service.grace_ends_at and service.grace_ends_at <= now and not suspending.exists():
        # The provider suspends it; the job's success marks the service suspended.
        provisioning_job_enqueue(service=service, action=ProvisioningJob.Action.SUSPEND)
        suspended = True
    return entered_grace, suspended


def _service_invoice_paid(invoice: Invoice) -> None:
    """A renewal paid moves the period on; the last unpaid invoice paid lifts grace or suspension."""
    service = Service.objects.select_for_update().get(pk=invoice.service_id)
    if not service.is_live:
        return
    S, Action = Service.Status, ProvisioningJob.Action
    if invoice.kind == Invoice.Kind.RENEWAL:
        service.current_period_start = invoice.period_start
        service.current_period_end = invoice.period_end
        service.next_due_at = invoice.period_end
        if service.status == S.TRIAL:
            service.status = S.ACTIVE
        _enqueue_once(service, Action.RENEW, {"period_end": invoice.period_end.isoformat()})
    if not service.invoices.filter(status=Invoice.Status.UNPAID).exists():
        service.grace_ends_at = None
        if service.status == S.GRACE:
            service.status = S.ACTIVE
            provisioning_job_cancel_open(service=service, action=Action.SUSPEND)
        elif service.status == S.SUSPENDED:
            _enqueue_once(service, Action.UNSUSPEND)
    service.save()


def _reminder_window(now: datetime) -> tuple[datetime, datetime]:
    """(after, until]: a trial or period ending in it is reminded of now."""
    return now, now + timedelta(days=settings.BILLING_REMINDER_DAYS)


def _service_trial_reminder(service: Service, now: datetime) -> bool:
    """Tell the customer their trial ends soon, once per trial; call it holding the row lock.

    A trial cancelled at its end gets none: nothing is billed after it. The
    trial end is recorded even when the package's preferences leave the email
    out; True when it was queued.
    """
    after, until = _reminder_window(now)
    ends = service.trial_ends_at
    if (
        service.status != Service.Status.TRIAL
        or service.price_type != PriceType.RECURRING
        or service.cancel_at is not None
        or ends is None
        or not after < ends <= until
        or service.trial_reminder_sent_for == ends
    ):
        return False
    service.trial_reminder_sent_for = ends
    service.save(update_fields=["trial_reminder_sent_for"])
    return notify_service(NotificationEvent.TRIAL_ENDING, service)


def _service_renewal_reminder(service: Service, now: datetime) -> bool:
    """Tell the customer their service renews soon, once per period; call it holding the row lock.

    Only a service that will renew: running (active, or in grace for another
    invoice) and not cancelling at the period end. A downgrade scheduled for
    the period end is what the renewal bills, so the email quotes it. True
    when the email was queued (the package's preferences may leave it out).
    """
    after, until = _reminder_window(now)
    end = service.current_period_end
    if (
        service.status not in (Service.Status.ACTIVE, Service.Status.GRACE)
        or service.price_type != PriceType.RECURRING
        or service.cancel_at is not None
        or end is None
        or not after < end <= until
        or service.renewal_reminder_sent_for == end
    ):
        return False
    service.renewal_reminder_sent_for = end
    service.save(update_fields=["renewal_reminder_sent_for"])
    extra: dict[str, str] = {}
    change = service.plan_changes.filter(
        status=PlanChange.Status.SCHEDULED, effective_at__lte=end
    ).first()
    if change is not None:
        extra = {
            "recurring_amount": format_money(change.recurring_amount),
            "new_package": change.to_package_name,
        }
    return notify_service(NotificationEvent.RENEWAL_DUE, service, **extra)


def _services_send_reminders(run: BillingRun, now: datetime) -> None:
    """Trial-ending and renewal-due reminders; what each was sent for is kept on the service."""
    S = Service.Status
    after, until = _reminder_window(now)
    if until <= after:
        return
    trials = Service.objects.filter(
        status=S.TRIAL,
        price_type=PriceType.RECURRING,
        cancel_at__isnull=True,
        trial_ends_at__gt=after,
        trial_ends_at__lte=until,
    ).exclude(trial_reminder_sent_for=F("trial_ends_at"))
    for pk in trials.values_list("pk", flat=True):
        with transaction.atomic():
            service = Service.objects.select_for_update().get(pk=pk)
            run.trial_reminders += _service_trial_reminder(service, now)

    renewing = Service.objects.filter(
        status__in=[S.ACTIVE, S.GRACE],
        price_type=PriceType.RECURRING,
        cancel_at__isnull=True,
        current_period_end__gt=after,
        current_period_end__lte=until,
    ).exclude(renewal_reminder_sent_for=F("current_period_end"))
    for pk in renewing.values_list("pk", flat=True):
        with transaction.atomic():
            service = Service.objects.select_for_update().get(pk=pk)
            run.renewal_reminders += _service_renewal_reminder(service, now)


@dataclass
class BillingRun:
    cancelled: int = 0
    plan_changes: int = 0
    invoices: int = 0
    grace: int = 0
    suspended: int = 0
    trial_reminders: int = 0
    renewal_reminders: int = 0

    def __str__(self) -> str:
        return (
            f"{self.cancelled} cancelled, {self.plan_changes} plan change(s) applied, "
            f"{self.invoices} invoice(s) issued, {self.grace} entered grace, "
            f"{self.suspended} suspension(s) queued, "
            f"{self.trial_reminders} trial-ending reminder(s) and "
            f"{self.renewal_reminders} renewal reminder(s) sent."
        )


def services_run_billing(*, now: datetime | None = None) -> BillingRun:
    """Everything that happens because time passed; cron runs it, it is safe to run twice.

    Each service is handled in its own transaction holding its row lock, so a
    run never waits on, or undoes, another run or a payment.
    """
    now = now or timezone.now()
    run = BillingRun()
    # Cancellations first: a service ending at its period end is not billed again.
    run.cancelled = services_apply_due_cancellations(now=now)
    # Downgrades next, so the renewal bills the new package.
    due_changes = PlanChange.objects.filter(
        status=PlanChange.Status.SCHEDULED, effective_at__lte=now
    ).values_list("pk", flat=True)
    for pk in due_changes:
        with transaction.atomic():
            run.plan_changes += _plan_change_apply_due(pk, now)

    S = Service.Status
    billable = Service.objects.filter(
        price_type=PriceType.RECURRING, cancel_at__isnull=True
    ).filter(
        Q(status=S.TRIAL, trial_ends_at__lte=now)
        | Q(status__in=[S.ACTIVE, S.GRACE, S.SUSPENDED], current_period_end__lte=now)
    )
    for pk in billable.values_list("pk", flat=True):
        with transaction.atomic():
            service = Service.objects.select_for_update().get(pk=pk)
            if _service_renewal_issue(service, now) is not None:
                run.invoices += 1

    overdue = Service.objects.filter(
        status__in=[S.TRIAL, S.ACTIVE, S.GRACE],
        invoices__status=Invoice.Status.UNPAID,
        invoices__due_at__lte=now,
    ).distinct()
    for pk in overdue.values_list("pk", flat=True):
        with transaction.atomic():
            service = Service.objects.select_for_update().get(pk=pk)
            entered_grace, suspended = _service_overdue(service, now)
            run.grace += entered_grace
            run.suspended += suspended

    _services_send_reminders(run, now)
    return run


# --- plan changes: the package's scaling rules --------------------------------


def prorated_charge(*, difference: Money, start: datetime, end: datetime, now: datetime) -> Money:
    """`difference` × the part of [start, end) still to come, rounded half up to the cent.

    Computed as an exact fraction of microseconds, so no rounding happens before
    the one to cents.
    """
    microsecond = timedelta(microseconds=1)
    total = (end - start) // microsecond
    left = min(max((end - now) // microsecond, 0), total)
    if total <= 0 or difference.amount <= 0:
        return Money(0, difference.currency)
    cents = Fraction(difference.amount) * left * 100 / total
    rounded = math.floor(cents + Fraction(1, 2))
    return Money(Decimal(rounded).scaleb(-2), difference.currency)


def _service_package_amount(service: Service) -> Money:
    if service.package_amount is not None:
        return service.package_amount
    # Services sold before the field existed: the order's own pricing-option line.
    line = service.order.lines.filter(kind=LineKind.PRICE, recurring=True).first()
    return line.unit_amount if line else Money(0, service.currency)


def _scaling_target(service: Service, package: Package | None, customer) -> tuple[Package, Offer]:
    """The target and its same-name offer, or a refusal; the storefront's rules decide."""
    if package is None or not package.pk:
        raise refuse("Choose the package to move to.", "target_required")
    if not PackageScaling.objects.filter(
        from_package_id=service.package_id, to_package_id=package.pk
    ).exists():
        raise refuse("Your service cannot be moved to this package.", "not_a_target")
    target = packages_for_order().get(pk=package.pk)
    refusal = package_refusal(target)
    if refusal is not None:
        raise refuse(refusal.message, refusal.code)
    price = next(
        (p for p in target.prices.all() if p.enabled and p.name == service.price_name), None
    )
    if price is None:
        raise refuse(
            f"“{target.name}” has no “{service.price_name}” pricing option.", "no_same_price"
        )
    sold = offer(price, service.currency)
    if not sold.is_available:
        raise refuse(
            Reason.PRICE_NOT_PRICED.format(name=price.name, currency=service.currency),
            "price_not_in_currency",
        )
    if (price.type, price.time_interval, price.billing_period) != (
        service.price_type,
        service.time_interval,
        service.billing_period,
    ):
        # Proration compares one period with another of the same length.
        raise refuse(
            f"“{target.name}” bills “{price.name}” over another period.", "price_period_differs"
        )
    _check_per_user_limit(target, customer, 1)
    return target, sold


@transaction.atomic
def service_change_package(
    *, service: Service, customer, package: Package | None, now: datetime | None = None
) -> PlanChange:
    """Move a service to one of its package's scaling targets.

    A higher tier applies now and charges the price difference for the rest of
    the period; a lower or equal tier applies when the period ends. Raises
    ValidationError (with a code) and writes nothing when the move is refused.
    """
    now = now or timezone.now()
    # Only the service row: the packages are locked one at a time, for their stock.
    service = (
        Service.objects.select_for_update(of=("self",)).select_related("package").get(pk=service.pk)
    )
    if service.customer_id != customer.pk:
        raise refuse("This is not your service.", "not_owner")
    if service.status != Service.Status.ACTIVE:
        raise refuse("Only an active service can change its package.", "bad_status")
    if (
        service.price_type != PriceType.RECURRING
        or service.current_period_start is None
        or service.current_period_end is None
        or service.current_period_end <= now
    ):
        raise refuse("This service has no billing period running.", "no_period")
    if service.cancel_requested_at is not None:
        raise refuse("This service is being cancelled.", "cancellation_requested")
    if service.plan_changes.filter(status=PlanChange.Status.SCHEDULED).exists():
        raise refuse("A change of package is already scheduled.", "change_scheduled")
    if service.jobs.filter(
        action=ProvisioningJob.Action.CHANGE_PACKAGE, status__in=ProvisioningJob.OPEN_STATUSES
    ).exists():
        raise refuse("A change of package is still under way.", "open_job")

    target, sold = _scaling_target(service, package, customer)
    took_stock = False
    if target.has_stock:
        # As in order_place: the target's row lock, its rules again, then the unit.
        _lock_stock(target)
        refusal = package_refusal(target)
        if refusal is not None:
            raise refuse(refusal.message, refusal.code)
        took_stock = _take_stock(target, 1) > 0

    package_amount = sold.price or Money(0, service.currency)
    recurring_amount = service.recurring_amount - _service_package_amount(service) + package_amount
    upgrade = target.tier > service.package.tier
    change = PlanChange(
        service=service,
        direction=PlanChange.Direction.UPGRADE if upgrade else PlanChange.Direction.DOWNGRADE,
        from_package_id=service.package_id,
        from_package_name=service.package_name,
        to_package=target,
        to_package_name=target.name,
        currency=service.currency,
        recurring_amount=recurring_amount,
        package_amount=package_amount,
        provisioning_options=target.provisioning_options,
        package_settings=target.package_settings,
        took_stock=took_stock,
        charge=Money(0, service.currency),
        effective_at=now if upgrade else service.current_period_end,
    )
    if upgrade:
        change.charge = prorated_charge(
            difference=recurring_amount - service.recurring_amount,
            start=service.current_period_start,
            end=service.current_period_end,
            now=now,
        )
    change.full_clean(exclude=["service", "from_package", "to_package", "invoice"])
    change.save()
    if upgrade:
        if change.charge.amount > 0:
            change.invoice = _service_invoice(
                service=service,
                kind=Invoice.Kind.PLAN_CHANGE,
                description=f"Upgrade to {target.name} until "
                f"{service.current_period_end:%Y-%m-%d} (prorated)",
                amount=change.charge,
                due_at=now,
            )
            change.save(update_fields=["invoice"])
        _plan_change_apply(change, service, now)
    return change


def _plan_change_apply(change: PlanChange, service: Service, now: datetime) -> None:
    """The service becomes the target package; call it holding the service's lock."""
    if service.took_stock:
        _release_stock(package_id=service.package_id, units=1)
    service.took_stock = change.took_stock
    service.package_id = change.to_package_id
    service.package_name = change.to_package_name
    service.recurring_amount = change.recurring_amount
    service.package_amount = change.package_amount
    service.provisioning_options = change.provisioning_options
    service.package_settings = change.package_settings
    service.save()
    change.status = PlanChange.Status.APPLIED
    change.applied_at = now
    change.save(update_fields=["status", "applied_at"])
    notify_service(
        NotificationEvent.PACKAGE_CHANGED, service, from_package=change.from_package_name
    )
    # A change still waiting to run is superseded: the new job carries the latest package.
    provisioning_job_cancel_open(service=service, action=ProvisioningJob.Action.CHANGE_PACKAGE)
    provisioning_job_enqueue(
        service=service,
        action=ProvisioningJob.Action.CHANGE_PACKAGE,
        payload={
            "plan_change": change.pk,
            "from_package": change.from_package_name,
            "to_package": change.to_package_name,
        },
    )


def _plan_change_cancel(change: PlanChange, now: datetime) -> None:
    if change.took_stock:
        _release_stock(package_id=change.to_package_id, units=1)
    change.status = PlanChange.Status.CANCELLED
    change.cancelled_at = now
    change.took_stock = False
    change.save(update_fields=["status", "cancelled_at", "took_stock"])


def _plan_change_apply_due(pk: int, now: datetime) -> int:
    """Apply a scheduled downgrade whose time has come; 1 when applied."""
    change = PlanChange.objects.select_for_update().get(pk=pk)
    service = Service.objects.select_for_update().get(pk=change.service_id)
    if change.status != PlanChange.Status.SCHEDULED or change.effective_at > now:
        return 0
    if not service.is_live:
        _plan_change_cancel(change, now)
        return 0
    if service.jobs.filter(
        action=ProvisioningJob.Action.CHANGE_PACKAGE, status=ProvisioningJob.Status.RUNNING
    ).exists():
        return 0  # the next run applies it, once the provider has finished the last change
    _plan_change_apply(change, service, now)
    return 1


@transaction.atomic
def plan_change_cancel(*, change: PlanChange, customer) -> PlanChange:
    """A customer drops a scheduled downgrade; its reserved unit goes back to stock."""
    change = PlanChange.objects.select_for_update().select_related("service").get(pk=change.pk)
    if change.service.customer_id != customer.pk:
        raise refuse("This is not your service.", "not_owner")
    if change.status != PlanChange.Status.SCHEDULED:
        raise refuse("Only a scheduled change can be dropped.", "not_scheduled")
    _plan_change_cancel(change, timezone.now())
    return change
