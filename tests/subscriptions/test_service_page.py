"""The service page: one clear state, cancellation confirmed first and undone until it applies."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse

from payments.services import payment_record
from subscriptions.billing import services_run_billing
from subscriptions.jobs import provisioning_job_run
from subscriptions.lifecycle import service_request_cancellation
from subscriptions.models import Invoice, ProvisioningJob, Service
from subscriptions.selectors import service_state
from tests.factories import (
    WebhookInstanceFactory,
    active_service,
    paid_service,
    place,
    shop_package,
)
from tests.support.html import hidden_inputs, section
from tests.support.jobs import run_all_jobs

pytestmark = pytest.mark.django_db


def page_of(client, service) -> str:
    response = client.get(reverse("subscriptions:service", args=[service.pk]))
    assert response.status_code == 200
    return response.content.decode()


def state_block(client, service) -> str:
    return section(page_of(client, service), "service-state")


def renewal_of(service) -> Invoice:
    return Invoice.objects.of_service(service.pk).get(kind=Invoice.Kind.RENEWAL)


def pay_link(invoice) -> str:
    return f'href="{reverse("payments:invoice", args=[invoice.pk])}#pay"'


# --- the state ----------------------------------------------------------------


def test_an_unpaid_order_waits_for_payment_with_a_pay_link(customer_client, customer):
    package, monthly, options = shop_package()
    order = place(customer, package, monthly, [options["eu"]])
    invoice = order.invoices.get()

    block = state_block(customer_client, order.services.get())

    assert "Waiting for payment" in block
    assert invoice.number in block and pay_link(invoice) in block


def test_a_paid_service_being_set_up_says_so(customer_client, customer):
    block = state_block(customer_client, paid_service(customer))
    assert "Being set up" in block
    assert "Pay" not in block


def test_a_service_whose_provisioning_failed_says_so_not_setting_up(
    customer_client, customer, settings
):
    settings.PROVISIONING_MAX_ATTEMPTS = 1
    service = paid_service(
        customer,
        provider_instance=WebhookInstanceFactory(url="http://127.0.0.1:9/hook", timeout_seconds=1),
        provisioning_options={"plan_code": "pro", "region": "", "send_settings": False},
        checkout_fields={"label": "a"},
    )
    assert provisioning_job_run(job_id=service.jobs.get().pk).startswith("failed")

    html = page_of(customer_client, service)

    assert "Set-up failed" in section(html, "service-state")
    assert "We have been told and are on it" in html
    assert "We are setting up your service" not in html
    assert "Being set up" not in html


def test_a_trial_says_when_it_ends(customer_client, customer):
    service = active_service(customer, trial_period=7, trial_interval="day", trial_mode="outside")
    assert service.status == Service.Status.TRIAL

    block = state_block(customer_client, service)

    assert "Trial" in block and f"{service.trial_ends_at:%Y-%m-%d}" in block


def test_an_active_service_shows_its_next_payment(customer_client, customer):
    service = active_service(customer)
    html = page_of(customer_client, service)
    assert '<h2 id="service-state-title">Active</h2>' in html
    assert f'id="next-payment-due">{service.next_due_at:%Y-%m-%d}' in html


def test_in_grace_the_page_names_the_invoice_to_pay_and_the_grace_end(customer_client, customer):
    service = active_service(customer, grace_period=3, grace_interval="day")
    services_run_billing(now=service.current_period_end)
    service.refresh_from_db()
    invoice = renewal_of(service)

    block = state_block(customer_client, service)

    assert service.status == Service.Status.GRACE
    assert "Payment overdue" in block
    assert invoice.number in block and pay_link(invoice) in block
    assert f"{service.grace_ends_at:%Y-%m-%d %H:%M}" in block


def test_suspended_for_an_unpaid_invoice_it_says_why_and_how_to_resume(
    customer_client, customer, settings
):
    settings.BILLING_TERMINATE_AFTER_DAYS = 14
    service = active_service(customer)
    services_run_billing(now=service.current_period_end)
    run_all_jobs()
    # The dunning step dates the termination of the suspended service.
    services_run_billing(now=service.current_period_end + timedelta(hours=1))
    service.refresh_from_db()
    invoice = renewal_of(service)

    block = state_block(customer_client, service)

    assert service.status == Service.Status.SUSPENDED
    assert f"suspended because invoice {invoice.number}" in block
    assert "Pay it and your service resumes" in block and pay_link(invoice) in block
    assert service.terminates_at is not None
    assert f"{service.terminates_at:%Y-%m-%d}" in block


def test_cancelled_and_terminated_services_say_so_and_show_no_payment(customer_client, customer):
    service = active_service(customer)
    service_request_cancellation(service=service, customer=customer, mode="immediate")
    service.refresh_from_db()

    html = page_of(customer_client, service)

    assert "Cancelled" in section(html, "service-state")
    assert "Next payment due" not in html
    assert service_state(service=service).code == "cancelled"


# --- cancellation -----------------------------------------------------------------


def test_cancelling_asks_for_confirmation_before_anything_changes(customer_client, customer):
    service = active_service(customer)
    url = reverse("subscriptions:service_cancel", args=[service.pk])

    confirm = customer_client.get(url, {"mode": "period_end"})

    html = confirm.content.decode()
    service.refresh_from_db()
    assert confirm.status_code == 200
    assert f"keeps working until <strong>{service.current_period_end:%Y-%m-%d}" in html
    assert service.cancel_requested_at is None  # nothing yet

    customer_client.post(url, hidden_inputs(html, "confirm-cancel"))

    service.refresh_from_db()
    assert service.cancel_at == service.current_period_end
    assert service.status == Service.Status.ACTIVE


def test_the_immediate_cancel_confirm_page_says_it_cannot_be_undone(customer_client, customer):
    service = active_service(customer)
    url = reverse("subscriptions:service_cancel", args=[service.pk])

    html = customer_client.get(url, {"mode": "immediate"}).content.decode()
    customer_client.post(url, hidden_inputs(html, "confirm-cancel"))

    service.refresh_from_db()
    assert "cannot be undone" in html
    assert service.status == Service.Status.CANCELLED


def test_a_service_set_to_cancel_shows_no_next_payment_and_can_be_kept(customer_client, customer):
    service = active_service(customer)
    service_request_cancellation(service=service, customer=customer, mode="period_end")

    html = page_of(customer_client, service)
    assert "Next payment due" not in html
    assert f"Set to end on <strong>{service.current_period_end:%Y-%m-%d}" in html
    account = customer_client.get(reverse("subscriptions:account")).content.decode()
    assert f"{service.next_due_at:%Y-%m-%d}" not in account

    response = customer_client.post(
        reverse("subscriptions:service_cancel_undo", args=[service.pk]), follow=True
    )

    service.refresh_from_db()
    assert "no longer set to end" in response.content.decode()
    assert (service.cancel_at, service.cancel_requested_at, service.cancel_mode) == (None, None, "")
    assert "Next payment due" in page_of(customer_client, service)
    # It renews as if never cancelled.
    assert services_run_billing(now=service.current_period_end).invoices == 1


def test_a_cancellation_cannot_be_undone_once_it_applied(customer_client, customer):
    service = active_service(customer)
    service_request_cancellation(service=service, customer=customer, mode="period_end")
    services_run_billing(now=service.current_period_end)
    service.refresh_from_db()
    assert service.status == Service.Status.CANCELLED

    response = customer_client.post(
        reverse("subscriptions:service_cancel_undo", args=[service.pk]), follow=True
    )

    assert "not set to end at the end of its period" in response.content.decode()
    service.refresh_from_db()
    assert service.status == Service.Status.CANCELLED


def test_an_immediate_cancellation_cannot_be_undone(customer_client, customer):
    service = active_service(customer)
    service_request_cancellation(service=service, customer=customer, mode="immediate")

    customer_client.post(reverse("subscriptions:service_cancel_undo", args=[service.pk]))

    service.refresh_from_db()
    assert service.status == Service.Status.CANCELLED and service.cancel_mode == "immediate"


def test_the_period_end_passed_but_not_yet_applied_is_too_late_to_undo(customer_client, customer):
    service = active_service(customer)
    service_request_cancellation(service=service, customer=customer, mode="period_end")

    with time_machine.travel(service.current_period_end + timedelta(minutes=1)):
        customer_client.post(reverse("subscriptions:service_cancel_undo", args=[service.pk]))

    service.refresh_from_db()
    assert service.cancel_at is not None


def test_another_customer_cannot_undo_or_confirm_a_cancellation(client, customer, other_customer):
    service = active_service(customer)
    service_request_cancellation(service=service, customer=customer, mode="period_end")
    client.force_login(other_customer)

    undo = client.post(reverse("subscriptions:service_cancel_undo", args=[service.pk]))
    confirm = client.get(
        reverse("subscriptions:service_cancel", args=[service.pk]), {"mode": "period_end"}
    )

    assert undo.status_code == confirm.status_code == 404
    service.refresh_from_db()
    assert service.cancel_at is not None


def test_a_confirm_page_for_a_bad_mode_is_refused_clearly(customer_client, customer):
    service = active_service(customer)
    response = customer_client.get(
        reverse("subscriptions:service_cancel", args=[service.pk]), {"mode": "sometime"}
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_paying_the_unpaid_invoice_returns_the_service_to_active(customer_client, customer):
    service = active_service(customer, grace_period=3, grace_interval="day")
    services_run_billing(now=service.current_period_end)
    invoice = renewal_of(service)
    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)
    service.refresh_from_db()

    block = state_block(customer_client, service)

    assert "Active" in block and "Pay" not in block
    assert not ProvisioningJob.objects.filter(action="suspend").exists()
