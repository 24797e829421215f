"""Billing runs and plan changes racing each other on a real PostgreSQL server."""

from __future__ import annotations

import pytest

from catalog.models import PackageScaling
from subscriptions.billing import services_run_billing
from subscriptions.models import Invoice, PlanChange
from subscriptions.plan_changes import service_change_package
from tests.factories import (
    PackageFactory,
    PackagePriceAmountFactory,
    PackagePriceFactory,
    active_service,
    customers,
    usd,
)
from tests.support.concurrency import race

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
