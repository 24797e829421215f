"""What customers buy: orders, invoices, services and provisioning jobs.

Every row that carries money snapshots the amounts, the currency and the names
it was sold with, so editing the catalog later never changes what was bought.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeAlias

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models
from django.db.models import F, Q
from django_countries import countries
from django_countries.fields import CountryField

from catalog.availability import Offer, scaling_offer
from catalog.errors import ErrorCode, Refusal
from catalog.fields import MoneyField
from catalog.models import Package, PriceType

# Who buys: the project's user model. AUTH_USER_MODEL is Django's default, so
# this is User; were the user model swapped, this alias is the one place to change.
Customer: TypeAlias = User

MONEY = {"max_digits": 12, "decimal_places": 2}


class Order(models.Model):
    class Status(models.TextChoices):
        AWAITING_PAYMENT = "awaiting_payment", "Awaiting payment"
        PAID = "paid", "Paid"
        CANCELLED = "cancelled", "Cancelled"

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.AWAITING_PAYMENT
    )
    # Lets a double-submitted checkout find the order it already placed.
    checkout_token = models.CharField(max_length=64, blank=True)

    # what was bought, as it was sold
    package = models.ForeignKey("catalog.Package", on_delete=models.PROTECT, related_name="+")
    package_name = models.CharField(max_length=120)
    package_price = models.ForeignKey(
        "catalog.PackagePrice", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    price_name = models.CharField(max_length=100)
    price_type = models.CharField(max_length=10)
    period_label = models.CharField(max_length=40, blank=True)
    quantity = models.PositiveIntegerField(default=1)
    currency = models.CharField(max_length=3)
    total = MoneyField(**MONEY, help_text="Charged on the order's invoice.")
    recurring_total = MoneyField(**MONEY, help_text="Charged every period afterwards.")
    checkout_fields = models.JSONField(default=dict, blank=True)
    # Units taken from the package's stock (less than quantity when oversold).
    stock_taken = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="%(app_label)s_%(class)s_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(total__gte=0) & Q(recurring_total__gte=0),
                name="%(app_label)s_%(class)s_totals_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(total_currency=F("currency"))
                & Q(recurring_total_currency=F("currency")),
                name="%(app_label)s_%(class)s_one_currency",
            ),
            models.UniqueConstraint(
                fields=["customer", "checkout_token"],
                condition=~Q(checkout_token=""),
                name="%(app_label)s_%(class)s_checkout_token_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_recurring(self) -> bool:
        return self.price_type == PriceType.RECURRING

    @property
    def number(self) -> str:
        return f"ORD-{self.pk:06d}" if self.pk else "ORD-new"


class LineKind(models.TextChoices):
    PRICE = "price", "Price"
    VARIANT = "variant", "Variant option"
    SETUP_FEE = "setup_fee", "Setup fee"
    SIGNUP_FEE = "signup_fee", "Signup fee"
    # Usage beyond a quota in the period that ended, billed on the next renewal invoice.
    OVERAGE = "overage", "Overage"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(max_length=12, choices=LineKind.choices)
    description = models.CharField(max_length=255)
    variant_code = models.CharField(max_length=64, blank=True)
    option_value = models.CharField(max_length=255, blank=True)
    unit_amount = MoneyField(**MONEY)
    quantity = models.PositiveIntegerField(default=1)
    amount = MoneyField(**MONEY)
    recurring = models.BooleanField(default=False, help_text="Charged again every period.")
    due_now = models.BooleanField(default=True, help_text="Charged on the order's invoice.")
    sort_order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(unit_amount__gte=0) & Q(amount__gte=0),
                name="%(app_label)s_%(class)s_amounts_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.description


class InvoiceQuerySet(models.QuerySet):
    def of_service(self, service_id: int):
        """Invoices with a line for the service: its renewals and plan changes."""
        return self.filter(
            pk__in=InvoiceLine.objects.filter(service_id=service_id).values("invoice")
        )


class Invoice(models.Model):
    class Status(models.TextChoices):
        UNPAID = "unpaid", "Unpaid"
        PAID = "paid", "Paid"
        CANCELLED = "cancelled", "Cancelled"

    class Kind(models.TextChoices):
        ORDER = "order", "Order"
        RENEWAL = "renewal", "Renewal"
        PLAN_CHANGE = "plan_change", "Plan change"

    # Given when the invoice is issued (subscriptions.invoicing.invoice_issue): gapless per year.
    number = models.CharField(max_length=40, blank=True, editable=False)
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="invoices"
    )
    # Indexed where set (Meta.indexes): a renewal, most invoices, has neither.
    order = models.ForeignKey(
        Order,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoices",
        db_index=False,
    )
    # A plan change bills one service; an order's invoice bills the order; a
    # renewal bills every service of its customer due that day, one line each
    # (InvoiceLine.service), and leaves this empty.
    service = models.ForeignKey(
        "Service",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="invoices",
        db_index=False,
    )
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.ORDER)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNPAID)
    currency = models.CharField(max_length=3)
    total = MoneyField(**MONEY)
    issued_at = models.DateTimeField(auto_now_add=True)
    due_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # The "Billed to" block as it was when the invoice was issued. Written only when the
    # customer changes their billing details or email (subscriptions.accounts):
    # until then the customer's current details are those of the issue, and issuing
    # costs no read of them.
    bill_to = models.JSONField(null=True, blank=True, editable=False)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-issued_at", "-id"]
        # The billing run looks for unpaid invoices that fell due.
        indexes = [
            models.Index(
                fields=["due_at"],
                condition=Q(status="unpaid"),
                name="invoice_unpaid_due",
            ),
            # Only where set: a billing run writes thousands of renewals, which have neither.
            models.Index(fields=["order"], condition=Q(order__isnull=False), name="invoice_order"),
            models.Index(
                fields=["service"], condition=Q(service__isnull=False), name="invoice_service"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(total__gte=0), name="%(app_label)s_%(class)s_total_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(total_currency=F("currency")),
                name="%(app_label)s_%(class)s_one_currency",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["order", "renewal"]) | Q(service__isnull=False),
                name="%(app_label)s_%(class)s_service_invoice_has_service",
            ),
            models.UniqueConstraint(
                fields=["number"],
                condition=~Q(number=""),
                name="%(app_label)s_%(class)s_number_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.number or "INV-new"

    @property
    def is_unpaid(self) -> bool:
        return self.status == self.Status.UNPAID


class InvoiceNumberCounter(models.Model):
    """The last invoice number given in a year; its row is locked while a number is taken.

    The counter moves in the transaction that issues the invoice, so a rolled
    back invoice gives its number back and the sequence has no gaps.
    """

    year = models.PositiveSmallIntegerField(primary_key=True)
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last_number}"


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(max_length=12, choices=LineKind.choices)
    description = models.CharField(max_length=255)
    unit_amount = MoneyField(**MONEY)
    quantity = models.PositiveIntegerField(default=1)
    amount = MoneyField(**MONEY)
    sort_order = models.PositiveIntegerField(default=0)
    # The service a renewal or plan-change line bills, and a renewal's period:
    # paying the invoice moves each of its services on to its line's period.
    service = models.ForeignKey(
        "Service", on_delete=models.PROTECT, null=True, blank=True, related_name="invoice_lines"
    )
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["sort_order", "id"]
        constraints = [
            # Billing runs that overlap (cron, a retry) must never bill a period twice.
            models.UniqueConstraint(
                fields=["service", "period_start"],
                condition=Q(kind="price", period_start__isnull=False),
                name="%(app_label)s_%(class)s_one_line_per_period",
            ),
        ]

    def __str__(self) -> str:
        return self.description


class ServiceQuerySet(models.QuerySet):
    def live(self):
        """Services that count against a package's per-user limit."""
        return self.filter(status__in=Service.LIVE_STATUSES)

    def trial_reminder_due(self, *, after: datetime, until: datetime):
        """Trials ending in (after, until] whose customer has not been reminded of that end.

        A trial cancelled at its end gets none: nothing is billed after it.
        """
        return self.filter(
            status=Service.Status.TRIAL,
            price_type=PriceType.RECURRING,
            cancel_at__isnull=True,
            trial_ends_at__gt=after,
            trial_ends_at__lte=until,
        ).exclude(trial_reminder_sent_for=F("trial_ends_at"))

    def renewal_reminder_due(self, *, after: datetime, until: datetime):
        """Services that will renew at a period end in (after, until], not yet reminded of it.

        Only a service that will renew: running (active, or in grace for another
        invoice) and not cancelling at the period end.
        """
        return self.filter(
            status__in=[Service.Status.ACTIVE, Service.Status.GRACE],
            price_type=PriceType.RECURRING,
            cancel_at__isnull=True,
            current_period_end__gt=after,
            current_period_end__lte=until,
        ).exclude(renewal_reminder_sent_for=F("current_period_end"))


