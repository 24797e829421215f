"""Service lifecycle: activation, trials, cancellation by the customer, staff changes."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.exceptions import ValidationError

from payments.services import payment_record
from subscriptions.jobs import provisioning_job_complete, provisioning_job_run
from subscriptions.models import ProvisioningJob, Service
from subscriptions.periods import add_interval
from subscriptions.services import (
    service_request_cancellation,
    service_start,
    service_suspend,
    service_terminate,
    service_unsuspend,
    services_apply_due_cancellations,
)

from .helpers import shop_package
from .test_order_place import place

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 1, 31, 12, tzinfo=UTC)


def paid_service(customer, **package_kwargs) -> Service:
    package, monthly, options = shop_package(**package_kwargs)
    order = place(customer, package, monthly, [options["eu"]])
    invoice = order.invoices.get()
    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)
    return order.services.get()


def run_all_jobs() -> None:
    for job in ProvisioningJob.objects.filter(status="queued"):
        provisioning_job_run(job_id=job.pk)
        job.refresh_from_db()
        if job.status == ProvisioningJob.Status.WAITING:  # manual: staff do it
            provisioning_job_complete(job=job)


def active_service(customer, **package_kwargs) -> Service:
    service = paid_service(customer, **package_kwargs)
    run_all_jobs()
    service.refresh_from_db()
    return service


def test_months_are_added_with_month_ends_clamped():
    assert add_interval(NOW, 1, "month").date().isoformat() == "2026-02-28"
    assert add_interval(NOW, 1, "year").date().isoformat() == "2027-01-31"
    assert add_interval(NOW, 2, "week").date().isoformat() == "2026-02-14"


def test_a_manual_service_waits_for_staff_then_becomes_active(customer):
    service = paid_service(customer)
    job = service.jobs.get()

    provisioning_job_run(job_id=job.pk)
    job.refresh_from_db()
    service.refresh_from_db()
    assert job.status == ProvisioningJob.Status.WAITING
    assert service.status == Service.Status.PENDING

    provisioning_job_complete(job=job)
    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE
    assert service.activated_at and service.next_due_at == service.current_period_end


def test_an_outside_trial_comes_before_the_first_paid_period(customer):
    service = Service(
        price_type="recurring", time_interval=1, billing_period="month",
        trial_period=14, trial_interval="day", trial_mode="outside",
    )  # fmt: skip
    service_start(service, now=NOW)
    assert service.status == Service.Status.TRIAL
    assert service.trial_ends_at.date().isoformat() == "2026-02-14"
    assert service.next_due_at == service.trial_ends_at
    assert service.current_period_start == service.trial_ends_at
    assert service.current_period_end.date().isoformat() == "2026-03-14"


def test_an_inside_trial_is_the_start_of_the_first_paid_period(customer):
    service = Service(
        price_type="recurring", time_interval=1, billing_period="month",
        trial_period=14, trial_interval="day", trial_mode="inside",
    )  # fmt: skip
    service_start(service, now=NOW)
    assert service.status == Service.Status.TRIAL
    assert service.next_due_at.date().isoformat() == "2026-02-14"
    assert service.current_period_start == NOW
    assert service.current_period_end.date().isoformat() == "2026-02-28"


def test_a_customer_cancels_immediately_once(customer):
    service = active_service(customer)

    service_request_cancellation(service=service, customer=customer, mode="immediate")

    service.refresh_from_db()
    assert service.status == Service.Status.CANCELLED
    assert service.jobs.filter(action="terminate", status="queued").exists()
    with pytest.raises(ValidationError) as refusal:
        service_request_cancellation(service=service, customer=customer, mode="immediate")
    assert refusal.value.code == "cancellation_requested"


def test_a_cancellation_at_period_end_waits_for_the_period_end(customer):
    service = active_service(customer)

    service_request_cancellation(service=service, customer=customer, mode="period_end")

    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE
    assert service.cancel_at == service.current_period_end
    assert services_apply_due_cancellations(now=service.cancel_at) == 1
    service.refresh_from_db()
    assert service.status == Service.Status.CANCELLED


def test_a_second_request_at_period_end_is_refused(customer):
    service = active_service(customer)
    service_request_cancellation(service=service, customer=customer, mode="period_end")
    with pytest.raises(ValidationError) as refusal:
        service_request_cancellation(service=service, customer=customer, mode="immediate")
    assert refusal.value.code == "cancellation_requested"


def test_it_refuses_a_cancellation_the_package_does_not_allow(customer):
    service = active_service(customer, allow_cancellation=False)
    with pytest.raises(ValidationError) as refusal:
        service_request_cancellation(service=service, customer=customer, mode="immediate")
    assert refusal.value.code == "cancellation_not_allowed"


def test_it_refuses_a_cancellation_by_another_customer(customer, other_customer):
    service = active_service(customer)
    with pytest.raises(ValidationError) as refusal:
        service_request_cancellation(service=service, customer=other_customer, mode="immediate")
    assert refusal.value.code == "not_owner"


def test_cancelling_before_activation_gives_the_stock_back_and_drops_the_create_job(customer):
    service = paid_service(customer, stock_qty=3)
    service.package.refresh_from_db()
    assert service.package.stock_qty == 2

    service_request_cancellation(service=service, customer=customer, mode="immediate")

    service.package.refresh_from_db()
    assert service.package.stock_qty == 3
    assert service.jobs.get(action="create").status == ProvisioningJob.Status.CANCELLED
    assert not service.jobs.filter(action="terminate").exists()  # nothing to remove


def test_ending_after_activation_keeps_the_stock_sold(customer):
    service = active_service(customer, stock_qty=3)
    service_terminate(service=service)
    service.package.refresh_from_db()
    assert service.package.stock_qty == 2


def test_staff_suspend_and_unsuspend_through_provider_jobs(customer):
    service = active_service(customer)

    service_suspend(service=service)
    with pytest.raises(ValidationError):
        service_suspend(service=service)  # one at a time
    run_all_jobs()
    service.refresh_from_db()
    assert service.status == Service.Status.SUSPENDED and service.suspended_at

    service_unsuspend(service=service)
    run_all_jobs()
    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE


def test_a_cancelled_service_that_the_provider_creates_meanwhile_is_removed_again(customer):
    service = paid_service(customer)
    job = service.jobs.get()
    ProvisioningJob.objects.filter(pk=job.pk).update(status="running")
    service_request_cancellation(service=service, customer=customer, mode="immediate")

    from subscriptions.jobs import provisioning_job_succeeded

    provisioning_job_succeeded(job_id=job.pk, remote_id="r-1")

    service.refresh_from_db()
    assert service.status == Service.Status.CANCELLED
    assert service.jobs.filter(action="terminate", status="queued").exists()


def test_the_billing_command_ends_services_whose_cancellation_date_has_passed(customer):
    from django.core.management import call_command

    service = active_service(customer)
    service_request_cancellation(service=service, customer=customer, mode="period_end")
    Service.objects.filter(pk=service.pk).update(cancel_at=NOW)

    out = StringIO()
    call_command("run_billing", stdout=out)

    assert out.getvalue().startswith("1 cancelled")

    service.refresh_from_db()
    assert service.status == Service.Status.CANCELLED
