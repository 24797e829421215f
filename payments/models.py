"""Money in: gateway instances, payments, refunds as credit notes, and account credit.

Amounts are Money in the invoice's currency; a row never mixes currencies
(named constraints say so), so sums per currency are exact.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from polymorphic.models import PolymorphicModel

from catalog.fields import MoneyField

from .gateways.base import Gateway
from .registry import get_gateway

MONEY = {"max_digits": 12, "decimal_places": 2}
ZERO = Decimal("0")


class GatewayInstance(PolymorphicModel):
    """One configured payment gateway customers may pay with; one subclass per gateway plugin."""

    # Set by each subclass: the registry key of the gateway plugin that drives it.
    plugin_key: str = ""

    name = models.CharField(
        "display name",
        max_length=120,
        unique=True,
        help_text="What customers see when they choose how to pay.",
    )
    is_active = models.BooleanField(
        "active", default=True, help_text="Only active gateways are offered to customers."
    )
    currencies = models.CharField(
        "enabled currencies",
        max_length=200,
        help_text="Store currencies this gateway takes, separated by commas, e.g. USD,EUR.",
    )
    sort_order = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_order", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        super().clean()
        codes = [code.strip().upper() for code in self.currencies.split(",") if code.strip()]
        unknown = [code for code in codes if code not in settings.BILLING_CURRENCIES]
        if not codes:
            raise ValidationError({"currencies": "Enable at least one currency."})
        if unknown:
            raise ValidationError(
                {
                    "currencies": f"{', '.join(unknown)} is not a store currency "
                    f"({', '.join(settings.BILLING_CURRENCIES)})."
                }
            )
        self.currencies = ",".join(dict.fromkeys(codes))

    @property
    def currency_list(self) -> list[str]:
        return [code.strip() for code in self.currencies.split(",") if code.strip()]

    def takes(self, currency: str) -> bool:
        return self.is_active and currency in self.currency_list

    @property
    def plugin(self) -> Gateway:
        # A base row names its subclass by content type, read from Django's cache.
        return get_gateway((self.get_real_instance_class() or type(self)).plugin_key)


class BankTransferGateway(GatewayInstance):
    """The customer transfers the money; staff record it when it arrives."""

    plugin_key = "bank_transfer"

    instructions = models.TextField(
        help_text="Shown to the customer with the invoice: account holder, IBAN, BIC, bank. "
        "The invoice number is added as the reference to quote."
    )

    class Meta:
        verbose_name = "bank transfer gateway"


class TestCardGateway(GatewayInstance):
    """Approves or declines Stripe's test card numbers; moves no real money."""

    plugin_key = "test"
    __test__ = False  # a model, not a test class pytest should collect

    class Meta:
        verbose_name = "test gateway (no real money)"


class StripeGateway(GatewayInstance):
    """A Stripe account: customers pay on Stripe Checkout; webhooks report the result."""

    plugin_key = "stripe"

    secret_key = models.CharField(
        max_length=255, help_text="The account's secret API key (sk_live_… or sk_test_…)."
    )
    webhook_secret = models.CharField(
        "webhook signing secret",
        max_length=255,
        help_text="The endpoint's signing secret (whsec_…) from the Stripe dashboard; "
        "the endpoint is /payments/gateways/<this gateway's id>/webhook/.",
    )

    class Meta:
        verbose_name = "Stripe gateway"


class WebhookEvent(models.Model):
    """A gateway event handled: its id is stored in the transaction that handled it, once."""

    gateway = models.ForeignKey(GatewayInstance, on_delete=models.CASCADE, related_name="+")
    event_id = models.CharField(max_length=255)
    type = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "event_id"], name="%(app_label)s_%(class)s_once_per_gateway"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class SavedPaymentMethod(models.Model):
    """A card a customer let a gateway keep, charged off-session when a renewal is issued."""

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_payment_methods"
    )
    gateway = models.ForeignKey(GatewayInstance, on_delete=models.PROTECT, related_name="+")
    # The gateway's ids of the customer and of the method (Stripe: cus_…, pm_…).
    gateway_customer_id = models.CharField(max_length=255)
    gateway_method_id = models.CharField(max_length=255)
    label = models.CharField(max_length=120)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_default", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "gateway_method_id"],
                name="%(app_label)s_%(class)s_method_once_per_gateway",
            ),
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(is_default=True),
                name="%(app_label)s_%(class)s_one_default_per_customer",
            ),
        ]

    def __str__(self) -> str:
        return self.label


