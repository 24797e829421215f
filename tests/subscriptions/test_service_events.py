"""Each service's timeline is appended to by the services where things happen, and never edited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.test import RequestFactory
from django.utils import timezone

from catalog.models import NotificationEvent
from payments.services import payment_record
from subscriptions.billing import services_run_billing
from subscriptions.lifecycle import service_request_cancellation
from subscriptions.models import Invoice, Service, ServiceEvent
from subscriptions.plan_changes import service_change_package
from tests.factories import active_service, paid_services, place_order, target_of, with_period
from tests.support.jobs import run_all_jobs

pytestmark = pytest.mark.django_db

Kind = ServiceEvent.Kind


def kinds(service: Service) -> list[str]:
    """Oldest first, to read as a story."""
    return list(service.events.order_by("created_at", "pk").values_list("kind", flat=True))


def test_an_order_paid_and_provisioned_is_told_from_order_to_activation(customer, staff_user):
    order = place_order(customer, notification_preferences=[NotificationEvent.SERVICE_ACTIVATED])
    service = order.services.get()
    invoice = order.invoices.get()
    payment_record(
        invoice=invoice, amount=invoice.total, method="bank_transfer", recorded_by=staff_user
    )
    run_all_jobs()
    assert kinds(service) == [
        Kind.ORDERED,
        Kind.PAYMENT_RECEIVED,
        Kind.JOB_QUEUED,
        Kind.JOB_ATTEMPT,
        Kind.JOB_WAITING,  # no provider: staff do it by hand
        Kind.EMAIL_SENT,  # activated
        Kind.JOB_SUCCEEDED,
        Kind.STATUS_CHANGED,
    ]
    ordered = service.events.get(kind=Kind.ORDERED)
    assert order.number in ordered.message and ordered.actor == customer
    paid = service.events.get(kind=Kind.PAYMENT_RECEIVED)
    assert invoice.number in paid.message and paid.actor == staff_user
    assert service.events.get(kind=Kind.STATUS_CHANGED).message == "Pending → Active"


def test_every_service_of_an_order_gets_its_own_events(customer):
    services = paid_services(customer, quantity=3, allow_quantity="multiple")
    for service in services:
        assert kinds(service)[:2] == [Kind.ORDERED, Kind.PAYMENT_RECEIVED]


def test_the_billing_run_writes_each_renewal_invoice_and_its_email_on_each_service_it_bills(
    customer,
):
    services = paid_services(customer, quantity=2, allow_quantity="multiple")
    run_all_jobs()
    # Activated a moment apart, each falls due at its own time: bill both.
    services_run_billing(now=max(Service.objects.values_list("next_bill_at", flat=True)))
    for service in services:
        invoice = Invoice.objects.get(kind=Invoice.Kind.RENEWAL, lines__service=service)
        event = service.events.get(kind=Kind.INVOICE_ISSUED)
        assert invoice.number in event.message
        # The invoice's email is told in the same event: a run writes one row, not two.
        assert event.message.endswith("; emailed to the customer (invoice_created)")
        assert event.data == {"invoice": invoice.pk, "events": ["invoice_created"]}
        assert not service.events.filter(kind=Kind.EMAIL_SENT, message__contains="invoice").exists()


def test_entering_grace_tells_the_email_sent_in_the_same_event(customer):
    service = active_service(customer, grace_period=3, grace_interval="day")
    services_run_billing(now=service.next_bill_at)
    grace = service.events.get(kind=Kind.STATUS_CHANGED, data__to="grace")
    assert grace.message.endswith(": invoice unpaid; emailed to the customer (payment_overdue)")
    assert grace.data == {"to": "grace", "events": ["payment_overdue"]}


def test_entering_grace_is_a_status_change_on_the_timeline(customer):
    service = active_service(customer)
    due = service.next_bill_at
    services_run_billing(now=due)
    services_run_billing(now=due + timedelta(minutes=1))
    service.refresh_from_db()
    assert service.status == Service.Status.GRACE
    assert service.events.filter(kind=Kind.STATUS_CHANGED, data__to="grace").exists()


def test_a_plan_change_and_a_cancellation_are_recorded(customer):
    service = with_period(active_service(customer, tier=1))
    target = target_of(service.package, tier=2, price="40")
    service_change_package(service=service, customer=customer, package=target)
    assert service.events.filter(kind=Kind.PLAN_CHANGED).exists()
    assert service.events.filter(kind=Kind.INVOICE_ISSUED).exists()  # the prorated charge
    service_request_cancellation(service=service, customer=customer, mode="period_end")
    event = service.events.get(kind=Kind.CANCELLATION_SCHEDULED)
    assert event.actor == customer


def test_a_refused_change_leaves_no_event(customer):
    service = active_service(customer)
    service_request_cancellation(service=service, customer=customer, mode="immediate")
    after_cancelling = service.events.count()
    with pytest.raises(ValidationError):
        service_request_cancellation(service=service, customer=customer, mode="immediate")
    assert service.events.count() == after_cancelling


def test_staff_can_read_events_but_never_add_edit_or_delete_them(staff_user, customer):
    model_admin = admin.site.get_model_admin(ServiceEvent)
    request = RequestFactory().get("/")
    request.user = staff_user
    event = active_service(customer).events.first()
    assert model_admin.has_view_permission(request, event)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)


def test_the_timeline_reads_newest_first(customer):
    service = active_service(customer)
    times = list(service.events.values_list("created_at", "pk"))
    assert times == sorted(times, reverse=True)
    assert service.events.first().created_at <= timezone.now()
