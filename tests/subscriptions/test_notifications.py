"""Lifecycle emails: queued with the change, sent only for the events the package wants."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from catalog.models import NotificationEvent
from payments.services import payment_record
from subscriptions.billing import services_run_billing
from subscriptions.lifecycle import service_request_cancellation
from subscriptions.models import Invoice, Service
from subscriptions.notifications import render_email
from subscriptions.plan_changes import service_change_package
from tests.factories import (
    active_service,
    customers,
    paid_service,
    paid_services,
    place,
    shop_package,
    target_of,
    with_period,
)
from tests.support.jobs import notification_tasks, run_all_jobs, send_queued_notifications
from tests.support.mail import subjects, text

pytestmark = pytest.mark.django_db

SENT_EVENTS = NotificationEvent.values


def test_an_order_sends_order_placed_and_invoice_created_from_one_task(customer, mailoutbox):
    package, monthly, options = shop_package(name="Video Pro")
    order = place(customer, package, monthly, [options["eu"]])

    assert notification_tasks().count() == 1
    send_queued_notifications()

    invoice = order.invoices.get()
    assert subjects(mailoutbox) == [
        f"Order {order.number} placed: Video Pro",
        f"Invoice {invoice.number}: 21.00 USD due {invoice.due_at:%Y-%m-%d}",
    ]
    placed = mailoutbox[0]
    assert placed.to == ["ann@example.com"]
    assert placed.from_email == "store@localhost"
    # Monthly 10 + Europe 2, setup fees 5 + 1, signup fee 3.
    assert "Video Pro – Monthly" in text(placed.body)
    assert "Due now:  21.00 USD" in text(placed.body)
    assert "Then:     12.00 USD" in text(placed.body)
    assert "Amount:  21.00 USD" in text(mailoutbox[1].body)


def test_a_payment_sends_payment_received(customer, mailoutbox):
    package, monthly, options = shop_package(name="Video Pro")
    order = place(customer, package, monthly, [options["eu"]])
    invoice = order.invoices.get()
    send_queued_notifications()
    mailoutbox.clear()

    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)
    send_queued_notifications()

    assert subjects(mailoutbox) == [f"Payment received: 21.00 USD for invoice {invoice.number}"]
    assert "Video Pro" in text(mailoutbox[0].body)
    assert "Left to pay: 0.00 USD" in text(mailoutbox[0].body)


def test_a_package_sends_nothing_for_an_event_its_preferences_leave_out(customer, mailoutbox):
    package, monthly, options = shop_package(
        notification_preferences=[NotificationEvent.ORDER_PLACED]
    )
    order = place(customer, package, monthly, [options["eu"]])
    invoice = order.invoices.get()
    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)
    send_queued_notifications()

    assert subjects(mailoutbox) == [f"Order {order.number} placed: {package.name}"]


def test_a_package_without_preferences_queues_no_task_at_all(customer, mailoutbox):
    package, monthly, options = shop_package(notification_preferences=[])
    place(customer, package, monthly, [options["eu"]])

    assert not notification_tasks().exists()


def test_the_preferences_are_read_when_the_event_happens(customer, mailoutbox):
    service = paid_service(customer)
    send_queued_notifications()
    mailoutbox.clear()
    service.package.notification_preferences = [NotificationEvent.SERVICE_TERMINATED]
    service.package.save()

    run_all_jobs()  # activation: no longer wanted
    send_queued_notifications()

    assert mailoutbox == []


def test_suspension_by_the_billing_run_sends_overdue_then_suspended(customer, mailoutbox):
    service = active_service(customer, name="Video Pro")
    send_queued_notifications()
    mailoutbox.clear()

    services_run_billing(now=service.current_period_end)
    run_all_jobs()  # the provider suspends it
    send_queued_notifications()

    service.refresh_from_db()
    assert service.status == Service.Status.SUSPENDED
    renewal = Invoice.objects.of_service(service.pk).get(kind=Invoice.Kind.RENEWAL)
    assert subjects(mailoutbox) == [
        f"Invoice {renewal.number}: 12.00 USD due {renewal.due_at:%Y-%m-%d}",
        f"Payment overdue: invoice {renewal.number} for Video Pro",
        "Service suspended: Video Pro",
    ]
    assert "12.00 USD" in text(mailoutbox[1].body)


def test_a_run_tells_each_customer_of_a_batch_their_own_invoice_and_dates(mailoutbox):
    people = customers(2)
    services = [
        active_service(person, name="Video Pro", variant_code=f"zone{n}")
        for n, person in enumerate(people)
    ]
    send_queued_notifications()
    mailoutbox.clear()

    services_run_billing(now=max(service.current_period_end for service in services))
    # One task for the batch's overdue notices; what they share is written once.
    send_queued_notifications()

    for person, service in zip(people, services, strict=True):
        renewal = Invoice.objects.of_service(service.pk).get(kind=Invoice.Kind.RENEWAL)
        theirs = [mail for mail in mailoutbox if mail.to == [person.email]]
        assert subjects(theirs) == [
            f"Invoice {renewal.number}: 12.00 USD due {renewal.due_at:%Y-%m-%d}",
            f"Payment overdue: invoice {renewal.number} for Video Pro",
        ]
        assert f"due {renewal.due_at:%Y-%m-%d}" in text(theirs[1].body)


def test_one_overdue_email_per_invoice_names_each_service_and_its_grace_end(customer, mailoutbox):
    services = paid_services(
        customer, quantity=2, allow_quantity="multiple", name="Video Pro",
        grace_period=3, grace_interval="day",
    )  # fmt: skip
    run_all_jobs()
    send_queued_notifications()
    mailoutbox.clear()

    services_run_billing(now=max(Service.objects.values_list("current_period_end", flat=True)))
    send_queued_notifications()

    renewal = Invoice.objects.get(kind=Invoice.Kind.RENEWAL)
    assert subjects(mailoutbox) == [
        f"Invoice {renewal.number}: 24.00 USD due {renewal.due_at:%Y-%m-%d}",
        f"Payment overdue: invoice {renewal.number} for Video Pro",
    ]
    grace_ends = f"{renewal.due_at + timedelta(days=3):%Y-%m-%d}"
    body = text(mailoutbox[1].body)
    for service in services:
        assert (
            f"Your service Video Pro (#{service.pk}) stays usable until {grace_ends}; "
            "it is suspended then unless the invoice is paid." in body
        )
        # Each service's timeline says the customer was told.
        event = service.events.get(message__startswith="→ Grace period")
        assert event.message.endswith("; emailed to the customer (payment_overdue)")


def test_an_overdue_email_queued_with_one_service_context_still_says_until_when():
    subject, body = render_email(
        NotificationEvent.PAYMENT_OVERDUE,
        {"invoice_number": "INV-2026-000001", "invoice_total": "12.00 USD",
         "invoice_due": "2026-03-01", "package_name": "Video Pro", "grace_ends": "2026-03-04"},
    )  # fmt: skip

    assert subject == "Payment overdue: invoice INV-2026-000001 for Video Pro"
    assert "Your service Video Pro stays usable until 2026-03-04;" in body


def test_paying_a_suspended_service_sends_payment_received_then_unsuspended(customer, mailoutbox):
    service = active_service(customer, name="Video Pro")
    services_run_billing(now=service.current_period_end)
    run_all_jobs()
    send_queued_notifications()
    mailoutbox.clear()

    renewal = Invoice.objects.of_service(service.pk).get(kind=Invoice.Kind.RENEWAL)
    payment_record(method="bank_transfer", invoice=renewal, amount=renewal.total)
    run_all_jobs()
    send_queued_notifications()

    assert subjects(mailoutbox) == [
        f"Payment received: 12.00 USD for invoice {renewal.number}",
        "Service running again: Video Pro",
    ]


def test_activation_sends_service_activated_and_a_trial_sends_trial_started(customer, mailoutbox):
    active_service(customer, name="Video Pro")
    active_service(
        customer,
        variant_code="zone",
        name="Video Trial",
        trial_period=14,
        trial_interval="day",
    )
    send_queued_notifications()

    assert "Your service is ready: Video Pro" in subjects(mailoutbox)
    assert "Your trial has started: Video Trial" in subjects(mailoutbox)
    assert "Your service is ready: Video Trial" not in subjects(mailoutbox)


def test_cancelling_sends_cancelled_then_the_providers_removal_sends_terminated(
    customer, mailoutbox
):
    service = active_service(customer, name="Video Pro")
    send_queued_notifications()
    mailoutbox.clear()

    service_request_cancellation(service=service, customer=customer, mode="immediate")
    run_all_jobs()
    send_queued_notifications()

    assert subjects(mailoutbox) == [
        "Service cancelled: Video Pro",
        "Service terminated: Video Pro",
    ]


def test_an_upgrade_sends_its_invoice_and_package_changed(customer, mailoutbox):
    service = with_period(active_service(customer, name="Video Pro", tier=2))
    target = target_of(service.package, tier=3, price="20", name="Monthly")
    send_queued_notifications()
    mailoutbox.clear()

    service_change_package(
        service=service,
        customer=customer,
        package=target,
        now=service.current_period_start + timedelta(days=10),
    )
    send_queued_notifications()

    assert subjects(mailoutbox)[-1] == f"Package changed: Video Pro → {target.name}"
    assert "22.00 USD" in text(mailoutbox[-1].body)  # Monthly 20 + Europe 2
    invoice = Invoice.objects.get(service=service, kind=Invoice.Kind.PLAN_CHANGE)
    assert subjects(mailoutbox)[0].startswith(f"Invoice {invoice.number}: 6.67 USD due ")


def test_a_rolled_back_transaction_sends_nothing(customer, mailoutbox):
    with pytest.raises(RuntimeError), transaction.atomic():
        paid_service(customer)
        assert notification_tasks().exists()
        raise RuntimeError("crash before commit")

    send_queued_notifications()
    assert mailoutbox == []


@pytest.mark.parametrize("event", SENT_EVENTS)
def test_every_sent_event_has_a_template_with_a_subject_line(event):
    subject, body = render_email(event, {"package_name": "Video & Audio"})
    assert subject and "\n" not in subject
    assert "Video & Audio" in subject + body  # plain text: nothing is HTML-escaped
