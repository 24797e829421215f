"""Why an order, a plan change or a service action is refused: one code per reason.

The codes are stable API (tests, the admin and JSON callers read them); the
messages beside them are for people and may change. Collected in one place,
as saleor keeps `checkout/error_codes.py`, so a new refusal reuses a code or
adds one here.
"""

from __future__ import annotations

from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import models


class ErrorCode(models.TextChoices):
    # the package, whatever is chosen
    NOT_AVAILABLE = "not_available", "The package is not on sale"
    RETIRED = "retired", "The package is no longer sold"
    SOLD_OUT = "sold_out", "The package is sold out"
    NOT_ENOUGH_STOCK = "not_enough_stock", "Fewer units are left than ordered"
    # quantity and per-customer limits
    QUANTITY_INVALID = "quantity_invalid", "The quantity is not a whole number of 1 or more"
    QUANTITY_NOT_ALLOWED = "quantity_not_allowed", "The package is sold one unit per order"
    QUANTITY_TOO_LARGE = "quantity_too_large", "Too many units in one order"
    PER_USER_LIMIT = "per_user_limit", "The customer holds as many as allowed"
    # pricing options and currency
    CURRENCY_INVALID = "currency_invalid", "Not a store currency"
    PRICE_REQUIRED = "price_required", "No pricing option chosen"
    PRICE_NOT_OF_PACKAGE = "price_not_of_package", "The pricing option is another package's"
    PRICE_DISABLED = "price_disabled", "The pricing option is not on sale"
    PRICE_NOT_IN_CURRENCY = (
        "price_not_in_currency",
        "The pricing option has no amount in the currency",
    )
    # variants
    VARIANT_NOT_OF_PACKAGE = "variant_not_of_package", "The option is not one of the package's"
    VARIANT_HIDDEN = "variant_hidden", "The variant cannot be chosen"
    VARIANT_DUPLICATE = "variant_duplicate", "Two options chosen for a one-choice variant"
    VARIANT_NO_PRICE = "variant_no_price", "The option has no price of the pricing option's name"
    VARIANT_NOT_IN_CURRENCY = "variant_not_in_currency", "The option has no amount in the currency"
    VARIANT_REQUIRED = "variant_required", "A required variant has no choice"
    CHECKOUT_FIELDS_INVALID = (
        "checkout_fields_invalid",
        "The provider's checkout fields are invalid",
    )
    # plan changes
    TARGET_REQUIRED = "target_required", "No package to move to"
    NOT_A_TARGET = "not_a_target", "Not a scaling target of the service's package"
    NO_SAME_PRICE = "no_same_price", "The target sells no pricing option of the same name"
    PRICE_PERIOD_DIFFERS = "price_period_differs", "The target bills over another period"
    CHANGE_SCHEDULED = "change_scheduled", "A change of package is already scheduled"
    NOT_SCHEDULED = "not_scheduled", "The change is not scheduled"
    PREVIEW_OUTDATED = "preview_outdated", "The figures changed since the customer saw them"
    # services
    NOT_OWNER = "not_owner", "Another customer's record"
    BAD_STATUS = "bad_status", "Not allowed in the record's status"
    NO_PERIOD = "no_period", "No billing period is running"
    OPEN_JOB = "open_job", "The same provider action is under way"
    CANCELLATION_NOT_ALLOWED = "cancellation_not_allowed", "Customers may not cancel the package"
    CANCELLATION_REQUESTED = "cancellation_requested", "A cancellation is already requested"
    SERVICE_ENDED = "service_ended", "The service has ended"
    CANCEL_MODE = "cancel_mode", "No valid cancellation mode"
    NOT_CANCELLING = "not_cancelling", "No cancellation at period end to undo"
    # customer accounts
    EMAIL_TOKEN_INVALID = "email_token_invalid", "The email change link is invalid or expired"
    # orders, invoices and payments
    ORDER_NOT_CANCELLABLE = (
        "order_not_cancellable",
        "Only an order awaiting payment can be cancelled",
    )
    INVOICE_NOT_UNPAID = "invoice_not_unpaid", "The invoice takes no payment"
    PAYMENT_CURRENCY = "payment_currency", "The payment is in another currency"
    PAYMENT_AMOUNT = "payment_amount", "The payment amount is out of bounds"
    # provisioning jobs
    NOT_WAITING = "not_waiting", "The job is not waiting for staff"
    NOT_RETRYABLE = "not_retryable", "The job cannot be retried"
    # payments, refunds and credit (the payments app)
    CREDIT_BEYOND_BALANCE = "credit_beyond_balance", "Credit beyond balance"
    CREDIT_SHORT = "credit_short", "Credit short"
    CREDIT_ZERO = "credit_zero", "Credit zero"
    GATEWAY_REFUSED = "gateway_refused", "Gateway refused"
    GATEWAY_UNREACHABLE = "gateway_unreachable", "Gateway unreachable"
    NOTHING_DUE = "nothing_due", "Nothing due"
    REFUND_AMOUNT = "refund_amount", "Refund amount"
    REFUND_CURRENCY = "refund_currency", "Refund currency"
    REFUND_REFUSED = "refund_refused", "Refund refused"
    REFUND_STATUS = "refund_status", "Refund status"
    # usage
    UNKNOWN_QUOTA = "unknown_quota", "The service has no such quota"
    USAGE_INVALID = "usage_invalid", "The usage record is not valid"
    USAGE_KEY_REUSED = "usage_key_reused", "The idempotency key was used for other usage"
    # service console
    NOT_BILLABLE = "not_billable", "The service has no renewal to bill now"
    NO_OPEN_JOB = "no_open_job", "No job of the service is in that state"
    # accounts
    EMAIL_TAKEN = "email_taken", "An account has this email address"


class Refusal(NamedTuple):
    """Why something cannot be done: a stable code and a message for the customer."""

    code: ErrorCode
    message: str

    def error(self) -> ValidationError:
        return ValidationError(self.message, code=self.code)


def refuse(code: ErrorCode, message: str) -> ValidationError:
    """The ValidationError a service raises to refuse, with its code."""
    return ValidationError(message, code=code)
