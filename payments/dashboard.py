"""The staff dashboard on the admin index: revenue read here, the rest from subscriptions.

Revenue is money received: payments that succeeded, less those paid with
account credit (that money was counted when it first came in). Payments sit
above subscriptions, so the selectors reading them, and the dashboard that
puts every figure together, live here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone
from djmoney.money import Money

from catalog.currency import format_money
from subscriptions import dashboard as figures
from subscriptions.dashboard import AttentionItem, Churn, Overdue, ThisAndLast
from subscriptions.models import Service

from .models import Payment

REVENUE = Q(status=Payment.Status.SUCCEEDED) & ~Q(method=Payment.Method.ACCOUNT_CREDIT)


@dataclass(frozen=True)
class Revenue:
    currency: str
    this_month: Money
    last_month: Money


def revenue_this_and_last_month(now: datetime) -> list[Revenue]:
    """Money received this calendar month and the last one, per currency (one query)."""
    this, last = figures.month_start(now), figures.month_start(now, 1)
    rows = (
        Payment.objects.filter(REVENUE, received_at__gte=last, received_at__lte=now)
        .values("amount_currency")
        .annotate(
            this_month=Sum("amount", filter=Q(received_at__gte=this)),
            last_month=Sum("amount", filter=Q(received_at__lt=this)),
        )
        .order_by("amount_currency")
    )
    return [
        Revenue(
            row["amount_currency"],
            Money(row["this_month"] or 0, row["amount_currency"]),
            Money(row["last_month"] or 0, row["amount_currency"]),
        )
        for row in rows
    ]


def revenue_history(now: datetime, months: int = 12) -> dict[str, list[Money]]:
    """Per currency, the money received in each of the last `months` months (one query)."""
    starts = figures.month_starts(now, months)
    index = {start: position for position, start in enumerate(starts)}
    rows = (
        Payment.objects.filter(REVENUE, received_at__gte=starts[0], received_at__lte=now)
        .annotate(month=TruncMonth("received_at"))
        .values("amount_currency", "month")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    history: dict[str, list[Decimal]] = {}
    for row in rows:
        series = history.setdefault(row["amount_currency"], [Decimal(0)] * months)
        series[index[figures.month_start(row["month"])]] += row["total"]
    return {
        currency: [Money(value, currency) for value in series]
        for currency, series in sorted(history.items())
    }


# --- the chart: drawn on the server as SVG, so no script and no inline style is needed


@dataclass(frozen=True)
class Bar:
    x: str
    y: str
    width: str
    height: str
    label: str
    title: str


@dataclass(frozen=True)
class Chart:
    """Revenue bars and an MRR line per month, in SVG user units (the viewBox)."""

    currency: str
    width: int
    height: int
    baseline: str
    bars: list[Bar]
    line: str
    points: list[tuple[str, str]]
    top_label: str
    top_y: str


CHART_WIDTH, CHART_HEIGHT, CHART_LEFT, CHART_BOTTOM, CHART_TOP = 640, 220, 70, 24, 16


def _unit(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.1'))}"


def month_chart(
    currency: str, months: list[datetime], revenue: list[Money], mrr: list[Money]
) -> Chart:
    """Bars of revenue and a line of MRR, scaled to the larger of the two."""
    top = max([value.amount for value in (*revenue, *mrr)] + [Decimal(0)]) or Decimal(1)
    plot_height = Decimal(CHART_HEIGHT - CHART_BOTTOM - CHART_TOP)
    slot = Decimal(CHART_WIDTH - CHART_LEFT) / len(months)
    baseline = Decimal(CHART_HEIGHT - CHART_BOTTOM)

    def y(value: Money) -> Decimal:
        return baseline - value.amount / top * plot_height

    bars = []
    points = []
    for position, (month, received, rate) in enumerate(zip(months, revenue, mrr, strict=True)):
        left = CHART_LEFT + slot * position
        bars.append(
            Bar(
                x=_unit(left + slot / 5),
                y=_unit(y(received)),
                width=_unit(slot * 3 / 5),
                height=_unit(baseline - y(received)),
                label=f"{month:%b}",
                title=f"{month:%B %Y}: revenue {format_money(received)}, MRR {format_money(rate)}",
            )
        )
        points.append((_unit(left + slot / 2), _unit(y(rate))))
    return Chart(
        currency=currency,
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        baseline=_unit(baseline),
        bars=bars,
        line=" ".join(f"{x},{y_}" for x, y_ in points),
        points=points,
        top_label=format_money(Money(top, currency)),
        top_y=_unit(Decimal(CHART_TOP)),
    )


@dataclass
class Dashboard:
    mrr: dict[str, Money]
    counts: dict[str, int]
    orders: ThisAndLast
    revenue: list[Revenue]
    churn: Churn
    overdue: Overdue
    charts: list[Chart]
    attention: list[AttentionItem] = field(default_factory=list)

    @property
    def status_counts(self) -> list[tuple[str, int]]:
        return [(Service.Status(status).label, count) for status, count in self.counts.items()]


def staff_dashboard(now: datetime | None = None) -> Dashboard:
    """Every figure of the admin index, each from its selector (a fixed number of queries)."""
    now = now or timezone.now()
    months = figures.month_starts(now)
    revenue = revenue_history(now)
    mrr = figures.mrr_history(now)
    charts = [
        month_chart(
            currency,
            months,
            revenue.get(currency) or [Money(0, currency)] * len(months),
            mrr.get(currency) or [Money(0, currency)] * len(months),
        )
        for currency in sorted({*revenue, *mrr})
    ]
    return Dashboard(
        mrr=figures.mrr_by_currency(),
        counts=figures.service_counts(),
        orders=figures.orders_this_and_last_month(now),
        revenue=revenue_this_and_last_month(now),
        churn=figures.churn_this_month(now),
        overdue=figures.overdue_invoices(now),
        charts=charts,
        attention=figures.needs_attention(now),
    )
