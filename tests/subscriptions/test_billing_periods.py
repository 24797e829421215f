"""Which period the billing run bills, and when: trials, suspension, the anchored cycle."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

import pytest
import time_machine
from django.apps import apps as django_apps

from payments.services import payment_record
from subscriptions.billing import services_run_billing
from subscriptions.lifecycle import service_suspend, service_unsuspend
from subscriptions.models import Invoice, Service
from subscriptions.quotes import order_quote
from tests.factories import active_service, paid_services, shop_package, usd
from tests.support.jobs import run_all_jobs

pytestmark = pytest.mark.django_db


def at(text: str) -> datetime:
    """A UTC moment: `2026-03-08` or `2026-03-08 12:00`."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def renewal_lines(service: Service):
    return Invoice.objects.of_service(service.pk).filter(kind=Invoice.Kind.RENEWAL)


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


def pay_renewals(service: Service) -> None:
    for invoice in renewal_lines(service).filter(status=Invoice.Status.UNPAID):
        payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)


def test_a_service_started_on_31_january_renews_on_each_months_last_day_and_the_31st(customer):
    service = service_started_on(customer, "2026-01-31 10:00")
    assert service.billing_anchor == at("2026-01-31 10:00")
    ends = []
    for _ in range(4):
        services_run_billing(now=service.current_period_end)
        pay_renewals(service)
        service.refresh_from_db()
        ends.append(f"{service.current_period_end:%m-%d}")
    assert ends == ["03-31", "04-30", "05-31", "06-30"]
    assert f"{service.current_period_start:%m-%d}" == "05-31"


def test_a_yearly_service_started_on_29_february_renews_on_28_february_and_29_in_leap_years(
    customer,
):
    service = service_started_on(customer, "2028-02-29", billing_period="year")
    ends = [f"{service.current_period_end:%Y-%m-%d}"]
    for _ in range(4):
        services_run_billing(now=service.current_period_end)
        pay_renewals(service)
        service.refresh_from_db()
        ends.append(f"{service.current_period_end:%Y-%m-%d}")
    assert ends == ["2029-02-28", "2030-02-28", "2031-02-28", "2032-02-29", "2033-02-28"]


def fill_anchors():
    migration = importlib.import_module("subscriptions.migrations.0009_service_billing_anchor")
    migration.fill_anchors(django_apps, None)


def test_the_migration_anchors_existing_services_on_their_first_paid_period(customer):
    service = service_started_on(customer, "2026-01-31")
    Service.objects.filter(pk=service.pk).update(billing_anchor=None)

    fill_anchors()

    service.refresh_from_db()
    assert service.billing_anchor == at("2026-01-31")


def test_the_migration_keeps_a_drifted_service_on_the_day_it_renews_now(customer):
    service = service_started_on(customer, "2026-01-31")
    # Renewed before anchors existed: 28 February + 1 month = 28 March.
    Service.objects.filter(pk=service.pk).update(
        billing_anchor=None,
        current_period_start=at("2026-02-28"),
        current_period_end=at("2026-03-28"),
        next_bill_at=at("2026-03-28"),
    )

    fill_anchors()

    service.refresh_from_db()
    assert service.billing_anchor == at("2026-02-28")
    services_run_billing(now=at("2026-03-28"))
    assert renewal_lines(service).get().period_end == at("2026-04-28")


def test_an_inside_trial_as_long_as_a_period_is_followed_by_the_first_paid_period(customer):
    service = service_started_on(
        customer, "2026-03-01", trial_period=1, trial_interval="month", trial_mode="inside"
    )
    assert (service.current_period_start, service.current_period_end) == (
        at("2026-04-01"),
        at("2026-05-01"),
    )

    assert services_run_billing(now=at("2026-04-01")).invoices == 1
    invoice = renewal_lines(service).get()
    # Nothing billed for the trial month, which is over when the trial ends.
    assert (invoice.period_start, invoice.period_end, invoice.due_at) == (
        at("2026-04-01"),
        at("2026-05-01"),
        at("2026-04-01"),
    )
    pay_renewals(service)
    assert services_run_billing(now=at("2026-04-30")).invoices == 0
    assert services_run_billing(now=at("2026-05-01")).invoices == 1


def test_an_inside_trial_longer_than_a_period_bills_from_its_end_never_time_past(customer):
    service = service_started_on(
        customer, "2026-03-01", trial_period=45, trial_interval="day", trial_mode="inside"
    )

    services_run_billing(now=service.trial_ends_at)

    invoice = renewal_lines(service).get()
    assert invoice.period_start == invoice.due_at == at("2026-04-15")
    assert invoice.period_end == at("2026-05-15")


def test_the_quote_words_an_inside_trial_as_long_as_a_period_as_coming_before_it(customer):
    package, monthly, options = shop_package(
        trial_period=31, trial_interval="day", trial_mode="inside"
    )
    with time_machine.travel(at("2026-03-01"), tick=False):
        quote = order_quote(
            package=package, price=monthly, variant_options=[options["eu"]], quantity=1,
            currency="USD", customer=customer,
        )  # fmt: skip
    assert quote.trial_label == (
        "Free 31-day trial from when your service is ready, then 12.00\xa0USD / month."
    )
    assert quote.first_due_label == "31 days after your service is ready"


def test_the_first_due_date_counts_the_trial_from_when_the_service_is_ready(customer):
    # Ordered on 2028-03-15 and ready on 2028-03-19: the 14-day trial ends on
    # 2028-04-02, and that is when the service bills, whatever the order date.
    with time_machine.travel(at("2028-03-15"), tick=False):
        (service,) = paid_services(customer, trial_period=14, trial_interval="day")
    with time_machine.travel(at("2028-03-19"), tick=False):
        run_all_jobs()
    service.refresh_from_db()
    assert service.next_due_at == service.trial_ends_at == at("2028-04-02")
    services_run_billing(now=at("2028-04-02"))
    assert renewal_lines(service).get().due_at == at("2028-04-02")
