"""The staff dashboard's figures of services, orders and invoices; each is one selector.

Every selector reads in a fixed number of queries, whatever the number of
services: it aggregates in the database, or reads the few columns it sums in
one query. Revenue reads payments, which sit above this app: see
`payments.dashboard`, which also puts the whole dashboard together.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import cast

from django.db.models import Count, Prefetch, Q, Sum
from django.urls import reverse
from django.utils import timezone
from djmoney.money import Money

from catalog.models import Package, Variant, VariantOption
from catalog.selectors import unmatched_variant_pairs

from .models import Invoice, Order, ProvisioningJob, Service
from .periods import add_interval, monthly_rate

# Services that pay now: a trial has not paid yet, a suspended one is not being served.
PAYING_STATUSES = (Service.Status.ACTIVE, Service.Status.GRACE)
COUNTED_STATUSES = (
    Service.Status.ACTIVE,
    Service.Status.TRIAL,
    Service.Status.GRACE,
    Service.Status.SUSPENDED,
)
CENT = Decimal("0.01")
# Each kind of item in the attention queue shows this many; the rest are on its list page.
ATTENTION_LIMIT = 20


def to_money(value: Fraction, currency: str) -> Money:
    """An exact amount rounded once, half up, to the cent."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return Money(exact.quantize(CENT, rounding=ROUND_HALF_UP), currency)


def month_start(moment: datetime, months_before: int = 0) -> datetime:
    """Midnight on the 1st of `moment`'s month (in the site's time zone), `months_before` earlier."""
    local = timezone.localtime(moment)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return add_interval(first, -months_before, "month") if months_before else first


def mrr_by_currency() -> dict[str, Money]:
    """Monthly recurring revenue of the services paying now, per currency (one query).

    Yearly / 12, weekly × 52 / 12, daily × 365 / 12, exact, rounded once.
    """
    rows = (
        Service.objects.filter(status__in=PAYING_STATUSES, price_type="recurring")
        .values("currency", "time_interval", "billing_period")
        .annotate(total=Sum("recurring_amount"))
        .order_by()
    )
    exact: dict[str, Fraction] = defaultdict(Fraction)
    for row in rows:
        exact[row["currency"]] += monthly_rate(
            row["total"], row["time_interval"], row["billing_period"]
        )
    return {currency: to_money(value, currency) for currency, value in sorted(exact.items())}


def service_counts() -> dict[str, int]:
    """How many services are active, in trial, in grace and suspended (one query)."""
    counts = dict(
        Service.objects.filter(status__in=COUNTED_STATUSES)
        .values_list("status")
        .annotate(count=Count("pk"))
        .order_by()
    )
    return {status: counts.get(status, 0) for status in COUNTED_STATUSES}


@dataclass(frozen=True)
class ThisAndLast:
    this_month: int
    last_month: int


def orders_this_and_last_month(now: datetime) -> ThisAndLast:
    """Orders placed this calendar month and the last one (one query)."""
    this, last = month_start(now), month_start(now, 1)
    counts = Order.objects.aggregate(
        this_month=Count("pk", filter=Q(created_at__gte=this, created_at__lte=now)),
        last_month=Count("pk", filter=Q(created_at__gte=last, created_at__lt=this)),
    )
    return ThisAndLast(counts["this_month"], counts["last_month"])


@dataclass(frozen=True)
class Churn:
    ended: int
    live_at_start: int

    @property
    def rate(self) -> Decimal | None:
        """Percent of the services live at the month's start that ended since; None without any."""
        if not self.live_at_start:
            return None
        return (Decimal(self.ended) * 100 / self.live_at_start).quantize(
            Decimal("0.1"), rounding=ROUND_HALF_UP
        )


def churn_this_month(now: datetime) -> Churn:
    """Services cancelled or terminated this month ÷ services live when it began (one query).

    Live at the start: created before it and not ended before it. Only those
    count as churned, so a service bought and cancelled this month does not.
    """
    start = month_start(now)
    ended_before = Q(cancelled_at__lt=start) | Q(terminated_at__lt=start)
    live = Q(created_at__lt=start) & ~ended_before
    ended_since = Q(cancelled_at__gte=start, cancelled_at__lte=now) | Q(
        terminated_at__gte=start, terminated_at__lte=now
    )
    counts = Service.objects.filter(live).aggregate(
        live=Count("pk"), ended=Count("pk", filter=ended_since)
    )
    return Churn(ended=counts["ended"], live_at_start=counts["live"])


@dataclass(frozen=True)
class Overdue:
    count: int
    totals: list[Money]


def overdue_invoices(now: datetime) -> Overdue:
    """Unpaid invoices past their due date, and what they add up to per currency (one query)."""
    rows = (
        Invoice.objects.filter(status=Invoice.Status.UNPAID, due_at__lt=now)
        .values("currency")
        .annotate(count=Count("pk"), total=Sum("total"))
        .order_by("currency")
    )
    return Overdue(
        count=sum(row["count"] for row in rows),
        totals=[Money(row["total"], row["currency"]) for row in rows],
    )


