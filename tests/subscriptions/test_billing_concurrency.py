"""Billing runs and plan changes racing each other on a real PostgreSQL server."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime

import pytest
from django.conf import settings
from django.db import connection, transaction

from catalog.models import PackageScaling
from subscriptions import billing
from subscriptions.billing import services_run_billing
from subscriptions.billing_process import bill_due_in_process
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


def two_services_each(count: int) -> tuple[list[Service], datetime]:
    """`count` customers with two services each, all due at the latest period end returned."""
    services = [
        service
        for n, customer in enumerate(customers(count))
        for service in paid_services(
            customer, quantity=2, allow_quantity="multiple", variant_code=f"zone{n}"
        )
    ]
    run_all_jobs()
    return services, max(Service.objects.values_list("current_period_end", flat=True))


def test_two_runs_at_once_over_many_batches_bill_every_period_once_with_gapless_numbers(
    monkeypatch,
):
    # Small batches, so the two runs interleave batch by batch over the same services.
    monkeypatch.setattr(billing, "BATCH_SIZE", 2)
    services, now = two_services_each(5)

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


def test_a_run_in_two_processes_bills_every_period_once_with_gapless_numbers(monkeypatch):
    # Small batches: more than one is due, so a second process starts and they share them.
    monkeypatch.setattr(billing, "BATCH_SIZE", 2)
    services, now = two_services_each(6)

    run = services_run_billing(now=now, processes=2)

    assert (run.invoices, run.grace) == (6, 12)
    for service in services:
        lines = InvoiceLine.objects.filter(service=service, kind="price", invoice__kind="renewal")
        assert lines.count() == 1
    numbers = sorted(
        int(n.rsplit("-", 1)[1]) for n in Invoice.objects.values_list("number", flat=True)
    )
    assert numbers == list(range(1, Invoice.objects.count() + 1))
    assert Service.objects.filter(status="grace", next_bill_at=None).count() == 12
    assert services_run_billing(now=now, processes=2).invoices == 0


def test_a_billing_process_started_fresh_bills_on_the_database_that_started_it():
    service = active_service(customers(1)[0], grace_period=3, grace_interval="day")
    now = service.current_period_end

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        billed = pool.submit(
            bill_due_in_process, settings.SETTINGS_MODULE, "default", connection.settings_dict, now
        ).result()

    assert billed == (1, 1)  # one invoice, one service in grace
    service.refresh_from_db()
    assert (service.status, service.next_bill_at) == ("grace", None)
    assert InvoiceLine.objects.get(service=service).invoice.number.endswith("-000002")


def test_a_run_bills_in_its_own_process_inside_a_transaction_or_with_one_batch_due(monkeypatch):
    def no_processes(*args, **kwargs):
        raise AssertionError("no process should start")

    monkeypatch.setattr(billing, "ProcessPoolExecutor", no_processes)
    services = [
        active_service(customer, variant_code=f"r{n}") for n, customer in enumerate(customers(3))
    ]
    now = max(service.current_period_end for service in services)
    with transaction.atomic():
        monkeypatch.setattr(billing, "BATCH_SIZE", 1)
        assert services_run_billing(now=now, processes=2).invoices == 3
        transaction.set_rollback(True)
    monkeypatch.setattr(billing, "BATCH_SIZE", 3)
    assert services_run_billing(now=now, processes=2).invoices == 3
