"""A service's quotas as sold, the usage against them, and what usage beyond them costs.

A service snapshots its package's quotas when it is ordered (and again when its
package changes): each quota's included limit (None: unlimited) and its
overage price in the service's currency. A package's overage price has one
currency; a service sold in another has no overage price for that quota, so
there its limit is hard, as if overages were off. The catalog never converts.

Usage counts per billing period: a record belongs to the period its
`occurred_at` falls in, [period start, period end). A service with no period
(a one-time purchase, one still being set up) counts from its start; an
outside trial, before the first paid period, counts on its own and is never
billed (the trial is free).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import F
from djmoney.money import Money

from catalog.currency import format_money
from catalog.models import Package
from catalog.relations import related_objects

from .bulk import OneOf
from .models import Service, UsageRecord

CENT = Decimal("0.01")


def quota_snapshot(package: Package, currency: str) -> list[dict]:
    """The package's quotas as a service sold in `currency` keeps them (JSON-ready).

    One query, none when `quotas__quota` was prefetched.
    """
    values = (
        related_objects(package, "quotas")
        if "quotas" in getattr(package, "_prefetched_objects_cache", {})
        else package.quotas.select_related("quota")
    )
    snapshot = []
    for value in values:
        price = value.overage_price
        snapshot.append(
            {
                "code": value.quota.code,
                "name": value.quota.name,
                "unit": value.quota.unit,
                "limit": value.limit,
                "overage_price": str(price.amount)
                if price is not None and str(price.currency) == currency
                else None,
            }
        )
    return snapshot


@dataclass(frozen=True)
class ServiceQuota:
    """One quota of a service, read from its snapshot."""

    code: str
    name: str
    unit: str
    limit: int | None
    overage_price: Money | None

    @property
    def is_unlimited(self) -> bool:
        return self.limit is None

    def billable(self, overages_enabled: bool) -> bool:
        """Usage beyond the limit is billed, rather than stopped."""
        return overages_enabled and self.limit is not None and self.overage_price is not None

    def is_hard(self, overages_enabled: bool) -> bool:
        return self.limit is not None and not self.billable(overages_enabled)


def service_quotas(service: Service) -> list[ServiceQuota]:
    return [
        ServiceQuota(
            code=item["code"],
            name=item["name"],
            unit=item["unit"],
            limit=item["limit"],
            overage_price=Money(Decimal(item["overage_price"]), service.currency)
            if item.get("overage_price") is not None
            else None,
        )
        for item in service.quotas or []
    ]


def service_quota(service: Service, code: str) -> ServiceQuota | None:
    return next((quota for quota in service_quotas(service) if quota.code == code), None)


def usage_window(service: Service, moment: datetime) -> tuple[datetime | None, datetime | None]:
    """The period usage at `moment` counts in: (start, end), either None when open."""
    start, end = service.current_period_start, service.current_period_end
    if start is None or end is None:
        return service.activated_at, None
    if moment < start:
        # An outside trial runs before the first paid period: its usage counts on its own.
        return service.activated_at, start
    if moment < end:
        return start, end
    # The period ended and the run has not moved it on yet: usage now is the next one's.
    return end, None


def usage_total(service: Service, code: str, start: datetime | None, end: datetime | None):
    """The usage of one quota in [start, end); zero when there is none."""
    records = UsageRecord.objects.filter(service=service, quota_code=code)
    if start is not None:
        records = records.filter(occurred_at__gte=start)
    if end is not None:
        records = records.filter(occurred_at__lt=end)
    return sum(records.values_list("quantity", flat=True), Decimal(0))


@dataclass(frozen=True)
class QuotaUsage:
    """What a page shows for one quota: used against included, in figures and as a bar."""

    quota: ServiceQuota
    used: Decimal
    overages_enabled: bool

    @property
    def over(self) -> Decimal:
        if self.quota.limit is None:
            return Decimal(0)
        return max(self.used - self.quota.limit, Decimal(0))

    @property
    def bar_max(self) -> Decimal:
        """The bar's scale: the limit, or the usage past it, so the bar still shows the overage."""
        return max(Decimal(self.quota.limit or 0), self.used, Decimal(1))

    # <meter> attributes take plain decimals whatever the page's language.
    @property
    def meter_value(self) -> str:
        return f"{self.used:f}"

    @property
    def meter_max(self) -> str:
        return f"{self.bar_max:f}"

    @property
    def meter_high(self) -> str:
        return str(self.quota.limit or 0)

    @property
    def reached(self) -> bool:
        return self.quota.limit is not None and self.used >= self.quota.limit

    @property
    def used_label(self) -> str:
        return f"{figure(self.used)} {self.quota.unit}"

    @property
    def limit_label(self) -> str:
        if self.quota.limit is None:
            return "unlimited"
        return f"{self.quota.limit:,} {self.quota.unit}"

    @property
    def note(self) -> str:
        """Why the figures matter: billed overage, a hard limit reached, or nothing."""
        if not self.reached:
            return ""
        if self.quota.billable(self.overages_enabled):
            assert self.quota.overage_price is not None  # billable says so
            return (
                f"{figure(self.over)} {self.quota.unit} over, billed at "
                f"{format_money(self.quota.overage_price)} per {self.quota.unit} "
                "at the end of the period"
            )
        return "Limit reached"


