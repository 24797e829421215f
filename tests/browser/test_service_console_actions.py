"""Staff take each console action from the service's admin page in Chromium, through its
confirmation page: it says what will happen, nothing changes until they confirm, then the
outcome is shown and the timeline's newest entry records it. The dashboard and a confirmation
page fit a 390 px phone."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from subscriptions.jobs import provisioning_job_run
from subscriptions.models import Invoice, PlanChange, ProvisioningJob, Service
from tests.factories import (
    active_service,
    paid_service,
    paid_webhook_services,
    target_of,
    with_period,
)
from tests.support.browser import PHONE_WIDTH, screen, scroll_width, watch_csp

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

Status, Job = Service.Status, ProvisioningJob.Action


def open_action(page, base_url: str, service: Service, label: str, says: str) -> None:
    """From the service's page, open the action's confirmation page and read what it says;
    opening it records nothing on the timeline."""
    page.goto(base_url + reverse("admin:subscriptions_service_change", args=[service.pk]))
    recorded = service.events.count()
    page.locator("#console-actions").get_by_role("link", name=label, exact=True).click()
    expect(page.locator(".console-what")).to_contain_text(says)
    expect(page.locator("#console-refusal")).to_have_count(0)
    assert service.events.count() == recorded, "the confirmation page recorded nothing"


def confirm(page, label: str, outcome: str) -> None:
    """Press the confirmation button; the outcome is shown and is the timeline's newest entry."""
    page.get_by_role("button", name=f"Confirm: {label.lower()}").click()
    expect(page.locator(".messagelist .success")).to_contain_text(f"{label}: {outcome}")
    newest = page.locator("#timeline li").first
    expect(newest).to_contain_text(f"{label} by staff: {outcome}")
    expect(newest.locator(".timeline-actor")).to_have_text("by staff")


def test_staff_unsuspend_a_suspended_service_after_confirming(admin_page, live_server, customer):
    violations = watch_csp(admin_page)
    service = active_service(customer)
    Service.objects.filter(pk=service.pk).update(status=Status.SUSPENDED)

    open_action(admin_page, live_server.url, service, "Unsuspend", "Ask the provider to give")
    assert not service.jobs.filter(action=Job.UNSUSPEND).exists()

    confirm(admin_page, "Unsuspend", "Unsuspension queued")
    assert service.jobs.filter(action=Job.UNSUSPEND, status="queued").exists()
    assert violations == []


def test_staff_terminate_a_service_after_confirming(admin_page, live_server, customer):
    violations = watch_csp(admin_page)
    service = active_service(customer)

    open_action(admin_page, live_server.url, service, "Terminate", "this cannot be undone")
    service.refresh_from_db()
    assert service.status == Status.ACTIVE
    assert not service.jobs.filter(action=Job.TERMINATE).exists()

    confirm(admin_page, "Terminate", "Terminated; the provider removes it in a job.")
    service.refresh_from_db()
    assert service.status == Status.TERMINATED
    assert service.jobs.filter(action=Job.TERMINATE).exists()
    assert violations == []


def test_staff_renew_a_service_now_and_its_next_invoice_is_issued(
    admin_page, live_server, customer
):
    violations = watch_csp(admin_page)
    service = active_service(customer)
    renewals = Invoice.objects.filter(kind=Invoice.Kind.RENEWAL)

    open_action(admin_page, live_server.url, service, "Renew now", "Issue the invoice of the next")
    expect(admin_page.locator(".console-what")).to_contain_text(str(service.recurring_amount))
    assert not renewals.exists()

    admin_page.get_by_role("button", name="Confirm: renew now").click()
    invoice = renewals.get()
    assert invoice.total == service.recurring_amount
    expect(admin_page.locator(".messagelist .success")).to_contain_text(
        f"Invoice {invoice.number} issued for {invoice.total}"
    )
    expect(admin_page.locator("#timeline li").first).to_contain_text(
        f"Renew now by staff: Invoice {invoice.number} issued"
    )
    service.refresh_from_db()
    assert service.next_bill_at is None  # the period is billed: the run will not bill it again
    assert violations == []


