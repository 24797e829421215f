"""Which period the billing run bills, and when: trials, suspension, the anchored cycle."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from subscriptions.billing import services_run_billing
from subscriptions.lifecycle import service_suspend, service_unsuspend
from subscriptions.models import Invoice, Service
from tests.factories import active_service, usd
from tests.support.jobs import run_all_jobs

pytestmark = pytest.mark.django_db


def at(text: str) -> datetime:
    """A UTC moment: `2026-03-08` or `2026-03-08 12:00`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def renewal_lines(service: Service):
    return Invoice.objects.filter(service=service, kind=Invoice.Kind.RENEWAL)


def service_started_on(customer, day: str, **package_kwargs) -> Service:
    with time_machine.travel(at(day), tick=False):
        return active_service(customer, **package_kwargs)


def suspend(service: Service, day: str) -> None:
    with time_machine.travel(at(day), tick=False):
        service_suspend(service=service)
        run_all_jobs()
    service.refresh_from_db()


def unsuspend(service: Service, day: str) -> None:
    with time_machine.travel(at(day), tick=False):
        service_unsuspend(service=service)
        run_all_jobs()
    service.refresh_from_db()


def test_a_service_suspended_across_its_outside_trial_end_is_billed_its_first_period(customer):
    service = service_started_on(
        customer, "2026-03-01", trial_period=7, trial_interval="day", trial_mode="outside"
    )
    suspend(service, "2026-03-04")
    assert service.status == Service.Status.SUSPENDED

    assert services_run_billing(now=at("2026-03-08")).invoices == 1
    unsuspend(service, "2026-03-11")
    assert services_run_billing(now=at("2026-03-11")).invoices == 0

    invoice = renewal_lines(service).get()
    assert (invoice.period_start, invoice.period_end) == (at("2026-03-08"), at("2026-04-08"))
    assert (invoice.due_at, invoice.total) == (at("2026-03-08"), usd(12))


def test_a_service_suspended_across_its_inside_trial_end_is_billed_the_period_it_started(
    customer,
):
    service = service_started_on(
        customer, "2026-03-01", trial_period=7, trial_interval="day", trial_mode="inside"
    )
    suspend(service, "2026-03-04")

    assert services_run_billing(now=at("2026-03-08")).invoices == 1

    invoice = renewal_lines(service).get()
    assert (invoice.period_start, invoice.period_end) == (at("2026-03-01"), at("2026-04-01"))
    assert invoice.due_at == at("2026-03-08")
