"""Dunning to the end: a service left suspended and unpaid is warned, then terminated."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine

from payments.services import payment_record
from subscriptions.billing import BillingRun, services_run_billing
from subscriptions.models import Invoice, ProvisioningJob, Service
from tests.factories import active_service
from tests.support.jobs import run_all_jobs, send_queued_notifications
from tests.support.mail import subjects, text

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def dunning_settings(settings):
    settings.BILLING_TERMINATE_AFTER_DAYS = 30
    settings.BILLING_REMINDER_DAYS = 3


def run_and_send(now: datetime) -> BillingRun:
    run = services_run_billing(now=now)
    send_queued_notifications()
    return run


def suspended_for_nonpayment(customer, mailoutbox) -> tuple[Service, datetime]:
    """A service whose renewal went unpaid and which the provider suspended at the due date;
    the emails so far are sent and forgotten."""
    service = active_service(customer, name="Video Pro")
    due = service.current_period_end
    with time_machine.travel(due, tick=False):
        services_run_billing(now=due)
        run_all_jobs()  # the provider suspends it now
    send_queued_notifications()
    mailoutbox.clear()
    service.refresh_from_db()
    assert service.status == Service.Status.SUSPENDED and service.suspended_at == due
    return service, due


def renewal(service: Service) -> Invoice:
    return Invoice.objects.of_service(service.pk).get(kind=Invoice.Kind.RENEWAL)


def test_an_unpaid_suspended_service_is_given_a_termination_date(customer, mailoutbox):
    service, suspended = suspended_for_nonpayment(customer, mailoutbox)

    services_run_billing(now=suspended + DAY)

    service.refresh_from_db()
    assert service.terminates_at == suspended + 30 * DAY
    assert service.status == Service.Status.SUSPENDED


def test_the_customer_is_warned_once_with_the_date(customer, mailoutbox):
    service, suspended = suspended_for_nonpayment(customer, mailoutbox)
    ends = suspended + 30 * DAY
    invoice = renewal(service)

    assert run_and_send(ends - 3 * DAY - timedelta(seconds=1)).termination_warnings == 0
    assert run_and_send(ends - 3 * DAY).termination_warnings == 1
    assert run_and_send(ends - 2 * DAY).termination_warnings == 0
    assert run_and_send(ends - timedelta(seconds=1)).termination_warnings == 0

    assert subjects(mailoutbox) == [f"Your service Video Pro will be terminated on {ends:%Y-%m-%d}"]
    body = text(mailoutbox[0].body)
    assert f"terminated on {ends:%Y-%m-%d}" in body
    assert f"invoice {invoice.number} of 12.00 USD" in body
    service.refresh_from_db()
    assert service.status == Service.Status.SUSPENDED


def test_it_is_terminated_on_the_date_and_the_customer_told(customer, mailoutbox):
    service, suspended = suspended_for_nonpayment(customer, mailoutbox)
    ends = suspended + 30 * DAY
    run_and_send(ends - 3 * DAY)
    mailoutbox.clear()

    run = run_and_send(ends)

    assert (run.terminated, run.termination_warnings) == (1, 0)
    assert "1 terminated for non-payment" in str(run)
    service.refresh_from_db()
    assert service.status == Service.Status.TERMINATED and service.terminated_at
    assert service.jobs.filter(
        action=ProvisioningJob.Action.TERMINATE, status=ProvisioningJob.Status.QUEUED
    ).exists()
    assert subjects(mailoutbox) == ["Service terminated: Video Pro"]
    assert run_and_send(ends + DAY).terminated == 0
    run_all_jobs()  # the provider removes it; the customer is not told twice
    send_queued_notifications()
    assert subjects(mailoutbox) == ["Service terminated: Video Pro"]


def test_paying_meanwhile_lifts_the_suspension_and_the_termination(customer, mailoutbox):
    service, suspended = suspended_for_nonpayment(customer, mailoutbox)
    ends = suspended + 30 * DAY
    run_and_send(ends - 3 * DAY)
    invoice = renewal(service)

    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)

    service.refresh_from_db()
    assert service.terminates_at is None
    # Before the provider has even unsuspended it, the run leaves it alone.
    assert run_and_send(ends).terminated == 0
    run_all_jobs()
    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE
    assert run_and_send(ends + DAY).terminated == 0


def test_a_date_that_passed_unwarned_is_moved_so_the_warning_comes_first(customer, mailoutbox):
    service, suspended = suspended_for_nonpayment(customer, mailoutbox)
    services_run_billing(now=suspended + DAY)  # dated suspended + 30 days
    late = suspended + 40 * DAY  # the run did not run in the meantime

    run = run_and_send(late)

    assert (run.termination_warnings, run.terminated) == (1, 0)
    service.refresh_from_db()
    assert service.terminates_at == late + 3 * DAY
    assert subjects(mailoutbox) == [
        f"Your service Video Pro will be terminated on {late + 3 * DAY:%Y-%m-%d}"
    ]
    assert run_and_send(late + 3 * DAY).terminated == 1


def test_a_service_suspended_by_staff_with_nothing_unpaid_is_never_terminated(customer, settings):
    settings.BILLING_TERMINATE_AFTER_DAYS = 5
    service = active_service(customer, name="Video Pro")
    start = service.current_period_start
    Service.objects.filter(pk=service.pk).update(
        status=Service.Status.SUSPENDED, suspended_at=start + DAY
    )

    run = services_run_billing(now=start + 20 * DAY)  # its paid period still runs

    assert (run.termination_warnings, run.terminated) == (0, 0)
    service.refresh_from_db()
    assert service.terminates_at is None


def test_termination_is_off_when_the_delay_is_zero(customer, mailoutbox, settings):
    settings.BILLING_TERMINATE_AFTER_DAYS = 0
    service, suspended = suspended_for_nonpayment(customer, mailoutbox)

    for days in (1, 27, 30, 365):
        run = run_and_send(suspended + days * DAY)
        assert (run.termination_warnings, run.terminated) == (0, 0)

    service.refresh_from_db()
    assert service.status == Service.Status.SUSPENDED and service.terminates_at is None
    assert mailoutbox == []
