"""The service console: staff read a service's summary and timeline and act on it from its page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from catalog.models import PackagePriceAmount
from subscriptions.billing import service_period_lines
from subscriptions.jobs import provisioning_job_run
from subscriptions.models import Invoice, ProvisioningJob, Service, ServiceEvent
from tests.factories import (
    active_service,
    paid_service,
    paid_webhook_services,
    target_of,
    usd,
)
from tests.factories import with_period as with_a_30_day_period

pytestmark = pytest.mark.django_db

Status, Job = Service.Status, ProvisioningJob.Action


def console_url(service: Service, action: str) -> str:
    return reverse("admin:subscriptions_service_console", args=[service.pk, action])


def service_page(client, service: Service) -> str:
    response = client.get(reverse("admin:subscriptions_service_change", args=[service.pk]))
    assert response.status_code == 200
    return response.content.decode()


def staff_events(service: Service) -> list[ServiceEvent]:
    return list(service.events.filter(kind=ServiceEvent.Kind.STAFF_ACTION))


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def confirm(client, service: Service, action: str, **data):
    """GET the confirmation page, check nothing changed, then POST it and follow the redirect."""
    before = service.events.count()
    page = client.get(console_url(service, action), data)
    assert page.status_code == 200
    assert 'id="console-confirm-form"' in page.content.decode()
    assert service.events.count() == before, "the confirmation page changed nothing"
    return client.post(console_url(service, action), data, follow=True)


def test_the_service_page_shows_the_summary_the_actions_and_the_timeline_newest_first(
    staff_client, customer
):
    service = active_service(customer)
    html = service_page(staff_client, service)
    assert "Europe" in html  # the variant chosen
    assert "Current period" in html and f"{service.current_period_start:%Y-%m-%d}" in html
    actions = re.findall(r'data-action="([a-z-]+)"', html)
    assert actions == ["renew", "change-package", "suspend", "cancel", "terminate"]
    timeline = re.search(r'<section[^>]*id="timeline".*?</section>', html, re.S).group(0)
    kinds = re.findall(r'<li class="timeline-([a-z_]+)">', timeline)
    # Ordered and paid, then the create job ran: the newest event is on top.
    assert kinds[-1] == "ordered"
    assert (
        kinds.index("status_changed")
        < kinds.index("job_succeeded")
        < kinds.index("payment_received")
    )
    stored = list(service.events.values_list("kind", flat=True))  # newest first by default
    assert kinds == stored


def test_suspend_asks_for_confirmation_then_queues_the_suspension_and_records_who(
    staff_client, staff_user, customer
):
    service = active_service(customer)
    page = staff_client.get(console_url(service, "suspend"))
    assert "Ask the provider to suspend" in page.content.decode()
    assert not service.jobs.filter(action=Job.SUSPEND).exists()

    response = staff_client.post(console_url(service, "suspend"), follow=True)
    assert response.redirect_chain[-1][0].endswith("#timeline")
    assert any("Suspension queued" in message for message in messages_of(response))
    assert service.jobs.filter(action=Job.SUSPEND, status="queued").exists()
    (event,) = staff_events(service)
    assert event.actor == staff_user and event.message.startswith("Suspend by staff")
    assert event.message in response.content.decode()


def test_unsuspend_queues_the_provider_call_for_a_suspended_service(staff_client, customer):
    service = active_service(customer)
    Service.objects.filter(pk=service.pk).update(status=Status.SUSPENDED)
    response = confirm(staff_client, service, "unsuspend")
    assert any("Unsuspension queued" in message for message in messages_of(response))
    assert service.jobs.filter(action=Job.UNSUSPEND, status="queued").exists()
    assert len(staff_events(service)) == 1


def test_terminate_ends_the_service_now_and_queues_its_removal(staff_client, customer):
    service = active_service(customer)
    confirm(staff_client, service, "terminate")
    service.refresh_from_db()
    assert service.status == Status.TERMINATED
    assert service.jobs.filter(action=Job.TERMINATE).exists()
    assert service.events.filter(kind="status_changed", message="Active → Terminated").exists()
    assert len(staff_events(service)) == 1


def test_renew_now_issues_the_invoice_the_billing_run_would_and_only_once(staff_client, customer):
    service = active_service(customer)
    (line,) = service_period_lines([service])
    page = staff_client.get(console_url(service, "renew")).content.decode()
    assert line.description in page

    response = confirm(staff_client, service, "renew")
    invoice = Invoice.objects.get(kind=Invoice.Kind.RENEWAL)
    assert invoice.total == service.recurring_amount
    assert invoice.due_at == service.next_bill_at
    assert invoice.lines.get().description == line.description
    assert any(invoice.number in message for message in messages_of(response))
    assert service.events.filter(kind="invoice_issued", data__invoice=invoice.pk).exists()
    service.refresh_from_db()
    assert service.next_bill_at is None

    again = staff_client.post(console_url(service, "renew"))
    assert again.status_code == 400
    assert "no renewal to bill" in again.content.decode()
    assert Invoice.objects.filter(kind=Invoice.Kind.RENEWAL).count() == 1
    assert len(staff_events(service)) == 1


def test_change_package_previews_the_charge_the_invoice_then_bills(staff_client, customer):
    service = with_a_30_day_period(active_service(customer, tier=1))
    target = target_of(service.package, tier=2, price="40")
    choose = staff_client.get(console_url(service, "change-package")).content.decode()
    assert target.name in choose and 'id="console-confirm-form"' not in choose

    preview = staff_client.get(console_url(service, "change-package"), {"choice": target.pk})
    assert "Upgrade to" in preview.content.decode()
    response = staff_client.post(
        console_url(service, "change-package"),
        {"choice": target.pk, "preview": preview_token(preview)},
        follow=True,
    )
    invoice = Invoice.objects.get(kind=Invoice.Kind.PLAN_CHANGE)
    assert f"charged {escape(invoice.total)} for the rest" in preview.content.decode()
    service.refresh_from_db()
    assert service.package == target
    assert any("Moved to" in message for message in messages_of(response))
    assert service.events.filter(kind="plan_changed").exists()
    assert len(staff_events(service)) == 1


def preview_token(page) -> str:
    return re.search(r'name="preview" value="([^"]+)"', page.content.decode()).group(1)


def test_change_package_bills_what_the_preview_showed_hours_later(staff_client, customer):
    service = with_a_30_day_period(active_service(customer, tier=1))
    target = target_of(service.package, tier=2, price="40")
    start = service.current_period_start
    with time_machine.travel(start + timedelta(days=10), tick=False):
        preview = staff_client.get(console_url(service, "change-package"), {"choice": target.pk})
    shown = re.search(r"charged ([^ ]+ [A-Z]{3}|[^ ]+) for the rest", preview.content.decode())
    with time_machine.travel(start + timedelta(days=10, minutes=20), tick=False):
        staff_client.post(
            console_url(service, "change-package"),
            {"choice": target.pk, "preview": preview_token(preview)},
        )

    invoice = Invoice.objects.get(kind=Invoice.Kind.PLAN_CHANGE)
    assert escape(invoice.total) == shown.group(1)  # prorated to the moment it was shown


def test_change_package_refuses_a_missing_or_outdated_preview_and_bills_nothing(
    staff_client, customer
):
    service = with_a_30_day_period(active_service(customer, tier=1))
    target = target_of(service.package, tier=2, price="40")
    preview = staff_client.get(console_url(service, "change-package"), {"choice": target.pk})
    token = preview_token(preview)
    # The target's price changes after staff saw the figures.
    PackagePriceAmount.objects.filter(package_price__package=target).update(price=usd(50))

    for data in ({"choice": target.pk}, {"choice": target.pk, "preview": token}):
        response = staff_client.post(console_url(service, "change-package"), data)
        assert response.status_code == 400
        assert not Invoice.objects.filter(kind=Invoice.Kind.PLAN_CHANGE).exists()
        service.refresh_from_db()
        assert service.package != target
    # The page shows the figures again, at the new price, with a new token to confirm.
    assert preview_token(response) != token
    assert not staff_events(service)


def test_cancel_at_the_period_end_schedules_it_and_cancel_now_ends_it(staff_client, customer):
    service = active_service(customer)
    confirm(staff_client, service, "cancel", choice="period_end")
    service.refresh_from_db()
    assert service.status == Status.ACTIVE and service.cancel_at == service.current_period_end
    assert service.events.filter(kind="cancellation_scheduled").exists()

    confirm(staff_client, service, "cancel", choice="immediate")
    service.refresh_from_db()
    assert service.status == Status.CANCELLED
    assert len(staff_events(service)) == 2


def test_a_refused_action_says_why_and_records_nothing(staff_client, customer):
    service = active_service(customer)
    response = staff_client.post(console_url(service, "cancel"), {"choice": "whenever"})
    assert response.status_code == 400
    assert "Choose when the service should end" in response.content.decode()
    assert staff_events(service) == []


def test_retry_sends_the_failed_job_to_the_provider_again(staff_client, customer, settings):
    settings.PROVISIONING_MAX_ATTEMPTS = 1
    (service,) = paid_webhook_services(customer, "http://127.0.0.1:9/hook")
    provisioning_job_run(job_id=service.jobs.get().pk)  # nothing listens on port 9: it fails
    job = service.jobs.get()
    assert job.status == "failed"
    assert service.events.filter(kind="job_failed").exists()

    page = staff_client.get(console_url(service, "retry")).content.decode()
    assert f"job #{job.pk}" in page
    confirm(staff_client, service, "retry")
    job.refresh_from_db()
    assert job.status == "queued" and job.attempts == 0
    assert len(staff_events(service)) == 1


def test_marking_a_manual_job_done_starts_the_service_with_the_id_staff_typed(
    staff_client, customer
):
    service = paid_service(customer)  # no provider instance: staff set it up by hand
    provisioning_job_run(job_id=service.jobs.get().pk)
    assert service.jobs.get().status == "waiting"
    confirm(staff_client, service, "complete-manual", remote_id="room-42")
    service.refresh_from_db()
    assert service.status == Status.ACTIVE and service.remote_id == "room-42"
    assert len(staff_events(service)) == 1


def test_an_action_the_service_cannot_take_shows_why_and_no_button(staff_client, customer):
    service = active_service(customer)
    page = staff_client.get(console_url(service, "complete-manual")).content.decode()
    assert "No job of this service waits for staff." in page
    assert 'id="console-confirm-form"' not in page


def test_only_staff_who_may_change_services_reach_the_console(customer_client, customer):
    service = active_service(customer)
    response = customer_client.get(console_url(service, "suspend"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert customer_client.post(console_url(service, "suspend")).status_code == 302
    assert not service.jobs.filter(action=Job.SUSPEND).exists()


def test_a_view_only_staff_member_is_refused(client, customer, django_user_model):
    viewer = django_user_model.objects.create_user(username="viewer", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename="view_service"))
    client.force_login(viewer)
    service = active_service(customer)
    assert client.get(console_url(service, "suspend")).status_code == 403
    assert 'data-action="' not in service_page(client, service)


def test_the_console_refuses_a_post_without_its_csrf_token(staff_user, customer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    service = active_service(customer)
    assert client.post(console_url(service, "terminate")).status_code == 403
    service.refresh_from_db()
    assert service.status == Status.ACTIVE


def test_an_unknown_action_or_service_is_a_404(staff_client, customer):
    service = active_service(customer)
    assert staff_client.get(console_url(service, "explode")).status_code == 404
    missing = reverse("admin:subscriptions_service_console", args=[999999, "suspend"])
    assert staff_client.get(missing).status_code == 404
