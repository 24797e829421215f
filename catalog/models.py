"""What a store sells: catalogs, packages, pricing options, variants, features, quotas."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.dispatch import Signal
from django.urls import reverse
from django.utils.text import slugify
from djmoney.money import Money
from simple_history.models import HistoricalRecords
from ulid import ULID

from catalog.fields import MoneyField
from catalog.relations import related_objects

if TYPE_CHECKING:
    from django.db.models.fields.related_descriptors import RelatedManager
from provisioning.plugins.base import form_error_messages
from provisioning.service_types import ServiceType

from .fields import IconValidator, SanitizedHTMLField, validate_key_values
from .text import plural

UNLIMITED = -1


def new_ulid() -> str:
    return str(ULID())


class Interval(models.TextChoices):
    DAY = "day", "day"
    WEEK = "week", "week"
    MONTH = "month", "month"
    YEAR = "year", "year"


# Rough lengths, only used to bound what staff may type for trials and grace.
APPROX_DAYS = {Interval.DAY: 1, Interval.WEEK: 7, Interval.MONTH: 31, Interval.YEAR: 366}
MAX_TRIAL_DAYS = 366
MAX_GRACE_DAYS = 93


class NotificationEvent(models.TextChoices):
    """The lifecycle notices a package may send to its customers."""

    ORDER_PLACED = "order_placed", "Order placed"
    SERVICE_ACTIVATED = "service_activated", "Service activated"
    TRIAL_STARTED = "trial_started", "Trial started"
    TRIAL_ENDING = "trial_ending", "Trial ending soon"
    INVOICE_CREATED = "invoice_created", "Invoice created"
    PAYMENT_RECEIVED = "payment_received", "Payment received"
    RENEWAL_DUE = "renewal_due", "Renewal due"
    PAYMENT_OVERDUE = "payment_overdue", "Payment overdue"
    SERVICE_SUSPENDED = "service_suspended", "Service suspended"
    SERVICE_UNSUSPENDED = "service_unsuspended", "Service unsuspended"
    SERVICE_CANCELLED = "service_cancelled", "Service cancelled"
    TERMINATION_WARNING = "termination_warning", "Termination warning (unpaid, suspended)"
    SERVICE_TERMINATED = "service_terminated", "Service terminated"
    PACKAGE_CHANGED = "package_changed", "Package changed (upgrade/downgrade)"
    PRICE_CHANGE = "price_change", "Price change notice"
    QUOTA_REACHED = "quota_reached", "Quota reached"


def validate_notification_preferences(value) -> None:
    if not isinstance(value, list):
        raise ValidationError("Notification preferences must be a list of events.")
    unknown = sorted(set(map(str, value)) - set(NotificationEvent.values))
    if unknown:
        raise ValidationError(
            "Unknown notification event(s): %(events)s.", params={"events": ", ".join(unknown)}
        )


def default_notification_preferences() -> list[str]:
    return list(NotificationEvent.values)


def icon_upload_to(instance, filename: str) -> str:
    return f"icons/{type(instance).__name__.lower()}/{filename}"


def fill_slug(instance) -> None:
    # clean() calls this as well as save(): the slug-uniqueness check must see
    # the slug that will be stored.
    if not instance.slug and instance.name:
        instance.slug = slugify(instance.name)[:120]


class Catalog(models.Model):
    class Status(models.TextChoices):
        VISIBLE = "visible", "Visible (listed in the store)"
        HIDDEN = "hidden", "Hidden (reachable by its link only)"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=120, unique=True, blank=True)
    description = SanitizedHTMLField(blank=True, help_text="HTML allowed; scripts are removed.")
    icon = models.ImageField(upload_to=icon_upload_to, blank=True, validators=[IconValidator()])
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.VISIBLE)
    sort_order = models.IntegerField(default=0)

    history = HistoricalRecords()

    class Meta:
        ordering = ["sort_order", "name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        fill_slug(self)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        fill_slug(self)


# The one definition of "sold out": stock is tracked, none is left, and orders may not
# go past zero. Stock never goes below zero (-1 is "not tracked"), so zero is the test.
SOLD_OUT = Q(stock_qty=0, oversell_enabled=False)


def is_sold_out(stock_qty: int, oversell_enabled: bool) -> bool:
    """SOLD_OUT, for values already read (a locked row, a page's stock read per request)."""
    return stock_qty == 0 and not oversell_enabled


# Sent after QuerySet.update() changed packages, which sends no post_save: stock
# is written that way under row locks, and the storefront's page cache must know.
# `fields` names the columns written, so a reader may tell a stock count from an edit.
packages_updated = Signal()
# Sent when a package sells out or comes back in stock (catalog.stock): what depends
# on "can it be ordered" (scaling targets, a catalog's "from" price) changes then,
# while the count alone changes on every order.
sold_out_changed = Signal()
# Staff saved new amounts on pricing options: sent by the package admin with
# `package` and `changed` [(option, currency)]; a receiver may answer with the
# URL of a page that asks what existing services should do.
price_amounts_changed = Signal()


class PackageQuerySet(models.QuerySet):
    def update(self, **kwargs) -> int:
        rows = super().update(**kwargs)
        if rows:
            packages_updated.send(sender=self.model, fields=frozenset(kwargs))
        return rows

    def active(self):
        return self.filter(status=Package.Status.ACTIVE)

    def listed(self):
        """Packages shown in catalog listings."""
        return self.active().filter(hidden=False, retired=False)

    def sold_out(self):
        return self.filter(SOLD_OUT)


class Package(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"

    class TrialMode(models.TextChoices):
        OUTSIDE = "outside", "Outside: free trial before the first paid period"
        INSIDE = "inside", "Inside: the trial is the start of the first paid period"

    class Quantity(models.TextChoices):
        SINGLE = "single", "Single (one unit per order)"
        MULTIPLE = "multiple", "Multiple (customers choose a quantity)"

    # identity
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    ulid = models.CharField(max_length=26, default=new_ulid, unique=True, editable=False)

    # summary
    catalog = models.ForeignKey(Catalog, on_delete=models.PROTECT, related_name="packages")
    name = models.CharField(max_length=120)
    slug = models.SlugField(
        max_length=120,
        blank=True,
        help_text="Used in the package's URL; unique within its catalog. "
        "Left empty, it is made from the name.",
    )
    service_type = models.CharField(max_length=20, choices=ServiceType.choices)
    description = SanitizedHTMLField(blank=True, help_text="HTML allowed; scripts are removed.")
    short_description = models.CharField(max_length=255, blank=True)
    icon = models.ImageField(upload_to=icon_upload_to, blank=True, validators=[IconValidator()])
    tier = models.PositiveSmallIntegerField(
        default=1,
        validators=[
            MinValueValidator(0, "Tier must be 0 or more."),
            MaxValueValidator(1000, "Tier must be at most 1000."),
        ],
        help_text="Rank among the catalog's packages: a higher tier is an upgrade.",
    )
    sort_order = models.IntegerField(default=0)

    # visibility
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    hidden = models.BooleanField(
        default=False, help_text="Not listed; customers reach it by its link only."
    )
    retired = models.BooleanField(
        default=False, help_text="No longer sold; existing services keep renewing."
    )

    # stock
    stock_qty = models.IntegerField(
        "stock",
        default=UNLIMITED,
        help_text="Units left to sell. Use -1 for unlimited stock.",
    )
    oversell_enabled = models.BooleanField(
        default=False, help_text="Keep taking orders when the stock reaches zero."
    )

    # ordering
    per_user_limit = models.IntegerField(
        default=UNLIMITED,
        help_text="Most units of this package one customer may hold. Use -1 for no limit.",
    )
    allow_quantity = models.CharField(
        max_length=10, choices=Quantity.choices, default=Quantity.SINGLE
    )
    allow_cancellation = models.BooleanField(
        default=True, help_text="Customers may request cancellation of their service."
    )

    # billing
    trial_period = models.PositiveIntegerField(default=0, help_text="0 means no trial.")
    trial_interval = models.CharField(max_length=5, choices=Interval.choices, default=Interval.DAY)
    trial_mode = models.CharField(
        max_length=10, choices=TrialMode.choices, default=TrialMode.OUTSIDE
    )
    grace_period = models.PositiveIntegerField(
        default=0, help_text="How long an unpaid service stays usable before suspension."
    )
    grace_interval = models.CharField(max_length=5, choices=Interval.choices, default=Interval.DAY)
    overages_enabled = models.BooleanField(
        default=False, help_text="Bill usage beyond quota limits instead of stopping at them."
    )

    # provisioning
    provider_instance = models.ForeignKey(
        "provisioning.ProviderInstance",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="packages",
    )
    provisioning_options = models.JSONField(default=dict, blank=True)

    # scaling
    scalable_to = models.ManyToManyField(
        "self",
        through="PackageScaling",
        symmetrical=False,
        blank=True,
        related_name="scalable_from",
    )

    # variants shared with other packages
    variants: models.ManyToManyField[Variant, Any] = models.ManyToManyField(
        "Variant", blank=True, related_name="packages"
    )

    # free data
    notification_preferences = models.JSONField(
        default=default_notification_preferences,
        blank=True,
        validators=[validate_notification_preferences],
    )
    package_settings = models.JSONField(
        default=dict, blank=True, validators=[validate_key_values],
        help_text="Key/values handed to the provider.",
    )  # fmt: skip
    package_metadata = models.JSONField(
        default=dict, blank=True, validators=[validate_key_values],
        help_text="Free key/values for integrations (external ids).",
    )  # fmt: skip

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PackageQuerySet.as_manager()

    # Staff edits are recorded with their old and new values (catalog.history).
    history = HistoricalRecords(m2m_fields=[variants])

    class Meta:
        ordering = ["catalog__sort_order", "sort_order", "tier", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["catalog", "slug"],
                name="%(app_label)s_%(class)s_slug_unique_per_catalog",
                violation_error_message="Another package in this catalog already uses this slug.",
            ),
            models.CheckConstraint(
                condition=Q(stock_qty__gte=UNLIMITED),
                name="%(app_label)s_%(class)s_stock_qty_valid",
                violation_error_message="Stock must be 0 or more, or -1 for unlimited.",
            ),
            models.CheckConstraint(
                condition=Q(per_user_limit=UNLIMITED) | Q(per_user_limit__gte=1),
                name="%(app_label)s_%(class)s_per_user_limit_valid",
                violation_error_message="The per-user limit must be 1 or more, or -1 for no limit.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        fill_slug(self)
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("storefront:package", args=[self.catalog.slug, self.slug])

    # --- stock -------------------------------------------------------------

    @property
    def has_stock(self) -> bool:
        """Whether stock is tracked at all (stock -1 means unlimited)."""
        return self.stock_qty != UNLIMITED

    @property
    def is_sold_out(self) -> bool:
        """SOLD_OUT, read from this instance (the order service passes a locked row)."""
        return is_sold_out(self.stock_qty, self.oversell_enabled)

    # --- visibility --------------------------------------------------------

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def is_listed(self) -> bool:
        return self.is_active and not self.hidden and not self.retired

    @property
    def has_trial(self) -> bool:
        return self.trial_period > 0

    @property
    def has_per_user_limit(self) -> bool:
        return self.per_user_limit != UNLIMITED

    # --- seed 000's single-price view, read from the primary pricing option --

    def enabled_prices(self) -> list[PackagePrice]:
        """Enabled pricing options in staff order (works with or without a filtered prefetch)."""
        options = [p for p in self.prices.all() if p.enabled]
        options.sort(key=lambda p: (p.sort_order, p.pk or 0))
        return options

    @property
    def primary_price(self) -> PackagePrice | None:
        """The first enabled pricing option in staff order."""
        options = self.enabled_prices()
        return options[0] if options else None

    @property
    def currency(self) -> str:
        return settings.BILLING_DEFAULT_CURRENCY

    def _primary_money(self, part: str) -> Money | None:
        """`part` of the primary option's amount in the default currency; zero when it has none."""
        primary = self.primary_price
        if primary is None:
            return None
        amount = primary.amount_in(self.currency)
        return getattr(amount, part) if amount else Money(0, self.currency)

    @property
    def price(self) -> Money | None:
        return self._primary_money("price")

    @property
    def signup_fee(self) -> Money | None:
        return self._primary_money("signup_fee")

    @property
    def periodicity(self) -> int | None:
        primary = self.primary_price
        return primary.time_interval if primary else None

    @property
    def periodicity_type(self) -> str:
        primary = self.primary_price
        return primary.billing_period if primary else ""

    # --- rules within one row ----------------------------------------------

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        fill_slug(self)
        for field, label, limit in (
            ("trial", "trial", MAX_TRIAL_DAYS),
            ("grace", "grace period", MAX_GRACE_DAYS),
        ):
            period = getattr(self, f"{field}_period") or 0
            interval = getattr(self, f"{field}_interval")
            if period and not interval:
                errors.setdefault(f"{field}_interval", []).append(
                    f"Choose whether the {label} counts days, weeks, months or years."
                )
            elif period and period * APPROX_DAYS.get(interval, 1) > limit:
                errors.setdefault(f"{field}_period", []).append(
                    f"A {label} of {period} {interval}(s) is too long; "
                    f"the longest allowed is about {limit} days."
                )
        # The check constraints hold the same two rules, but report them for
        # the whole form; these put the message next to the field.
        if self.stock_qty is not None and self.stock_qty < UNLIMITED:
            errors.setdefault("stock_qty", []).append(
                "Stock must be 0 or more, or -1 for unlimited."
            )
        if self.per_user_limit is not None and (
            self.per_user_limit == 0 or self.per_user_limit < UNLIMITED
        ):
            errors.setdefault("per_user_limit", []).append(
                "The per-user limit must be 1 or more, or -1 for no limit."
            )
        if self.provider_instance_id:
            errors.update(self._provisioning_errors())
        if errors:
            raise ValidationError(errors)

    def _provisioning_errors(self) -> dict[str, list]:
        instance = self.provider_instance
        errors: dict[str, list] = {}
        if instance is None:
            return errors
        if not instance.is_active:
            errors["provider_instance"] = [
                f"The provider instance “{instance}” is not active; activate it or choose another."
            ]
            return errors
        plugin = instance.plugin
        if self.service_type and self.service_type not in plugin.service_types:
            errors["provider_instance"] = [
                f"The {plugin.name} plugin cannot provision "
                f"“{self.get_service_type_display()}” services."
            ]
            return errors
        form = plugin.package_options_form(data=self.provisioning_options or {})
        if not form.is_valid():
            errors["provisioning_options"] = form_error_messages(form)
        else:
            self.provisioning_options = plugin.serialize_package_options(form.cleaned_data)
        return errors


class PackageScaling(models.Model):
    """A package a service may be upgraded or downgraded to."""

    from_package = models.ForeignKey(Package, on_delete=models.CASCADE, related_name="+")
    to_package = models.ForeignKey(Package, on_delete=models.CASCADE, related_name="+")

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["from_package", "to_package"],
                name="%(app_label)s_%(class)s_unique_pair",
            ),
            models.CheckConstraint(
                condition=~Q(from_package=F("to_package")),
                name="%(app_label)s_%(class)s_not_to_itself",
                violation_error_message="A package cannot scale to itself.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.from_package} → {self.to_package}"


_Amount = TypeVar("_Amount", bound="PriceAmount")


class PricedInCurrencies(Generic[_Amount]):
    """A price with one amount row per store currency (related name `amounts`)."""

    if TYPE_CHECKING:
        amounts: RelatedManager[_Amount]

    def amount_in(self, currency: str) -> _Amount | None:
        # Reads the prefetched rows, so a page pays no query per price.
        for amount in related_objects(self, "amounts"):
            if amount.currency == currency:
                return amount
        return None


class PriceType(models.TextChoices):
    FREE = "free", "Free"
    ONETIME = "onetime", "One-time"
    RECURRING = "recurring", "Recurring"


class PackagePrice(PricedInCurrencies["PackagePriceAmount"], models.Model):
    """A pricing option of a package (“Monthly”, “Annual”, “Free trial”)."""

    package = models.ForeignKey(Package, on_delete=models.CASCADE, related_name="prices")
    name = models.CharField(
        max_length=100,
        help_text="Variant prices apply to this option only when their name matches exactly.",
    )
    type = models.CharField(max_length=10, choices=PriceType.choices, default=PriceType.RECURRING)
    time_interval = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Bill every N periods (recurring only)."
    )
    billing_period = models.CharField(
        max_length=5, choices=Interval.choices, blank=True, help_text="Recurring only."
    )
    enabled = models.BooleanField(default=True)
    sort_order = models.IntegerField(default=0)

    history = HistoricalRecords()

    class Meta:
        ordering = ["sort_order", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["package", "name"],
                name="%(app_label)s_%(class)s_name_unique_per_package",
                violation_error_message="This package already has a pricing option with this name.",
            ),
            models.CheckConstraint(
                condition=(
                    Q(type=PriceType.RECURRING, time_interval__gte=1)
                    & ~Q(billing_period="")
                    & Q(billing_period__isnull=False)
                )
                | (
                    ~Q(type=PriceType.RECURRING)
                    & Q(time_interval__isnull=True)
                    & Q(billing_period="")
                ),
                name="%(app_label)s_%(class)s_period_matches_type",
                violation_error_message="Only recurring options have an interval and billing period.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.package} – {self.name}"

    @property
    def is_free(self) -> bool:
        return self.type == PriceType.FREE

    @property
    def is_recurring(self) -> bool:
        return self.type == PriceType.RECURRING

    def period_label(self) -> str:
        """“month”, “3 months”, “one-time”, “free”: the one wording of how an option bills."""
        if self.type == PriceType.FREE:
            return "free"
        if self.type == PriceType.ONETIME:
            return "one-time"
        if self.time_interval == 1:
            return self.billing_period
        return plural(self.time_interval or 1, self.billing_period)

    def period_suffix(self) -> str:
        """What follows an amount: “/ month”, “/ 3 months”, “one-time”; empty when free."""
        if self.is_free:
            return ""
        if not self.is_recurring:
            return self.period_label()
        return f"/ {self.period_label()}"

    def clean(self) -> None:
        errors = {}
        if self.type == PriceType.RECURRING:
            if not self.time_interval or self.time_interval < 1:
                errors["time_interval"] = "A recurring option is billed every 1 or more periods."
            if not self.billing_period:
                errors["billing_period"] = "Choose the billing period of a recurring option."
        else:
            label = self.get_type_display().lower()
            if self.time_interval is not None:
                errors["time_interval"] = f"A {label} option has no time interval."
            if self.billing_period:
                errors["billing_period"] = f"A {label} option has no billing period."
        if errors:
            raise ValidationError(errors)


MONEY_KWARGS = {"max_digits": 12, "decimal_places": 2}


class PriceAmount(models.Model):
    """An explicit amount of a price in one store currency; no conversion."""

    price = MoneyField(**MONEY_KWARGS)
    setup_fee = MoneyField(**MONEY_KWARGS, default=Decimal("0"))

    # The money fields of a row, all in its one currency and never negative.
    money_fields: tuple[str, ...] = ("price", "setup_fee")

    class Meta:
        abstract = True
        constraints = [
            models.CheckConstraint(
                condition=Q(price__gte=0),
                name="%(app_label)s_%(class)s_price_not_negative",
                violation_error_message="A price cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(setup_fee__gte=0),
                name="%(app_label)s_%(class)s_setup_fee_not_negative",
                violation_error_message="A setup fee cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(setup_fee_currency=F("price_currency")),
                name="%(app_label)s_%(class)s_one_currency",
                violation_error_message="All amounts of a row share its currency.",
            ),
        ]

    if TYPE_CHECKING:
        price_currency: str  # added by MoneyField
        _stored_currency: str | None

    @classmethod
    def from_db(cls, db, field_names, values):  # type: ignore[override]  # stubs add Django 6's fetch_mode
        instance = super().from_db(db, field_names, values)
        # Remember the stored currency: it may never change afterwards.
        instance._stored_currency = instance.__dict__.get("price_currency")
        return instance

    @property
    def currency(self) -> str:
        return str(self.price_currency)

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        stored = getattr(self, "_stored_currency", None)
        if self.pk and stored and str(stored) != self.currency:
            errors.setdefault("price", []).append(
                f"The currency of this amount is {stored}; it cannot be changed here."
            )
        if self.currency not in settings.BILLING_CURRENCIES:
            errors.setdefault("price", []).append(
                f"{self.currency} is not one of the store's currencies."
            )
        for name in self.money_fields:
            value = getattr(self, name)
            if value is not None and value.amount < 0:
                errors.setdefault(name, []).append(
                    f"The {name.replace('_', ' ')} cannot be negative."
                )
        if errors:
            raise ValidationError(errors)


class PackagePriceAmount(PriceAmount):
    package_price = models.ForeignKey(
        PackagePrice, on_delete=models.CASCADE, related_name="amounts"
    )
    signup_fee = MoneyField(
        **MONEY_KWARGS,
        default=Decimal("0"),
        help_text="Charged once on the order, whatever the quantity.",
    )

    money_fields = (*PriceAmount.money_fields, "signup_fee")

    history = HistoricalRecords()

    class Meta(PriceAmount.Meta):
        ordering = ["id"]
        constraints = [
            *PriceAmount.Meta.constraints,
            models.UniqueConstraint(
                fields=["package_price", "price_currency"],
                name="%(app_label)s_%(class)s_one_per_currency",
                violation_error_message="This pricing option already has an amount in this currency.",
            ),
            models.CheckConstraint(
                condition=Q(signup_fee__gte=0),
                name="%(app_label)s_%(class)s_signup_fee_not_negative",
                violation_error_message="A signup fee cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(signup_fee_currency=F("price_currency")),
                name="%(app_label)s_%(class)s_signup_fee_currency",
                violation_error_message="All amounts of a row share its currency.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.package_price}: {self.price}"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        try:
            super().clean()
        except ValidationError as error:
            errors.update(error.message_dict)
        # A new row of the admin's pricing form belongs to an option not saved yet.
        option = (
            self.package_price
            if self.package_price_id or PackagePriceAmount.package_price.is_cached(self)
            else None
        )
        if option is not None:
            if option.is_free:
                errors.setdefault("price", []).append("A free pricing option has no amounts.")
            elif option.enabled and self.price is not None and self.price.amount <= 0:
                errors.setdefault("price", []).append(
                    "An enabled paid option needs a price above zero; "
                    "use a free option to give it away."
                )
        if errors:
            raise ValidationError(errors)


class Variant(models.Model):
    """A configurable option customers pick when ordering (operating system, region)."""

    class Type(models.TextChoices):
        SELECT = "select", "Drop-down"
        RADIO = "radio", "Radio buttons"
        CHECKBOX = "checkbox", "Checkbox"

    class Visibility(models.TextChoices):
        VISIBLE = "visible", "Visible"
        HIDDEN = "hidden", "Hidden"

    name = models.CharField(max_length=120)
    code = models.SlugField(
        max_length=64, unique=True, help_text="Handed to the provisioning plugin."
    )
    description = models.TextField(blank=True, help_text="Staff only; never shown to customers.")
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.SELECT)
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.VISIBLE
    )
    is_scalable = models.BooleanField(
        default=False, help_text="Customers may change this option on an existing service."
    )
    sort_order = models.IntegerField(default=0)

    history = HistoricalRecords()

    class Meta:
        ordering = ["sort_order", "name"]

    def __str__(self) -> str:
        return self.name


class VariantOption(models.Model):
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="options")
    name = models.CharField(max_length=120)
    value = models.CharField(max_length=255, help_text="Handed to the provisioning plugin.")
    sort_order = models.IntegerField(default=0)

    history = HistoricalRecords()

    class Meta:
        ordering = ["sort_order", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["variant", "name"],
                name="%(app_label)s_%(class)s_name_unique_per_variant",
                violation_error_message="This variant already has an option with this name.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.variant}: {self.name}"

    def price_named(self, name: str) -> VariantPrice | None:
        for price in related_objects(self, "prices"):
            if price.name == name:
                return price
        return None


class VariantPrice(PricedInCurrencies["VariantPriceAmount"], models.Model):
    """What an option costs with the package pricing option of the same name."""

    option = models.ForeignKey(VariantOption, on_delete=models.CASCADE, related_name="prices")
    name = models.CharField(
        max_length=100, help_text="Must match the name of a package pricing option exactly."
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["option", "name"],
                name="%(app_label)s_%(class)s_name_unique_per_option",
                violation_error_message="This option already has a price with this name.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.option} – {self.name}"


class VariantPriceAmount(PriceAmount):
    variant_price = models.ForeignKey(
        VariantPrice, on_delete=models.CASCADE, related_name="amounts"
    )

    history = HistoricalRecords()

    class Meta(PriceAmount.Meta):
        ordering = ["id"]
        constraints = [
            *PriceAmount.Meta.constraints,
            models.UniqueConstraint(
                fields=["variant_price", "price_currency"],
                name="%(app_label)s_%(class)s_one_per_currency",
                violation_error_message="This variant price already has an amount in this currency.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.variant_price}: {self.price}"


class Feature(models.Model):
    class ValueType(models.TextChoices):
        BOOLEAN = "boolean", "Yes / no"
        NUMBER = "number", "Number"
        TEXT = "text", "Text"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    value_type = models.CharField(
        max_length=10, choices=ValueType.choices, default=ValueType.BOOLEAN
    )
    sort_order = models.IntegerField(default=0)

    history = HistoricalRecords()

    class Meta:
        ordering = ["sort_order", "name"]

    def __str__(self) -> str:
        return self.name


BOOLEAN_WORDS = {"yes": "yes", "true": "yes", "1": "yes", "no": "no", "false": "no", "0": "no"}


class PackageFeature(models.Model):
    package = models.ForeignKey(Package, on_delete=models.CASCADE, related_name="features")
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="package_values")
    value = models.CharField(max_length=255, blank=True, help_text="yes/no, a number or text.")

    history = HistoricalRecords()

    class Meta:
        ordering = ["feature__sort_order", "feature__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["package", "feature"],
                name="%(app_label)s_%(class)s_one_value_per_package",
                violation_error_message="This package already has a value for this feature.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.feature}: {self.value}"

    @property
    def is_enabled(self) -> bool:
        return self.value == "yes"

    def clean(self) -> None:
        if not self.feature_id:
            return
        kind = self.feature.value_type
        value = (self.value or "").strip()
        if kind == Feature.ValueType.BOOLEAN:
            if value.lower() not in BOOLEAN_WORDS:
                raise ValidationError({"value": "Enter yes or no for this feature."})
            self.value = BOOLEAN_WORDS[value.lower()]
        elif kind == Feature.ValueType.NUMBER:
            try:
                number = Decimal(value)
            except ArithmeticError:
                number = None
            if number is None or not number.is_finite():
                raise ValidationError({"value": "Enter a number for this feature."})
        elif not value:
            raise ValidationError({"value": "Enter the text shown for this feature."})


class Quota(models.Model):
    class Reset(models.TextChoices):
        NEVER = "never", "Never"
        DAY = "day", "Every day"
        WEEK = "week", "Every week"
        MONTH = "month", "Every month"
        YEAR = "year", "Every year"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    unit = models.CharField(max_length=30, help_text="“participants”, “GB”, “minutes”…")
    reset_period = models.CharField(max_length=10, choices=Reset.choices, default=Reset.NEVER)
    sort_order = models.IntegerField(default=0)

    history = HistoricalRecords()

    class Meta:
        ordering = ["sort_order", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.unit})"


class PackageQuota(models.Model):
    package = models.ForeignKey(Package, on_delete=models.CASCADE, related_name="quotas")
    quota = models.ForeignKey(Quota, on_delete=models.PROTECT, related_name="package_values")
    limit = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Leave empty for unlimited."
    )
    overage_price = MoneyField(
        **MONEY_KWARGS,
        null=True,
        blank=True,
        help_text="Price per unit beyond the limit, when the package has overages enabled.",
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["quota__sort_order", "quota__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["package", "quota"],
                name="%(app_label)s_%(class)s_one_value_per_package",
                violation_error_message="This package already has a value for this quota.",
            ),
            models.CheckConstraint(
                condition=Q(overage_price__isnull=True) | Q(overage_price__gte=0),
                name="%(app_label)s_%(class)s_overage_not_negative",
                violation_error_message="An overage price cannot be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quota}: {self.limit_label}"

    @property
    def is_unlimited(self) -> bool:
        return self.limit is None

    @property
    def limit_label(self) -> str:
        return "unlimited" if self.limit is None else f"{self.limit:,} {self.quota.unit}"

    def clean(self) -> None:
        price = self.overage_price
        if price is not None:
            if price.amount <= 0:
                raise ValidationError({"overage_price": "An overage price must be above zero."})
            if str(price.currency) not in settings.BILLING_CURRENCIES:
                raise ValidationError(
                    {"overage_price": f"{price.currency} is not one of the store's currencies."}
                )
        if (
            self.package_id
            and self.package.overages_enabled
            and self.limit is not None
            and price is None
        ):
            raise ValidationError(
                {
                    "overage_price": "This package bills overages: set the price per "
                    f"{self.quota.unit if self.quota_id else 'unit'} beyond the limit."
                }
            )
