"""Provisioning jobs: queued with the change, retried with backoff, then staff step in."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from payments.services import payment_record
from subscriptions.jobs import provisioning_job_retry, provisioning_job_run, retry_delay
from subscriptions.models import Order, ProvisioningJob, Service
from tests.factories import WebhookInstanceFactory, paid_service, place, shop_package

pytestmark = pytest.mark.django_db
UNREACHABLE = "http://127.0.0.1:9/hook"  # the discard port: connection refused


def paid_webhook_service(customer, url=UNREACHABLE) -> Service:
    return paid_service(
        customer,
        provider_instance=WebhookInstanceFactory(url=url, timeout_seconds=1),
        provisioning_options={"plan_code": "pro", "region": "", "send_settings": False},
        checkout_fields={"label": "a"},
    )


def run_until_settled(job: ProvisioningJob) -> list[str]:
    outcomes = []
    for _ in range(20):
        ProvisioningJob.objects.filter(pk=job.pk).update(next_attempt_at=None)
        outcome = provisioning_job_run(job_id=job.pk)
        outcomes.append(outcome)
        if not outcome.startswith("retry"):
            break
    return outcomes


def test_the_job_and_its_task_are_written_in_the_orders_transaction(customer):
    with pytest.raises(RuntimeError), transaction.atomic():
        paid_webhook_service(customer)
        # The order's notification emails are tasks of their own, in the same transaction.
        provisioning = DBTaskResult.objects.filter(task_path__endswith="run_provisioning_job")
        assert ProvisioningJob.objects.count() == provisioning.count() == 1
        raise RuntimeError("crash before commit")

    assert not Order.objects.exists()
    assert not ProvisioningJob.objects.exists()
    assert not DBTaskResult.objects.exists()


def test_backoff_doubles_and_is_capped(settings):
    settings.PROVISIONING_RETRY_BASE_SECONDS = 30
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3)] == [30, 60, 120]
    assert retry_delay(30) == timedelta(hours=1)


def test_a_failing_call_is_retried_later_with_a_deferred_task(customer):
    service = paid_webhook_service(customer)
    job = service.jobs.get()

    outcome = provisioning_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert outcome.startswith("retry 2")
    assert job.status == ProvisioningJob.Status.QUEUED and job.attempts == 1
    assert "Could not reach" in job.last_error
    task = DBTaskResult.objects.get(id=job.task_id)
    assert task.run_after > timezone.now() + timedelta(seconds=20)
    # A stale or duplicate task run before the retry time does nothing.
    assert provisioning_job_run(job_id=job.pk).startswith("skipped")


def test_after_the_last_attempt_the_service_needs_attention_with_the_error(customer, settings):
    settings.PROVISIONING_MAX_ATTEMPTS = 3
    service = paid_webhook_service(customer)
    job = service.jobs.get()

    outcomes = run_until_settled(job)

    assert len(outcomes) == 3 and outcomes[-1].startswith("failed")
    job.refresh_from_db()
    service.refresh_from_db()
    assert job.status == ProvisioningJob.Status.FAILED
    assert service.needs_attention
    assert "failed after 3 attempt(s)" in service.provisioning_error
    assert "127.0.0.1:9" in service.provisioning_error
    assert service.status == Service.Status.PENDING


def test_staff_retry_a_failed_job_which_then_succeeds(customer, settings, webhook_backend):
    settings.PROVISIONING_MAX_ATTEMPTS = 1
    service = paid_webhook_service(customer)
    job = service.jobs.get()
    run_until_settled(job)
    service.provider_instance.get_real_instance().__class__.objects.filter(
        pk=service.provider_instance_id
    ).update(url=webhook_backend.url)
    webhook_backend.answer((200, {"remote_id": "r-1"}, 0))

    provisioning_job_retry(job=job)
    service.refresh_from_db()
    assert not service.needs_attention
    assert provisioning_job_run(job_id=job.pk) == "done"

    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE and service.remote_id == "r-1"


def test_only_a_failed_job_can_be_retried(customer):
    job = paid_webhook_service(customer).jobs.get()
    with pytest.raises(ValidationError):
        provisioning_job_retry(job=job)


def test_a_plugin_bug_is_recorded_like_a_provider_error(customer, monkeypatch, settings):
    settings.PROVISIONING_MAX_ATTEMPTS = 1
    from provisioning.plugins.webhook import WebhookPlugin

    def broken(self, instance, request):
        raise KeyError("oops")

    monkeypatch.setattr(WebhookPlugin, "perform", broken)
    service = paid_webhook_service(customer)

    provisioning_job_run(job_id=service.jobs.get().pk)

    service.refresh_from_db()
    assert service.needs_attention and "KeyError" in service.provisioning_error


def test_there_is_one_open_job_per_service_and_action(customer):
    from django.db import IntegrityError

    service = paid_webhook_service(customer)
    with pytest.raises(IntegrityError), transaction.atomic():
        ProvisioningJob.objects.create(service=service, action="create")


def test_staff_see_failed_services_and_retry_them_in_the_admin(customer, staff_client, settings):
    settings.PROVISIONING_MAX_ATTEMPTS = 1
    service = paid_webhook_service(customer)
    job = service.jobs.get()
    run_until_settled(job)

    listing = staff_client.get(
        reverse("admin:subscriptions_service_changelist") + "?needs_attention__exact=1"
    )
    assert listing.status_code == 200
    assert "127.0.0.1:9" in listing.content.decode()

    response = staff_client.post(
        reverse("admin:subscriptions_service_changelist"),
        {"action": "retry_provisioning", "_selected_action": [service.pk]},
        follow=True,
    )
    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.QUEUED and job.attempts == 0


def test_staff_complete_a_manual_job_in_the_admin(customer, staff_client):
    package, monthly, options = shop_package()
    order = place(customer, package, monthly, [options["eu"]])
    staff_client.post(
        reverse("admin:subscriptions_invoice_changelist"),
        {"action": "mark_paid", "_selected_action": [order.invoices.get().pk]},
    )
    job = ProvisioningJob.objects.get()
    provisioning_job_run(job_id=job.pk)

    staff_client.post(
        reverse("admin:subscriptions_provisioningjob_changelist"),
        {"action": "complete", "_selected_action": [job.pk]},
    )

    assert order.services.get().status == Service.Status.ACTIVE


@pytest.mark.parametrize(
    "name",
    ["order", "invoice", "service", "provisioningjob"],
)
def test_every_admin_page_opens(staff_client, customer, name):
    package, monthly, options = shop_package()
    order = place(customer, package, monthly, [options["eu"]])
    invoice = order.invoices.get()
    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)
    objects = {
        "order": order,
        "invoice": invoice,
        "payment": invoice.payments.get(),
        "service": order.services.get(),
        "provisioningjob": ProvisioningJob.objects.get(),
    }
    assert staff_client.get(reverse(f"admin:subscriptions_{name}_changelist")).status_code == 200
    url = reverse(f"admin:subscriptions_{name}_change", args=[objects[name].pk])
    assert staff_client.get(url).status_code == 200
