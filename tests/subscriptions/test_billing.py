"""The billing run: renewals, trials ending, grace, suspension, cancellations at period end."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from catalog.models import PackagePriceAmount, VariantPriceAmount
from payments.services import credit_adjust, payment_record
from subscriptions.billing import services_run_billing
from subscriptions.invoicing import service_invoice_issue
from subscriptions.lifecycle import service_request_cancellation
from subscriptions.models import Invoice, ProvisioningJob, Service
from tests.factories import (
    PackageFactory,
    PackagePriceAmountFactory,
    PackagePriceFactory,
    active_service,
    place,
    usd,
)
from tests.support.jobs import run_all_jobs, send_queued_notifications

pytestmark = pytest.mark.django_db


def renewals(service: Service):
    return Invoice.objects.of_service(service.pk).filter(kind=Invoice.Kind.RENEWAL)


def pay(invoice: Invoice) -> None:
    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)


def test_a_period_that_ends_is_billed_once_however_often_billing_runs(customer):
    service = active_service(customer)
    period_end = service.current_period_end

    assert services_run_billing(now=period_end - timedelta(seconds=1)).invoices == 0
    assert services_run_billing(now=period_end).invoices == 1
    assert services_run_billing(now=period_end).invoices == 0
    assert services_run_billing(now=period_end + timedelta(days=2)).invoices == 0

    invoice = renewals(service).get()
    assert invoice.total == usd(12)  # Monthly 10 + Europe 2; fees are not charged again
    assert invoice.customer == customer
    assert invoice.due_at == period_end
    assert invoice.period_start == period_end
    assert invoice.period_end.month == period_end.month % 12 + 1
    assert invoice.lines.get().amount == usd(12)


def test_paying_a_renewal_moves_the_period_on_and_queues_the_renew_call(customer):
    service = active_service(customer)
    period_end = service.current_period_end
    services_run_billing(now=period_end)
    invoice = renewals(service).get()

    pay(invoice)

    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE
    assert service.current_period_start == period_end
    assert service.current_period_end == invoice.period_end
    assert service.next_due_at == invoice.period_end
    assert service.jobs.filter(action="renew", status="queued").exists()
    # The next period is billed when it ends, not before.
    assert services_run_billing(now=period_end + timedelta(days=3)).invoices == 0
    assert services_run_billing(now=invoice.period_end).invoices == 1


def test_an_unpaid_renewal_gives_the_grace_period_then_suspends(customer):
    service = active_service(customer, grace_period=3, grace_interval="day")
    period_end = service.current_period_end

    run = services_run_billing(now=period_end)

    service.refresh_from_db()
    assert (run.invoices, run.grace, run.suspended) == (1, 1, 0)
    assert service.status == Service.Status.GRACE
    assert service.grace_ends_at == period_end + timedelta(days=3)
    assert service.is_live

    assert services_run_billing(now=period_end + timedelta(days=2)).suspended == 0
    assert services_run_billing(now=period_end + timedelta(days=3)).suspended == 1
    assert services_run_billing(now=period_end + timedelta(days=4)).suspended == 0
    assert service.jobs.filter(action="suspend").count() == 1
    run_all_jobs()
    service.refresh_from_db()
    assert service.status == Service.Status.SUSPENDED


def test_without_a_grace_period_an_unpaid_renewal_suspends_at_once(customer):
    service = active_service(customer)
    services_run_billing(now=service.current_period_end)
    assert service.jobs.filter(action="suspend", status="queued").exists()


def test_paying_in_grace_makes_the_service_active_and_drops_the_suspension(customer):
    service = active_service(customer, grace_period=3, grace_interval="day")
    services_run_billing(now=service.current_period_end)

    pay(renewals(service).get())

    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE
    assert service.grace_ends_at is None
    assert not service.jobs.filter(action="suspend").exists()


def test_paying_a_suspended_services_invoice_unsuspends_it(customer):
    service = active_service(customer)
    services_run_billing(now=service.current_period_end)
    run_all_jobs()
    service.refresh_from_db()
    assert service.status == Service.Status.SUSPENDED

    pay(renewals(service).get())

    assert service.jobs.filter(action="unsuspend", status="queued").exists()
    run_all_jobs()
    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE


def test_grace_counts_from_an_earlier_invoice_still_unpaid_when_the_renewal_is_billed(customer):
    service = active_service(customer, grace_period=3, grace_interval="day")
    period_end = service.current_period_end
    # An upgrade's charge that fell due two days before the period ended, unpaid.
    service_invoice_issue(
        service=service,
        kind=Invoice.Kind.PLAN_CHANGE,
        description="Upgrade (prorated)",
        amount=usd(4),
        due_at=period_end - timedelta(days=2),
    )

    run = services_run_billing(now=period_end)

    service.refresh_from_db()
    assert (run.invoices, run.grace) == (1, 1)
    assert service.status == Service.Status.GRACE
    assert service.grace_ends_at == period_end + timedelta(days=1)
    assert service.next_bill_at is None
    grace = service.events.get(kind="status_changed", data__to="grace")
    assert grace.message.startswith(
        f"→ Grace period until {period_end + timedelta(days=1):%Y-%m-%d}: invoice unpaid"
    )


def test_a_renewal_account_credit_pays_as_it_is_issued_moves_the_service_on(customer):
    service = active_service(customer, grace_period=3, grace_interval="day")
    period_end = service.current_period_end
    credit_adjust(customer=customer, amount=usd(50), note="Goodwill")

    run = services_run_billing(now=period_end)

    renewal = renewals(service).get()
    service.refresh_from_db()
    assert (run.invoices, run.grace, renewal.status) == (1, 0, Invoice.Status.PAID)
    assert service.status == Service.Status.ACTIVE
    assert service.current_period_start == period_end
    # Billed again when the period it paid for ends.
    assert service.next_bill_at == renewal.period_end
    assert services_run_billing(now=renewal.period_end).invoices == 1


def test_in_one_batch_credit_pays_one_customer_and_the_other_enters_grace(
    customer, other_customer, mailoutbox
):
    # The run moves the other's service on before the invoices are numbered, and the
    # credit customer's after the payment: each as if billed alone.
    paying = active_service(customer, grace_period=3, grace_interval="day", variant_code="a")
    owing = active_service(other_customer, grace_period=3, grace_interval="day", variant_code="b")
    period_end = max(paying.current_period_end, owing.current_period_end)
    credit_adjust(customer=customer, amount=usd(50), note="Goodwill")

    run = services_run_billing(now=period_end)
    send_queued_notifications()

    paying.refresh_from_db()
    owing.refresh_from_db()
    assert (run.invoices, run.grace) == (2, 1)
    assert (renewals(paying).get().status, paying.status) == ("paid", "active")
    assert not paying.events.filter(kind="status_changed", data__to="grace").exists()
    owed = renewals(owing).get()
    assert (owed.status, owing.status, owing.next_bill_at) == ("unpaid", "grace", None)
    assert owing.events.filter(kind="status_changed", data__to="grace").count() == 1
    # Numbered after the services moved on: the email quotes the number all the same.
    overdue = [m for m in mailoutbox if m.subject.startswith("Payment overdue")]
    assert [(m.to, m.subject.split(":")[1].split()[1]) for m in overdue] == [
        ([other_customer.email], owed.number)
    ]


def test_a_renewal_credit_pays_part_of_leaves_the_service_in_grace(customer):
    service = active_service(customer, grace_period=3, grace_interval="day")
    period_end = service.current_period_end
    credit_adjust(customer=customer, amount=usd(5), note="Goodwill")

    run = services_run_billing(now=period_end)

    service.refresh_from_db()
    assert (run.invoices, run.grace) == (1, 1)
    assert (service.status, service.next_bill_at) == (Service.Status.GRACE, None)
    assert renewals(service).get().status == Invoice.Status.UNPAID


def test_the_grace_period_is_the_one_sold_with_the_service(customer):
    service = active_service(customer, grace_period=3, grace_interval="day")
    service.package.grace_period = 30
    service.package.save()

    services_run_billing(now=service.current_period_end)

    service.refresh_from_db()
    assert service.grace_ends_at == service.current_period_end + timedelta(days=3)


def test_a_renewal_charges_what_was_sold_not_the_edited_catalog(customer):
    service = active_service(customer)
    PackagePriceAmount.objects.update(price=Decimal("99"))
    VariantPriceAmount.objects.update(price=Decimal("50"))

    services_run_billing(now=service.current_period_end)

    assert renewals(service).get().total == usd(12)


@pytest.mark.parametrize("price_type", ["onetime", "free"])
def test_one_time_and_free_options_are_never_renewed(customer, price_type):
    package = PackageFactory()
    price = PackagePriceFactory(
        package=package, name="Once", type=price_type, time_interval=None, billing_period=""
    )
    if price_type == "onetime":
        PackagePriceAmountFactory(package_price=price, price=usd(20))
    order = place(customer, package, price)
    if order.invoices.get().status == Invoice.Status.UNPAID:
        pay(order.invoices.get())
    run_all_jobs()
    service = order.services.get()
    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE

    later = service.activated_at + timedelta(days=400)
    run = services_run_billing(now=later)

    assert (run.invoices, run.grace, run.suspended) == (0, 0, 0)
    assert not Invoice.objects.of_service(service.pk).exists()


def trial_service(customer, mode: str) -> Service:
    return active_service(customer, trial_period=7, trial_interval="day", trial_mode=mode)


def test_an_outside_trial_ends_with_the_first_paid_invoice_for_the_period_after_it(customer):
    service = trial_service(customer, "outside")
    assert service.status == Service.Status.TRIAL
    trial_end = service.trial_ends_at

    assert services_run_billing(now=trial_end - timedelta(minutes=1)).invoices == 0
    assert services_run_billing(now=trial_end).invoices == 1
    assert services_run_billing(now=trial_end).invoices == 0

    invoice = renewals(service).get()
    assert (invoice.period_start, invoice.due_at, invoice.total) == (trial_end, trial_end, usd(12))
    pay(invoice)
    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE
    assert service.current_period_start == trial_end
    assert service.current_period_end == invoice.period_end
    assert services_run_billing(now=invoice.period_end).invoices == 1


def test_an_inside_trial_bills_the_period_it_started_when_it_ends(customer):
    service = trial_service(customer, "inside")
    services_run_billing(now=service.trial_ends_at)

    invoice = renewals(service).get()
    assert invoice.period_start == service.current_period_start == service.activated_at
    assert invoice.due_at == service.trial_ends_at


def test_an_unpaid_trial_invoice_leads_to_grace_and_one_invoice_only(customer):
    service = active_service(
        customer, trial_period=7, trial_interval="day", grace_period=2, grace_interval="day"
    )
    services_run_billing(now=service.trial_ends_at)
    service.refresh_from_db()
    assert service.status == Service.Status.GRACE

    services_run_billing(now=service.current_period_end + timedelta(days=40))
    assert renewals(service).count() == 1


def test_a_cancellation_at_period_end_is_applied_and_that_period_is_not_billed(customer):
    service = active_service(customer)
    service_request_cancellation(service=service, customer=customer, mode="period_end")

    run = services_run_billing(now=service.current_period_end)

    service.refresh_from_db()
    assert (run.cancelled, run.invoices) == (1, 0)
    assert service.status == Service.Status.CANCELLED
    assert not renewals(service).exists()


def test_a_zero_renewal_is_paid_at_once(customer):
    service = active_service(customer)
    Service.objects.filter(pk=service.pk).update(recurring_amount=Decimal("0"))
    services_run_billing(now=service.current_period_end)
    assert renewals(service).get().status == Invoice.Status.PAID
    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE


def test_the_run_billing_command_reports_what_it_did(customer):
    service = active_service(customer)
    ended = service.current_period_start - timedelta(seconds=1)
    Service.objects.filter(pk=service.pk).update(current_period_end=ended, next_bill_at=ended)
    out = StringIO()
    call_command("run_billing", stdout=out)
    assert "1 invoice(s) issued" in out.getvalue()


def test_the_billing_task_runs_the_same_billing(customer):
    from subscriptions.tasks import run_billing

    service = active_service(customer)
    ended = service.current_period_start - timedelta(seconds=1)
    Service.objects.filter(pk=service.pk).update(current_period_end=ended, next_bill_at=ended)
    assert "1 invoice(s) issued" in run_billing.call()
    assert ProvisioningJob.objects.filter(action="suspend").exists()