def test_staff_preview_a_package_change_with_its_prorated_charge_then_confirm_it(
    admin_page, live_server, customer
):
    violations = watch_csp(admin_page)
    service = with_period(active_service(customer, tier=1))
    source = service.package
    target = target_of(source, tier=2, price="40")
    page = admin_page

    open_action(page, live_server.url, service, "Change package", "Choose a package")
    expect(page.locator("#console-confirm-form")).to_have_count(0)  # nothing to confirm yet
    page.get_by_label(target.name, exact=False).check()
    page.get_by_role("button", name="Preview").click()
    what = page.locator(".console-what")
    expect(what).to_contain_text(f"Upgrade to {target.name} now: charged")
    expect(what).to_contain_text("(prorated)")
    preview = what.inner_text()
    service.refresh_from_db()
    assert service.package == source
    assert not PlanChange.objects.exists()
    assert not Invoice.objects.filter(kind=Invoice.Kind.PLAN_CHANGE).exists()

    page.get_by_role("button", name="Confirm: change package").click()
    change = PlanChange.objects.get(service=service)
    invoice = Invoice.objects.get(kind=Invoice.Kind.PLAN_CHANGE)
    # The charge the preview showed is the one the invoice bills.
    assert invoice.total == change.charge
    assert f"charged {invoice.total} for the rest of the period (prorated)" in preview
    outcome = f"Moved to {target.name}; charged {change.charge}"
    expect(page.locator(".messagelist .success")).to_contain_text(outcome)
    expect(page.locator("#timeline li").first).to_contain_text(
        f"Change package by staff: {outcome}"
    )
    service.refresh_from_db()
    assert service.package == target
    assert violations == []


@pytest.mark.parametrize(
    ("when", "outcome"),
    [
        ("Immediately: the provider removes it now", "Cancelled now."),
        ("At the end of the period", "Cancels at the period end"),
    ],
)
def test_staff_cancel_a_service_now_or_at_the_period_end_after_confirming(
    admin_page, live_server, customer, when, outcome
):
    violations = watch_csp(admin_page)
    service = active_service(customer)

    open_action(admin_page, live_server.url, service, "Cancel", "nothing is refunded")
    service.refresh_from_db()
    assert service.status == Status.ACTIVE and service.cancel_requested_at is None

    admin_page.get_by_label(when).check()
    confirm(admin_page, "Cancel", outcome)
    service.refresh_from_db()
    if outcome == "Cancelled now.":
        assert service.status == Status.CANCELLED
    else:
        assert service.status == Status.ACTIVE
        assert service.cancel_at == service.current_period_end
    assert violations == []


def test_staff_retry_a_failed_job_after_confirming(admin_page, live_server, customer, settings):
    violations = watch_csp(admin_page)
    settings.PROVISIONING_MAX_ATTEMPTS = 1
    (service,) = paid_webhook_services(customer, "http://127.0.0.1:9/hook")
    provisioning_job_run(job_id=service.jobs.get().pk)  # nothing listens on port 9: it fails
    job = service.jobs.get()
    assert job.status == ProvisioningJob.Status.FAILED

    open_action(admin_page, live_server.url, service, "Retry failed job", f"(job #{job.pk})")
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.FAILED and job.attempts == 1

    confirm(
        admin_page, "Retry failed job", f"{job.get_action_display()} (job #{job.pk}) queued again."
    )
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.QUEUED and job.attempts == 0
    assert violations == []


def test_staff_mark_a_manual_job_done_with_the_remote_id_they_typed(
    admin_page, live_server, customer
):
    violations = watch_csp(admin_page)
    service = paid_service(customer)  # no provider instance: staff set it up by hand
    provisioning_job_run(job_id=service.jobs.get().pk)
    job = service.jobs.get()
    assert job.status == ProvisioningJob.Status.WAITING

    open_action(admin_page, live_server.url, service, "Mark manual job done", f"(job #{job.pk})")
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.WAITING

    admin_page.get_by_label("Remote id").fill("room-42")
    confirm(
        admin_page,
        "Mark manual job done",
        f"{job.get_action_display()} (job #{job.pk}) marked done.",
    )
    service.refresh_from_db()
    assert service.status == Status.ACTIVE and service.remote_id == "room-42"
    assert violations == []


def test_the_dashboard_and_a_console_confirmation_fit_a_phone(
    browser, live_server, staff_user, customer
):
    service = with_period(active_service(customer, tier=1))
    target = target_of(service.package, tier=2, price="40")
    Service.objects.filter(pk=service.pk).update(needs_attention=True, provisioning_error="slow")
    context, phone = screen(browser, PHONE_WIDTH)
    violations = watch_csp(phone)
    try:
        phone.goto(f"{live_server.url}/admin/login/")
        phone.fill("#id_username", "staff")
        phone.fill("#id_password", "staff-password")
        phone.get_by_role("button", name="Log in").click()
        phone.wait_for_url(f"{live_server.url}/admin/")
        expect(phone.locator("#needs-attention")).to_contain_text(str(service))
        expect(phone.locator("#chart-USD svg")).to_be_visible()
        widths = {"dashboard": scroll_width(phone)}

        # The package change's preview is the fullest confirmation page: choices and charge.
        url = reverse("admin:subscriptions_service_console", args=[service.pk, "change-package"])
        phone.goto(f"{live_server.url}{url}?choice={target.pk}")
        expect(phone.locator(".console-what")).to_contain_text("(prorated)")
        widths["change package"] = scroll_width(phone)
    finally:
        context.close()

    assert {name: px for name, px in widths.items() if px > PHONE_WIDTH} == {}
    assert violations == []