class Service(models.Model):
    """One unit of a package a customer bought: a subscription with a lifecycle."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        TRIAL = "trial", "Trial"
        ACTIVE = "active", "Active"
        GRACE = "grace", "Grace period"
        SUSPENDED = "suspended", "Suspended"
        CANCELLED = "cancelled", "Cancelled"
        TERMINATED = "terminated", "Terminated"

    class CancelMode(models.TextChoices):
        IMMEDIATE = "immediate", "Immediately"
        PERIOD_END = "period_end", "At the end of the period"

    LIVE_STATUSES = (
        Status.PENDING,
        Status.TRIAL,
        Status.ACTIVE,
        Status.GRACE,
        Status.SUSPENDED,
    )

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # No index of its own: the (customer, package, status) index below starts with it, and
    # every service a billing run bills or puts in grace is updated in every index it has.
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="services", db_index=False
    )
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="services")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)

    # snapshot of what was bought
    package = models.ForeignKey("catalog.Package", on_delete=models.PROTECT, related_name="+")
    package_name = models.CharField(max_length=120)
    price_name = models.CharField(max_length=100)
    price_type = models.CharField(max_length=10)
    time_interval = models.PositiveSmallIntegerField(null=True, blank=True)
    billing_period = models.CharField(max_length=5, blank=True)
    currency = models.CharField(max_length=3)
    recurring_amount = MoneyField(**MONEY, help_text="Charged every period for this unit.")
    # The pricing option's part of recurring_amount (the rest is variant options):
    # a plan change swaps this part and keeps the variants' prices as sold.
    package_amount = MoneyField(**MONEY, null=True, blank=True)
    variants = models.JSONField(
        default=list, blank=True, help_text="[{code, name, option, value}] as chosen."
    )
    checkout_fields = models.JSONField(default=dict, blank=True)
    trial_period = models.PositiveIntegerField(default=0)
    trial_interval = models.CharField(max_length=5, blank=True)
    trial_mode = models.CharField(max_length=10, blank=True)
    grace_period = models.PositiveIntegerField(default=0)
    grace_interval = models.CharField(max_length=5, blank=True)

    # provisioning
    provider_instance = models.ForeignKey(
        "provisioning.ProviderInstance",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="services",
    )
    provisioning_options = models.JSONField(default=dict, blank=True)
    package_settings = models.JSONField(default=dict, blank=True)
    # The package's quotas as sold (see `subscriptions.quotas.quota_snapshot`): a later
    # catalog edit changes neither what is included nor what an overage costs.
    quotas = models.JSONField(
        default=list,
        blank=True,
        help_text="[{code, name, unit, limit (null: unlimited), overage_price (null: none)}]",
    )
    overages_enabled = models.BooleanField(
        default=False, help_text="Usage beyond a quota is billed; otherwise the limit is hard."
    )
    remote_id = models.CharField(max_length=255, blank=True)
    needs_attention = models.BooleanField(default=False)
    provisioning_error = models.TextField(blank=True)
    took_stock = models.BooleanField(
        default=False, help_text="Holds a unit of stock, given back if it ends before activation."
    )

    # lifecycle
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    trial_started_at = models.DateTimeField(null=True, blank=True)
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    # The start of the first paid period: every period boundary is counted from
    # it, so a service started on the 31st renews on the last day of short months
    # and on the 31st again after them.
    billing_anchor = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Periods end on this day of the month (of the year for yearly options), "
        "or the month's last day when it is shorter.",
    )
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    # When the next period not yet invoiced falls due (the trial end, then each
    # period end): the billing run selects services by it. Empty while that
    # period's invoice is unpaid, and for services that are not billed again.
    next_bill_at = models.DateTimeField(null=True, blank=True, editable=False)
    next_due_at = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    grace_ends_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_mode = models.CharField(max_length=10, choices=CancelMode.choices, blank=True)
    cancel_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    terminated_at = models.DateTimeField(null=True, blank=True)
    # Dunning's last step: a service suspended for an unpaid invoice ends then
    # (BILLING_TERMINATE_AFTER_DAYS); the billing run sets it, unsuspending clears it.
    terminates_at = models.DateTimeField(null=True, blank=True)
    # reminders the billing run sent: the trial end and the period end each was for
    trial_reminder_sent_for = models.DateTimeField(null=True, blank=True, editable=False)
    renewal_reminder_sent_for = models.DateTimeField(null=True, blank=True, editable=False)
    termination_warning_sent_for = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ServiceQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("run_billing", "Can run the billing now")]
        indexes = [
            models.Index(fields=["customer", "package", "status"]),
            models.Index(
                fields=["next_bill_at"],
                condition=Q(next_bill_at__isnull=False),
                name="service_next_bill_at",
            ),
            # Dunning's steps (billing.services_terminate_unpaid) read the suspended services,
            # a few among all: planned with the statistics of before a run that billed
            # thousands, each step scanned every service (0.5 s at 100,000, three steps a
            # run). Only suspended rows are in it, so a billing run's updates pass it by.
            models.Index(fields=["id"], condition=Q(status="suspended"), name="service_suspended"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(recurring_amount__gte=0),
                name="%(app_label)s_%(class)s_amount_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(recurring_amount_currency=F("currency")),
                name="%(app_label)s_%(class)s_one_currency",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.package_name} #{self.pk}"

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE_STATUSES

    @property
    def is_recurring(self) -> bool:
        return self.price_type == PriceType.RECURRING

    def cancellation_refusal(self) -> Refusal | None:
        """Why the customer may not ask to cancel now; None when they may."""
        if not self.package.allow_cancellation:
            return Refusal(
                ErrorCode.CANCELLATION_NOT_ALLOWED,
                "This package cannot be cancelled by customers; contact us.",
            )
        if self.cancel_requested_at is not None:
            return Refusal(
                ErrorCode.CANCELLATION_REQUESTED, "You have already asked to cancel this service."
            )
        if not self.is_live:
            return Refusal(ErrorCode.SERVICE_ENDED, "This service has already ended.")
        return None

    def scaling_offer(self, target: Package) -> Offer | Refusal:
        """What this service would pay on `target`, or why it cannot move there.

        The service page offers, and the plan-change service accepts, by this rule.
        """
        return scaling_offer(
            target,
            price_name=self.price_name,
            price_type=self.price_type,
            time_interval=self.time_interval,
            billing_period=self.billing_period,
            currency=self.currency,
        )

    def package_change_refusal(self, now: datetime) -> Refusal | None:
        """Why the service may not change package now, by its own fields; None when it may."""
        if self.status != self.Status.ACTIVE:
            return Refusal(ErrorCode.BAD_STATUS, "Only an active service can change its package.")
        if (
            not self.is_recurring
            or self.current_period_start is None
            or self.current_period_end is None
            or self.current_period_end <= now
        ):
            return Refusal(ErrorCode.NO_PERIOD, "This service has no billing period running.")
        if self.cancel_requested_at is not None:
            return Refusal(ErrorCode.CANCELLATION_REQUESTED, "This service is being cancelled.")
        return None

    def paid_until(self, now: datetime) -> datetime | None:
        """The end of the trial or paid period running at `now`; None when none runs (not yet
        started, or unpaid in grace or suspension). Closing an account ends a service then."""
        if self.status == self.Status.TRIAL:
            end = self.trial_ends_at or self.current_period_end
        elif self.status == self.Status.ACTIVE:
            end = self.current_period_end
        else:
            return None
        return end if end is not None and end > now else None

    @property
    def next_payment_due(self) -> datetime | None:
        """When the customer next pays for this service: never for one that ended or is set
        to end, nor for one that is not billed again."""
        if not self.is_live or self.cancel_at is not None or not self.is_recurring:
            return None
        return self.next_due_at

    @property
    def variants_map(self) -> dict[str, str]:
        """What plugins receive: variant code → chosen option's value."""
        return {item["code"]: item["value"] for item in self.variants}


