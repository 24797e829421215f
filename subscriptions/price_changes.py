"""Staff change an option's price: what it does to existing services, and moving them to it.

Services keep the price they were sold at (their snapshot). Staff may instead
move the services of an option to its new amount from each service's next
renewal that is at least `BILLING_PRICE_CHANGE_NOTICE_DAYS` away, so every
customer is told before the first charge. The billing run calls
`price_change_notices_due` to send those notices and, when it bills a period,
`service_price_for_period` for the amount and `scheduled_price_change_apply`
once the period at the new price has started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from djmoney.money import Money

from catalog.currency import format_money
from catalog.models import NotificationEvent, PackagePrice

from .models import ScheduledPriceChange, Service
from .notifications import notify_service
from .periods import add_interval, monthly_rate

CENT = Decimal("0.01")


def option_services(*, option: PackagePrice, currency: str) -> QuerySet[Service]:
    """Live services sold `option` in `currency` that will renew (not cancelling)."""
    return Service.objects.live().filter(
        package_id=option.package_id,
        price_name=option.name,
        price_type=option.type,
        currency=currency,
        cancel_requested_at__isnull=True,
    )


def service_package_amount(service: Service) -> Money:
    """The pricing option's part of the service's price (all of it for older services)."""
    return (
        service.package_amount if service.package_amount is not None else service.recurring_amount
    )


def new_recurring_amount(service: Service, new_package_amount: Money) -> Money:
    # Variant options keep the prices they were sold at, as a plan change does.
    return service.recurring_amount - service_package_amount(service) + new_package_amount


@dataclass
class PricePreview:
    """What moving an option's services to its price in one currency would change."""

    currency: str
    new_amount: Money
    services: list[Service]
    mrr_change: Fraction

    @property
    def count(self) -> int:
        return len(self.services)

    @property
    def mrr_change_display(self) -> Money:
        """The exact monthly change, rounded once, half up."""
        exact = Decimal(self.mrr_change.numerator) / Decimal(self.mrr_change.denominator)
        return Money(exact.quantize(CENT, rounding=ROUND_HALF_UP), self.currency)


def price_change_preview(*, option: PackagePrice, currency: str) -> PricePreview | None:
    """The services of `option` paying another amount than its current one in `currency`."""
    amount = option.amount_in(currency)
    if amount is None or not option.is_recurring:
        return None
    services = [
        service
        for service in option_services(option=option, currency=currency)
        if service_package_amount(service) != amount.price
    ]
    change = sum(
        (
            monthly_rate(
                (new_recurring_amount(service, amount.price) - service.recurring_amount).amount,
                service.time_interval,
                service.billing_period,
            )
            for service in services
        ),
        Fraction(0),
    )
    return PricePreview(currency, amount.price, services, change)


def first_renewal_after(service: Service, earliest: datetime) -> datetime | None:
    """The first period start of `service` at or after `earliest`."""
    start = service.current_period_end or service.trial_ends_at
    if start is None:
        return None
    while start < earliest:
        start = add_interval(start, service.time_interval, service.billing_period)
    return start


def price_change_schedule(*, preview: PricePreview, now: datetime, user=None) -> int:
    """Move the previewed services to the new amount from a renewal far enough ahead to be told.

    A service already scheduled for another amount is rescheduled. Returns how many.
    """
    earliest = now + timedelta(days=settings.BILLING_PRICE_CHANGE_NOTICE_DAYS)
    scheduled = 0
    with transaction.atomic():
        for service in preview.services:
            effective_at = first_renewal_after(service, earliest)
            if effective_at is None:
                continue
            ScheduledPriceChange.objects.filter(service=service, applied_at__isnull=True).delete()
            ScheduledPriceChange.objects.create(
                service=service,
                currency=service.currency,
                recurring_amount=new_recurring_amount(service, preview.new_amount),
                package_amount=preview.new_amount,
                effective_at=effective_at,
                created_by=user,
            )
            scheduled += 1
    return scheduled


def scheduled_price_changes_due(*, now: datetime) -> QuerySet[ScheduledPriceChange]:
    """Changes whose first period at the new price has started and that are not applied yet."""
    return ScheduledPriceChange.objects.filter(applied_at__isnull=True, effective_at__lte=now)


def service_price_for_period(service: Service, period_start: datetime) -> Money:
    """What one period of `service` starting at `period_start` costs."""
    change = (
        ScheduledPriceChange.objects.filter(
            service=service, applied_at__isnull=True, effective_at__lte=period_start
        )
        .order_by("-effective_at")
        .first()
    )
    return change.recurring_amount if change is not None else service.recurring_amount


def scheduled_price_change_apply(*, change: ScheduledPriceChange, now: datetime) -> Service:
    """The service's price becomes the new one (called when its period at that price is billed)."""
    with transaction.atomic():
        service = Service.objects.select_for_update().get(pk=change.service_id)
        service.recurring_amount = change.recurring_amount
        service.package_amount = change.package_amount
        service.save(update_fields=["recurring_amount", "package_amount"])
        change.applied_at = now
        change.save(update_fields=["applied_at"])
    return service


def price_change_notices_due(now: datetime) -> int:
    """Email each customer whose price changes within the notice period and was not told yet.

    Returns how many notices were queued (a package that sends no such email counts none).
    """
    until = now + timedelta(days=settings.BILLING_PRICE_CHANGE_NOTICE_DAYS)
    queued = 0
    due = ScheduledPriceChange.objects.filter(
        applied_at__isnull=True, notice_sent_at__isnull=True, effective_at__lte=until
    ).select_related("service__package")
    for change in due:
        with transaction.atomic():
            claimed = ScheduledPriceChange.objects.filter(
                pk=change.pk, notice_sent_at__isnull=True
            ).update(notice_sent_at=now)
            if not claimed:
                continue  # another run sent it
            queued += notify_service(
                NotificationEvent.PRICE_CHANGE,
                change.service,
                effective=f"{change.effective_at:%Y-%m-%d}",
                old_amount=format_money(change.service.recurring_amount),
                new_amount=format_money(change.recurring_amount),
            )
    return queued
