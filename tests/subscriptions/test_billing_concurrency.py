"""Billing runs and plan changes racing each other on a real PostgreSQL server."""

from __future__ import annotations

import pytest

from catalog.models import PackageScaling
from subscriptions import billing
from subscriptions.billing import services_run_billing
from subscriptions.models import Invoice, InvoiceLine, PlanChange, Service
from subscriptions.plan_changes import service_change_package
from tests.factories import (
    PackageFactory,
    PackagePriceAmountFactory,
    PackagePriceFactory,
    active_service,
    customers,
    paid_services,
    usd,
)
from tests.support.concurrency import race
from tests.support.jobs import run_all_jobs

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_overlapping_billing_runs_bill_each_period_once():
    services = [
        active_service(customer, variant_code=f"region{n}")
        for n, customer in enumerate(customers(3))
    ]
    now = max(service.current_period_end for service in services)

    outcomes = race([lambda: services_run_billing(now=now) for _ in range(6)])

    assert outcomes == ["ok"] * 6
    for service in services:
        assert Invoice.objects.of_service(service.pk).filter(kind="renewal").count() == 1


def test_concurrent_upgrades_never_take_more_units_than_the_target_has():
    people = customers(8)
    services = [
        active_service(customer, tier=1, variant_code=f"region{n}")
        for n, customer in enumerate(people)
    ]
    target = PackageFactory(tier=2, stock_qty=3)
    PackagePriceAmountFactory(
        package_price=PackagePriceFactory(package=target, name="Monthly"), price=usd(20)
    )
    for source in {service.package for service in services}:
        PackageScaling.objects.create(from_package=source, to_package=target)

    outcomes = race(
        [
            lambda service=service, customer=customer: service_change_package(
                service=service, customer=customer, package=target
            )
            for service, customer in zip(services, people, strict=True)
        ]
    )

    assert sorted(outcomes) == ["ok"] * 3 + ["sold_out"] * 5, outcomes
    target.refresh_from_db()
    assert target.stock_qty == 0
    assert PlanChange.objects.filter(status="applied").count() == 3


def test_two_runs_at_once_over_many_batches_bill_every_period_once_with_gapless_numbers(
    monkeypatch,
):
    # Small batches, so the two runs interleave batch by batch over the same services.
    monkeypatch.setattr(billing, "BATCH_SIZE", 2)
    services = [
        service
        for n, customer in enumerate(customers(5))
        for service in paid_services(
            customer, quantity=2, allow_quantity="multiple", variant_code=f"zone{n}"
        )
    ]
    run_all_jobs()
    now = max(Service.objects.values_list("current_period_end", flat=True))

    outcomes = race([lambda: services_run_billing(now=now) for _ in range(2)])

    assert outcomes == ["ok", "ok"]
    for service in services:
        lines = InvoiceLine.objects.filter(service=service, kind="price", invoice__kind="renewal")
        assert lines.count() == 1
    renewals = Invoice.objects.filter(kind="renewal")
    assert renewals.count() == 5  # one per customer: their two services are due the same day
    # The orders' invoices and the renewals: numbered 1 to the last, none twice, none skipped.
    numbers = sorted(
        int(n.rsplit("-", 1)[1]) for n in Invoice.objects.values_list("number", flat=True)
    )
    assert numbers == list(range(1, Invoice.objects.count() + 1))
    # Every service told once and in grace once.
    assert Service.objects.filter(status="grace").count() == 10