class CustomerProfile(models.Model):
    """Who the customer is, for their invoices: name, company, address, country, VAT id."""

    customer = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    name = models.CharField(max_length=200, blank=True)
    company = models.CharField(max_length=200, blank=True)
    address = models.TextField(
        blank=True, max_length=500, help_text="Street, postcode and city, as on a letter."
    )
    country = CountryField(blank=True)
    vat_id = models.CharField(
        "VAT id",
        max_length=32,
        blank=True,
        help_text="With its country prefix, e.g. DE123456789, when you buy as a business.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name or self.company or str(self.customer)

    def clean(self) -> None:
        # Stored without spaces or dots, as tax authorities print and check it.
        self.vat_id = "".join(ch for ch in self.vat_id.upper() if ch.isalnum())

    @property
    def bill_to_lines(self) -> list[str]:
        """The invoice's bill-to block, line by line, leaving out what is empty."""
        lines = [self.name, self.company, *self.address.splitlines()]
        if self.country:
            lines.append(str(countries.name(str(self.country))))
        if self.vat_id:
            lines.append(f"VAT id {self.vat_id}")
        return [line.strip() for line in lines if line and line.strip()]


class PlanChange(models.Model):
    """A move of a service to one of its package's scaling targets.

    An upgrade applies when requested, with a prorated charge; a downgrade is
    scheduled for the end of the period. The target's unit of stock is taken
    when the change is requested, so a scheduled downgrade cannot find it sold out.
    """

    class Direction(models.TextChoices):
        UPGRADE = "upgrade", "Upgrade"
        DOWNGRADE = "downgrade", "Downgrade"

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        APPLIED = "applied", "Applied"
        CANCELLED = "cancelled", "Cancelled"

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="plan_changes")
    direction = models.CharField(max_length=10, choices=Direction.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    from_package = models.ForeignKey("catalog.Package", on_delete=models.PROTECT, related_name="+")
    from_package_name = models.CharField(max_length=120)
    to_package = models.ForeignKey("catalog.Package", on_delete=models.PROTECT, related_name="+")
    to_package_name = models.CharField(max_length=120)
    currency = models.CharField(max_length=3)
    # what the service is charged every period after the change, as sold now
    recurring_amount = MoneyField(**MONEY)
    package_amount = MoneyField(**MONEY)
    provisioning_options = models.JSONField(default=dict, blank=True)
    package_settings = models.JSONField(default=dict, blank=True)
    # The target's quotas as sold when the change was asked for; they apply from the change.
    quotas = models.JSONField(default=list, blank=True)
    overages_enabled = models.BooleanField(default=False)
    took_stock = models.BooleanField(default=False)
    charge = MoneyField(**MONEY, help_text="Prorated charge of an upgrade.")
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    effective_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["service"],
                condition=Q(status="scheduled"),
                name="%(app_label)s_%(class)s_one_scheduled_per_service",
            ),
            models.CheckConstraint(
                condition=Q(recurring_amount__gte=0) & Q(package_amount__gte=0) & Q(charge__gte=0),
                name="%(app_label)s_%(class)s_amounts_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(recurring_amount_currency=F("currency"))
                & Q(package_amount_currency=F("currency"))
                & Q(charge_currency=F("currency")),
                name="%(app_label)s_%(class)s_one_currency",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.from_package_name} → {self.to_package_name}"


