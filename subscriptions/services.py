"""Writes customers, staff and jobs make: orders, invoices, payments, service lifecycle.

The order service trusts nothing the checkout form posted: every rule is
checked again here, with the storefront's own rule functions, so a customer
is refused exactly what the package page would not offer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Prefetch, Q
from django.utils import timezone
from djmoney.money import Money

from catalog.models import (
    NotificationEvent,
    Package,
    PackagePrice,
    PackageQuerySet,
    PriceType,
    Variant,
    VariantOption,
)
from provisioning.registry import get_plugin
from storefront.currency import is_store_currency
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

from .invoicing import invoice_issue
from .jobs import provisioning_job_cancel_open, provisioning_job_enqueue
from .models import (
    Invoice,
    InvoiceLine,
    LineKind,
    Order,
    OrderLine,
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
            **_line_fields(line, number),
            variant_code=line.variant_code,
            option_value=line.option_value,
            recurring=line.recurring,
            due_now=line.due_now,
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
        InvoiceLine(invoice=invoice, **_line_fields(line, number))
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

    invoice_issue(invoice=invoice)
    notify_order_placed(order=order, invoice=invoice, package=package)
    if invoice.total.amount == 0:
        invoice_settle(invoice, order)
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


def invoice_settle(invoice: Invoice, order: Order | None = None) -> None:
    """The invoice is paid in full: its order is paid, or its service's period moves on.

    Called by payments.services.payment_record holding the invoice's row lock.
    """
    invoice.status = Invoice.Status.PAID
    invoice.paid_at = timezone.now()
    invoice.save(update_fields=["status", "paid_at"])
    if invoice.service_id:
        _service_invoice_paid(invoice)
    elif invoice.order_id:
        order = order or Order.objects.select_for_update().get(pk=invoice.order_id)
        if order.status == Order.Status.AWAITING_PAYMENT:
            _order_mark_paid(order)


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


# --- invoices a service is billed: issued by billing and plan changes, settled here ---


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
    invoice_issue(invoice=invoice)
    notify_invoice(NotificationEvent.INVOICE_CREATED, invoice)
    if amount.amount == 0:
        invoice_settle(invoice)
    return invoice


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


# --- a scheduled plan change dropped: by its customer, or as its service ends ---


def _plan_change_cancel(change: PlanChange, now: datetime) -> None:
    if change.took_stock:
        _release_stock(package_id=change.to_package_id, units=1)
    change.status = PlanChange.Status.CANCELLED
    change.cancelled_at = now
    change.took_stock = False
    change.save(update_fields=["status", "cancelled_at", "took_stock"])
