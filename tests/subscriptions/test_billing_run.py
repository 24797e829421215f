"""The billing run over sets of services: its query count, quantity on one invoice, overage
lines, and staff price changes, each through `services_run_billing`."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from djmoney.money import Money

from subscriptions.billing import services_run_billing
from subscriptions.models import Invoice, LineKind, ScheduledPriceChange, Service
from subscriptions.usage import usage_record
from tests.factories import active_service, metered_service, paid_services, usd
from tests.support.jobs import run_all_jobs, send_queued_notifications

pytestmark = pytest.mark.django_db


def due_services(count: int):
    """`count` active services of one package, two per customer, due at one moment."""
    services = []
    for n in range((count + 1) // 2):
        customer = get_user_model().objects.create_user(
            username=f"q{count}-{n}@example.com", email=f"q{count}-{n}@example.com"
        )
        services += paid_services(
            customer, quantity=2, allow_quantity="multiple", variant_code=f"r{count}-{n}"
        )
    run_all_jobs()
    due = max(Service.objects.values_list("current_period_end", flat=True))
    Service.objects.filter(pk__in=[s.pk for s in services]).update(
        current_period_end=due, next_bill_at=due, next_due_at=due, grace_period=0
    )
    return due


def queries_of_a_run(count: int) -> tuple[int, int]:
    now = due_services(count)
    with CaptureQueriesContext(connection) as queries:
        run = services_run_billing(now=now)
    # Every service billed, in grace at once (no grace period) and its suspension queued.
    assert (run.grace, run.suspended) == (count, count)
    return len(queries), run.invoices


def test_a_run_over_three_times_the_services_makes_the_same_number_of_queries():
    small, small_invoices = queries_of_a_run(4)
    Invoice.objects.all().update(status=Invoice.Status.CANCELLED)
    Service.objects.update(status=Service.Status.CANCELLED, next_bill_at=None)
    large, large_invoices = queries_of_a_run(12)

    assert (small_invoices, large_invoices) == (2, 6)
    assert small == large


def test_quantity_n_of_one_package_renews_on_one_invoice_with_a_line_per_service(customer):
    services = paid_services(customer, quantity=3, allow_quantity="multiple")
    run_all_jobs()
    due = max(Service.objects.values_list("current_period_end", flat=True))

    run = services_run_billing(now=due)

    assert run.invoices == 1
    invoice = Invoice.objects.get(kind=Invoice.Kind.RENEWAL)
    lines = list(invoice.lines.order_by("service_id"))
    assert [line.service_id for line in lines] == [service.pk for service in services]
    assert all(line.amount == usd(12) for line in lines)
    assert invoice.total == usd(36)
    assert "Europe" in lines[0].description
    # The next period is billed on its own invoice, once.
    assert services_run_billing(now=due).invoices == 0


# --- overages -------------------------------------------------------------------


def used(service: Service, quantity: str) -> None:
    moment = service.current_period_start + timedelta(days=1)
    usage_record(
        service=service,
        quota_code="minutes",
        quantity=Decimal(quantity),
        occurred_at=moment,
        idempotency_key=f"use-{service.pk}",
        source="staff",
        now=moment,
    )


def test_usage_beyond_the_quota_is_a_line_on_the_renewal_invoice_with_its_exact_amount(customer):
    service = metered_service(customer, limit=100, overage_price=usd("0.03"), overages_enabled=True)
    service.refresh_from_db()
    used(service, "233.5")  # 133.5 over × 0.03 = 4.005, rounded half up once: 4.01

    services_run_billing(now=service.current_period_end)

    invoice = Invoice.objects.get(kind=Invoice.Kind.RENEWAL)
    price, overage = invoice.lines.order_by("sort_order")
    assert price.kind == LineKind.PRICE and price.amount == usd(12)
    assert overage.kind == LineKind.OVERAGE
    assert overage.amount == overage.unit_amount == Money("4.01", "USD")
    assert overage.quantity == 1
    assert "133.5 over" in overage.description
    assert invoice.total == Money("16.01", "USD")
    # The invoice bills the new period; paying it moves the service there, not back.
    assert invoice.period_start == service.current_period_end


def test_with_overages_off_usage_beyond_the_quota_is_never_billed(customer):
    service = metered_service(customer, limit=100, overage_price=usd("0.03"))
    service.refresh_from_db()
    used(service, "233.5")

    services_run_billing(now=service.current_period_end)

    invoice = Invoice.objects.get(kind=Invoice.Kind.RENEWAL)
    assert [line.kind for line in invoice.lines.all()] == [LineKind.PRICE]
    assert invoice.total == usd(12)


# --- staff price changes --------------------------------------------------------


def moved_to(service: Service, amount: str, effective_at) -> ScheduledPriceChange:
    return ScheduledPriceChange.objects.create(
        service=service,
        currency="USD",
        recurring_amount=usd(amount),
        package_amount=usd(amount) - (service.recurring_amount - service.package_amount),
        effective_at=effective_at,
    )


def test_the_run_bills_the_new_price_from_the_change_and_then_applies_it(customer):
    service = active_service(customer)
    change = moved_to(service, "25", effective_at=service.current_period_end)

    run = services_run_billing(now=service.current_period_end)

    line = Invoice.objects.get(kind=Invoice.Kind.RENEWAL).lines.get()
    assert line.amount == usd(25)
    assert run.price_changes == 1
    change.refresh_from_db()
    service.refresh_from_db()
    assert change.applied_at == service.current_period_end
    assert service.recurring_amount == usd(25)
    assert service.package_amount == usd(23)


def test_a_period_before_the_change_is_billed_at_the_old_price_and_the_change_waits(customer):
    service = active_service(customer)
    later = service.current_period_end + timedelta(days=31)
    change = moved_to(service, "25", effective_at=later)

    run = services_run_billing(now=service.current_period_end)

    assert Invoice.objects.get(kind=Invoice.Kind.RENEWAL).lines.get().amount == usd(12)
    assert run.price_changes == 0
    change.refresh_from_db()
    assert change.applied_at is None


def test_the_run_sends_a_price_change_notice_once_within_the_notice_period(
    customer, settings, mailoutbox
):
    settings.BILLING_PRICE_CHANGE_NOTICE_DAYS = 10
    service = active_service(customer)
    effective = service.current_period_end
    moved_to(service, "25", effective_at=effective)

    assert services_run_billing(now=effective - timedelta(days=11)).price_notices == 0
    assert services_run_billing(now=effective - timedelta(days=9)).price_notices == 1
    assert services_run_billing(now=effective - timedelta(days=8)).price_notices == 0
    send_queued_notifications()
    (notice,) = [mail for mail in mailoutbox if mail.subject.startswith("New price from")]
    assert "25.00" in notice.body