class ProvisioningJobQuerySet(models.QuerySet):
    def lost(self, now):
        """Running jobs whose lease ran out: their worker stopped without finishing them."""
        return self.filter(status=ProvisioningJob.Status.RUNNING, lease_expires_at__lt=now)


class ProvisioningJob(models.Model):
    """One provider call for one change of a service, run by a background task.

    The row, not the task, is the unit of work: a task run claims it with a
    conditional update, so running the task twice never calls the provider
    twice, and its idempotency key goes to the provider with every attempt.
    """

    class Action(models.TextChoices):
        CREATE = "create", "Create"
        SUSPEND = "suspend", "Suspend"
        UNSUSPEND = "unsuspend", "Unsuspend"
        TERMINATE = "terminate", "Terminate"
        RENEW = "renew", "Renew"
        CHANGE_PACKAGE = "change_package", "Change package"
        # Tell the provider a quota is used up (overages off): it enforces the limit.
        LIMIT = "limit", "Limit reached"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        WAITING = "waiting", "Waiting for staff"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (needs attention)"
        CANCELLED = "cancelled", "Cancelled"

    OPEN_STATUSES = (Status.QUEUED, Status.RUNNING, Status.WAITING, Status.FAILED)
    # Open but not with a worker: these may be dropped without waiting for anyone.
    NOT_STARTED_STATUSES = (Status.QUEUED, Status.WAITING, Status.FAILED)

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="jobs")
    action = models.CharField(max_length=20, choices=Action.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    payload = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    result_message = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True, help_text="The latest queued task.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A running job is leased to the worker that claimed it. A worker that
    # dies (killed, out of memory, its machine gone) cannot say so: when the
    # lease runs out the sweeper queues the job again, and the token fences
    # off a worker that was only slow, so it cannot record a late outcome.
    lease_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="While running: when the job counts as lost if its worker has not finished.",
    )
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    workers_lost = models.PositiveIntegerField(
        default=0, help_text="Times the worker running this job stopped before it finished."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ProvisioningJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One open change of each kind per service: a second “create” or
            # “terminate” while one is under way would act twice.
            models.UniqueConstraint(
                fields=["service", "action"],
                # OPEN_STATUSES, spelled out: Meta cannot read the class body.
                condition=Q(status__in=["queued", "running", "waiting", "failed"]),
                name="%(app_label)s_%(class)s_one_open_per_action",
            ),
            models.CheckConstraint(
                condition=~Q(status="running")
                | Q(lease_expires_at__isnull=False, lease_token__isnull=False),
                name="%(app_label)s_%(class)s_running_has_lease",
                violation_error_message="A running job must have a lease.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.service}"


class ScheduledPriceChange(models.Model):
    """Staff moved a service to its option's new price, from the renewal at `effective_at`.

    The billing run charges `recurring_amount` for periods starting at or after
    `effective_at` (subscriptions.price_changes) and then applies it to the service.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="price_changes")
    currency = models.CharField(max_length=3)
    recurring_amount = MoneyField(**MONEY, help_text="The new amount per period for this unit.")
    package_amount = MoneyField(**MONEY, help_text="The pricing option's part of it.")
    effective_at = models.DateTimeField(help_text="Start of the first period at the new price.")
    notice_sent_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["effective_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["service"],
                condition=Q(applied_at__isnull=True),
                name="%(app_label)s_%(class)s_one_pending_per_service",
            ),
            models.CheckConstraint(
                condition=Q(recurring_amount__gte=0) & Q(package_amount__gte=0),
                name="%(app_label)s_%(class)s_amount_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(recurring_amount_currency=F("currency"))
                & Q(package_amount_currency=F("currency")),
                name="%(app_label)s_%(class)s_one_currency",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.service}: {self.recurring_amount} from {self.effective_at:%Y-%m-%d}"


class UsageRecord(models.Model):
    """Usage of one of a service's quotas, reported once per idempotency key."""

    class Source(models.TextChoices):
        PROVIDER = "provider", "Provider"
        STAFF = "staff", "Staff"
        IMPORT = "import", "CSV import"

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="usage_records")
    # The quota's code as the service's snapshot has it (`Service.quotas`): the
    # snapshot, not the catalog, says what a service has.
    quota_code = models.SlugField(max_length=64)
    quantity = models.DecimalField(max_digits=20, decimal_places=6)
    occurred_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=Source.choices)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["service", "occurred_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "idempotency_key"],
                name="%(app_label)s_%(class)s_one_per_key",
                violation_error_message="This service already has usage with this key.",
            ),
            models.CheckConstraint(
                condition=Q(quantity__gt=0),
                name="%(app_label)s_%(class)s_quantity_positive",
                violation_error_message="A usage quantity must be above zero.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} {self.quota_code} on {self.service}"


class QuotaAlert(models.Model):
    """A quota reached with overages off: the customer and provider are told once a period."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="quota_alerts")
    quota_code = models.SlugField(max_length=64)
    period_start = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["service", "quota_code", "period_start"],
                name="%(app_label)s_%(class)s_once_per_period",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quota_code} reached on {self.service}"


class ServiceEvent(models.Model):
    """One thing that happened to a service, appended where it happened, never changed.

    The service console's timeline reads these rows as they were written: it is
    not rebuilt from invoices, jobs and payments, whose rows move on.
    """

    class Kind(models.TextChoices):
        ORDERED = "ordered", "Ordered"
        STATUS_CHANGED = "status_changed", "Status changed"
        JOB_QUEUED = "job_queued", "Provider job queued"
        JOB_ATTEMPT = "job_attempt", "Provider job attempt"
        JOB_WAITING = "job_waiting", "Provider job waiting for staff"
        JOB_SUCCEEDED = "job_succeeded", "Provider job succeeded"
        JOB_FAILED = "job_failed", "Provider job failed"
        INVOICE_ISSUED = "invoice_issued", "Invoice issued"
        PAYMENT_RECEIVED = "payment_received", "Payment received"
        EMAIL_SENT = "email_sent", "Email queued"
        PLAN_CHANGED = "plan_changed", "Plan changed"
        PLAN_CHANGE_SCHEDULED = "plan_change_scheduled", "Plan change scheduled"
        CANCELLATION_SCHEDULED = "cancellation_scheduled", "Cancellation scheduled"
        STAFF_ACTION = "staff_action", "Staff action"

    # No index of its own: the (service, -created_at, -id) index below starts with it, and a
    # billing run appends tens of thousands of events, each paying for every index.
    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    message = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)
    # Indexed only where set (below): what the system writes, a billing run's events, has none.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        help_text="The staff user or customer who did it; empty for the system.",
    )
    # No index of its own: the timeline reads by service (the index below), the admin's list
    # of every event by id, the order they were written in.
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["service", "-created_at", "-id"]),
            # Deleting a user sets their events' actor to NULL: found by this index.
            models.Index(
                fields=["actor"],
                condition=Q(actor__isnull=False),
                name="serviceevent_actor",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message}"