def month_starts(now: datetime, months: int = 12) -> list[datetime]:
    """The first instants of the last `months` months, oldest first, this month last."""
    return [month_start(now, back) for back in range(months - 1, -1, -1)]


def mrr_history(now: datetime, months: int = 12) -> dict[str, list[Money]]:
    """Per currency, the MRR at the end of each of the last `months` months (one query).

    A service counts in a month when it was running at the month's end (now,
    for this month): activated, its trial over, not yet cancelled or terminated.
    Suspension and grace are not kept as history, so they are not told apart here.
    """
    starts = month_starts(now, months)
    ends = [*starts[1:], now]
    rows = Service.objects.filter(
        price_type="recurring", activated_at__isnull=False, activated_at__lte=now
    ).exclude(Q(cancelled_at__lt=starts[0]) | Q(terminated_at__lt=starts[0]))
    exact: dict[str, list[Fraction]] = {}
    for row in rows.values(
        "currency", "recurring_amount", "time_interval", "billing_period",
        "activated_at", "trial_ends_at", "cancelled_at", "terminated_at",
    ):  # fmt: skip
        # .values() gives the amount column as a Decimal; the stubs expect a Money.
        amount = cast(Decimal, row["recurring_amount"])
        rate = monthly_rate(amount, row["time_interval"], row["billing_period"])
        activated = row["activated_at"]
        assert activated is not None  # filtered above
        series = exact.setdefault(row["currency"], [Fraction(0)] * months)
        ends_at = [row["cancelled_at"], row["terminated_at"]]
        ended = min((moment for moment in ends_at if moment is not None), default=None)
        trial_ends = row["trial_ends_at"]
        for index, end in enumerate(ends):
            if (
                activated < end
                and (trial_ends is None or trial_ends <= end)
                and (ended is None or ended > end)
            ):
                series[index] += rate
    return {
        currency: [to_money(value, currency) for value in series]
        for currency, series in sorted(exact.items())
    }


@dataclass(frozen=True)
class AttentionItem:
    kind: str
    text: str
    url: str


def _change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def needs_attention(now: datetime) -> list[AttentionItem]:
    """What staff must look at, each item linking to its record (nine queries).

    Failed provider jobs, services flagged for staff, jobs waiting for staff
    (the Manual plugin), invoices unpaid past their services' grace, and
    packages on sale with a variant option no pricing option can buy.
    """
    items: list[AttentionItem] = []
    Job = ProvisioningJob
    for job in Job.objects.filter(status=Job.Status.FAILED).select_related("service")[
        :ATTENTION_LIMIT
    ]:
        items.append(
            AttentionItem(
                "Failed provisioning",
                f"{job.get_action_display()} of {job.service}: {job.last_error}",
                _change_url(job),
            )
        )
    for service in Service.objects.filter(needs_attention=True)[:ATTENTION_LIMIT]:
        items.append(
            AttentionItem(
                "Service needs attention",
                f"{service}: {service.provisioning_error or 'flagged'}",
                _change_url(service),
            )
        )
    for job in Job.objects.filter(status=Job.Status.WAITING).select_related("service")[
        :ATTENTION_LIMIT
    ]:
        items.append(
            AttentionItem(
                "Waiting for staff",
                f"{job.get_action_display()} of {job.service}: {job.result_message}",
                _change_url(job.service),
            )
        )
    past_grace = (
        Invoice.objects.filter(status=Invoice.Status.UNPAID, due_at__lt=now)
        .filter(pk__in=Invoice.objects.filter(lines__service__grace_ends_at__lte=now).values("pk"))
        .order_by("due_at", "pk")
    )
    for invoice in past_grace[:ATTENTION_LIMIT]:
        items.append(
            AttentionItem(
                "Overdue past grace",
                f"Invoice {invoice.number}, {invoice.total}, due {invoice.due_at:%Y-%m-%d}",
                _change_url(invoice),
            )
        )
    for package, warnings in unmatched_variant_packages():
        items.append(
            AttentionItem(
                "Unmatched variant prices",
                f"{package.name}: {len(warnings)} variant option(s) cannot be bought "
                "with some pricing option",
                _change_url(package),
            )
        )
    return items


def unmatched_variant_packages() -> list[tuple[Package, list[str]]]:
    """Packages not retired whose variant options lack a price of a pricing option's name
    (five queries), with the package page's warnings about them."""
    packages = (
        Package.objects.filter(retired=False, variants__isnull=False)
        .distinct()
        .order_by("name", "pk")
        .prefetch_related(
            "prices",
            Prefetch(
                "variants",
                queryset=Variant.objects.prefetch_related(
                    Prefetch("options", queryset=VariantOption.objects.prefetch_related("prices"))
                ),
            ),
        )
    )
    found = []
    for package in packages:
        warnings = unmatched_variant_pairs(package=package)
        if warnings:
            found.append((package, warnings))
    return found
