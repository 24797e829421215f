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
from django.db.models import Exists, F, OuterRef, QuerySet
from djmoney.money import Money

from catalog.currency import format_money
from catalog.models import NotificationEvent, Package, PackagePrice

from .bulk import OneOf
from .models import InvoiceLine, LineKind, ScheduledPriceChange, Service
from .notifications import Notice, notify_many, service_notice
from .periods import add_interval, monthly_rate

CENT = Decimal("0.01")
# Changes a billing run applies, or tells customers of, per transaction.
BATCH_SIZE = 1000


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


def price_change_previews(
    *, package: Package, changed: list[tuple[int, str]]
) -> list[PricePreview]:
    """The previews of `package`'s changed (option id, currency) pairs that reach services."""
    options = {
        option.pk: option
        for option in package.prices.filter(pk__in=[pk for pk, _ in changed]).prefetch_related(
            "amounts"
        )
    }
    previews = []
    for option_id, currency in changed:
        if option_id in options:
            preview = price_change_preview(option=options[option_id], currency=currency)
            if preview is not None and preview.count:
                previews.append(preview)
    return previews


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
    return service_prices_for_periods([(service, period_start)])[service.pk]


def service_prices_for_periods(periods: list[tuple[Service, datetime]]) -> dict[int, Money]:
    """What each (service, period start) costs, by service id, in one query for the set.

    A period starting at or after a pending change's `effective_at` costs the
    change's amount; any other costs what the service pays now.
    """
    changes = {
        change.service_id: change
        for change in ScheduledPriceChange.objects.filter(
            OneOf(F("service_id"), [service.pk for service, _ in periods]),
            applied_at__isnull=True,
        ).only("service_id", "effective_at", "recurring_amount", "recurring_amount_currency")
    }  # one pending change per service at most (a constraint)
    prices = {}
    for service, start in periods:
        change = changes.get(service.pk)
        prices[service.pk] = (
            change.recurring_amount
            if change is not None and change.effective_at <= start
            else service.recurring_amount
        )
    return prices


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


def scheduled_price_changes_apply_billed(*, now: datetime) -> int:
    """Apply, in batches, the due changes whose first period at the new price is billed.

    Until that period is billed the service may still owe periods at the old
    price (an unpaid one holds the next back), so the change waits for it.
    Returns how many were applied.
    """
    billed_at_new_price = InvoiceLine.objects.filter(
        service_id=OuterRef("service_id"),
        kind=LineKind.PRICE,
        period_start__gte=OuterRef("effective_at"),
    )
    due = scheduled_price_changes_due(now=now).filter(Exists(billed_at_new_price)).order_by("pk")
    applied = 0
    while True:
        with transaction.atomic():
            # Two runs share the changes; the services are locked as a plan change locks them.
            batch = list(due.select_for_update(skip_locked=True)[:BATCH_SIZE])
            if not batch:
                return applied
            list(
                Service.objects.select_for_update()
                .filter(pk__in=[change.service_id for change in batch])
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            # One UPDATE per new price: the services of one staff change share a few.
            by_price: dict[tuple[Money, Money], list[int]] = {}
            for change in batch:
                key = (change.recurring_amount, change.package_amount)
                by_price.setdefault(key, []).append(change.service_id)
            for (recurring, package), service_ids in by_price.items():
                Service.objects.filter(pk__in=service_ids).update(
                    recurring_amount=recurring, package_amount=package
                )
            ScheduledPriceChange.objects.filter(pk__in=[change.pk for change in batch]).update(
                applied_at=now
            )
            applied += len(batch)


def price_change_notices_due(now: datetime) -> int:
    """Email each customer whose price changes within the notice period and was not told yet.

    A batch of changes per transaction, claimed with SKIP LOCKED so two runs
    that overlap tell each customer once, in one notification task per batch.
    Returns how many notices were queued (a package that sends no such email counts none).
    """
    until = now + timedelta(days=settings.BILLING_PRICE_CHANGE_NOTICE_DAYS)
    queued = 0
    due = (
        ScheduledPriceChange.objects.filter(
            applied_at__isnull=True, notice_sent_at__isnull=True, effective_at__lte=until
        )
        .select_related("service__package")
        .order_by("pk")
    )
    while True:
        with transaction.atomic():
            batch = list(due.select_for_update(skip_locked=True, of=("self",))[:BATCH_SIZE])
            if not batch:
                return queued
            ScheduledPriceChange.objects.filter(pk__in=[change.pk for change in batch]).update(
                notice_sent_at=now
            )
            queued += notify_many(_price_change_notice(change) for change in batch)


def _price_change_notice(change: ScheduledPriceChange) -> Notice:
    notice = service_notice(NotificationEvent.PRICE_CHANGE, change.service)
    return Notice(
        events=notice.events,
        package=notice.package,
        customer_id=notice.customer_id,
        context={
            **notice.context,
            "effective": f"{change.effective_at:%Y-%m-%d}",
            "old_amount": format_money(change.service.recurring_amount),
            "new_amount": format_money(change.recurring_amount),
        },
    )