def figure(value: Decimal) -> str:
    """A quantity without trailing zeros: 12, 12.5, 1,250."""
    if value == value.to_integral_value():
        return f"{int(value):,}"
    return f"{value.normalize():,f}"


def service_usage(service: Service, now: datetime) -> tuple[datetime | None, list[QuotaUsage]]:
    """Each quota's usage in the period running at `now` (one query), and the period's start."""
    start, end = usage_window(service, now)
    records = UsageRecord.objects.filter(service=service)
    if start is not None:
        records = records.filter(occurred_at__gte=start)
    if end is not None:
        records = records.filter(occurred_at__lt=end)
    used: dict[str, Decimal] = defaultdict(Decimal)
    for code, quantity in records.values_list("quota_code", "quantity"):
        used[code] += quantity
    return start, [
        QuotaUsage(quota=quota, used=used[quota.code], overages_enabled=service.overages_enabled)
        for quota in service_quotas(service)
    ]


@dataclass(frozen=True)
class OverageLine:
    """Usage of one quota beyond what the period included, as an invoice line bills it.

    `quantity_over` may have decimals (GB); `amount` is exact, rounded half up once
    to the cent, in the service's currency.
    """

    quota_code: str
    description: str
    included: int
    used: Decimal
    quantity_over: Decimal
    unit_price: Money
    amount: Money


def overage_lines_for(
    periods: Iterable[tuple[Service, datetime, datetime]],
) -> dict[int, list[OverageLine]]:
    """The overage lines of each (service, period start, period end), by service id.

    For the billing run: one query for the whole set (none when no service bills
    overages). Services without an overage to bill are left out of the result.
    The services' own fields (currency, quotas, overages_enabled) are read, so
    they need no related rows.
    """
    billable: dict[int, tuple[Service, datetime, datetime, list[ServiceQuota]]] = {}
    for service, start, end in periods:
        quotas = [q for q in service_quotas(service) if q.billable(service.overages_enabled)]
        if quotas:
            billable[service.pk] = (service, start, end, quotas)
    if not billable:
        return {}
    earliest = min(start for _, start, _, _ in billable.values())
    latest = max(end for _, _, end, _ in billable.values())
    used: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    # The set's widest window in SQL, each service's own period here: periods
    # differ per service, and the rows are only the batch's usage of one period.
    rows = UsageRecord.objects.filter(
        OneOf(F("service_id"), billable), occurred_at__gte=earliest, occurred_at__lt=latest
    ).values_list("service_id", "quota_code", "occurred_at", "quantity")
    for service_id, code, occurred_at, quantity in rows.iterator(chunk_size=5000):
        _, start, end, _ = billable[service_id]
        if start <= occurred_at < end:
            used[service_id, code] += quantity
    lines: dict[int, list[OverageLine]] = {}
    for service_id, (_, start, end, quotas) in billable.items():
        service_lines = [
            line
            for quota in quotas
            if (line := _overage_line(quota, used[service_id, quota.code], start, end))
        ]
        if service_lines:
            lines[service_id] = service_lines
    return lines


def service_overage_lines(
    service: Service, period_start: datetime, period_end: datetime
) -> list[OverageLine]:
    """One service's overage lines for [period_start, period_end)."""
    return overage_lines_for([(service, period_start, period_end)]).get(service.pk, [])


def _overage_line(
    quota: ServiceQuota, used: Decimal, start: datetime, end: datetime
) -> OverageLine | None:
    assert quota.limit is not None and quota.overage_price is not None  # billable quotas only
    over = used - quota.limit
    if over <= 0:
        return None
    price = quota.overage_price
    amount = Money((over * price.amount).quantize(CENT, rounding=ROUND_HALF_UP), price.currency)
    return OverageLine(
        quota_code=quota.code,
        description=(
            f"{quota.name}: {figure(used)} {quota.unit} used {start:%Y-%m-%d} – "
            f"{end:%Y-%m-%d}, {quota.limit:,} included, {figure(over)} over "
            f"at {format_money(price)} per {quota.unit}"
        ),
        included=quota.limit,
        used=used,
        quantity_over=over,
        unit_price=price,
        amount=amount,
    )