class Payment(models.Model):
    """Money received (or a charge attempted) against an invoice."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        REFUNDED = "refunded", "Refunded"

    class Method(models.TextChoices):
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        CARD = "card", "Card"
        CASH = "cash", "Cash"
        CHEQUE = "cheque", "Cheque"
        ACCOUNT_CREDIT = "account_credit", "Account credit"
        OTHER = "other", "Other"

    # Rows whose money was received: they count towards the invoice.
    RECEIVED_STATUSES = (Status.SUCCEEDED, Status.REFUNDED)

    invoice = models.ForeignKey(
        "subscriptions.Invoice", on_delete=models.PROTECT, related_name="payments"
    )
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payments"
    )
    amount = MoneyField(**MONEY, help_text="What was received, in the invoice's currency.")
    gateway = models.ForeignKey(
        GatewayInstance,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="payments",
        help_text="Empty when staff recorded money that reached us another way.",
    )
    method = models.CharField(max_length=20, choices=Method.choices)
    transaction_id = models.CharField(
        max_length=255, blank=True, help_text="The gateway's id of the charge."
    )
    reference = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SUCCEEDED)
    failure_message = models.CharField(max_length=255, blank=True)
    # The part beyond the invoice's balance, moved to the customer's account credit.
    credited = MoneyField(**MONEY)
    refunded = MoneyField(**MONEY)
    received_at = models.DateTimeField(default=timezone.now)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["received_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="%(app_label)s_%(class)s_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(credited__gte=0)
                & Q(refunded__gte=0)
                & Q(amount__gte=F("credited") + F("refunded")),
                name="%(app_label)s_%(class)s_refund_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(amount_currency=F("credited_currency"))
                & Q(amount_currency=F("refunded_currency")),
                name="%(app_label)s_%(class)s_one_currency",
            ),
            # A charge reported twice (a webhook retried, a double submit) is one payment.
            models.UniqueConstraint(
                fields=["gateway", "transaction_id"],
                condition=~Q(transaction_id=""),
                name="%(app_label)s_%(class)s_transaction_unique_per_gateway",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} on {self.invoice}"

    @property
    def refundable(self):
        """What can still be given back: the part the invoice kept, less earlier refunds."""
        return self.amount - self.credited - self.refunded

    @property
    def status_label(self) -> str:
        if self.status == self.Status.SUCCEEDED and self.refunded.amount:
            return f"Partly refunded ({self.refunded.amount} {self.refunded.currency})"
        return self.get_status_display()


class CreditNote(models.Model):
    """A document that takes money back off an invoice: a refund, or credit given."""

    class Kind(models.TextChoices):
        REFUND = "refund", "Refund"
        CREDIT = "credit", "Account credit"
        PLAN_CHANGE = "plan_change", "Plan change credit"

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_notes"
    )
    invoice = models.ForeignKey(
        "subscriptions.Invoice", on_delete=models.PROTECT, related_name="credit_notes"
    )
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="credit_notes"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount = MoneyField(**MONEY)
    reason = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="%(app_label)s_%(class)s_amount_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def number(self) -> str:
        return f"CN-{self.pk:06d}" if self.pk else "CN-new"


class CreditEntry(models.Model):
    """One move of a customer's account credit; the balance is the sum, per currency."""

    class Kind(models.TextChoices):
        OVERPAYMENT = "overpayment", "Overpayment"
        APPLIED = "applied", "Applied to an invoice"
        REFUND = "refund", "Refunded to credit"
        ADJUSTMENT = "adjustment", "Adjusted by staff"
        PLAN_CHANGE = "plan_change", "Plan change credit"

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="credit_entries"
    )
    amount = MoneyField(**MONEY, help_text="Positive adds credit, negative uses it.")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    invoice = models.ForeignKey(
        "subscriptions.Invoice",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="credit_entries",
    )
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="credit_entries"
    )
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "credit entries"
        indexes = [models.Index(fields=["customer", "amount_currency"])]
        constraints = [
            models.CheckConstraint(
                condition=~Q(amount=0), name="%(app_label)s_%(class)s_amount_not_zero"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.get_kind_display().lower()}"
