"""A job whose worker dies is queued again when its lease runs out, with the same key.

The clock is explicit: each test claims a job at a time of its choosing, as a
worker would, then sweeps at a later time, as a live worker would.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command, get_commands
from django.urls import reverse
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from provisioning.plugins.manual import ManualPlugin
from provisioning.plugins.webhook import WebhookPlugin
from subscriptions.jobs import (
    lease_for,
    provisioning_job_claim,
    provisioning_job_retry,
    provisioning_job_run,
    provisioning_job_succeeded,
    provisioning_jobs_sweep,
)
from subscriptions.models import ProvisioningJob, Service
from tests.factories import WebhookInstanceFactory, paid_webhook_services
from tests.support.jobs import notification_tasks, send_queued_notifications

pytestmark = pytest.mark.django_db
LEASE = timedelta(seconds=60)


@pytest.fixture(autouse=True)
def lease_settings(settings):
    settings.PROVISIONING_LEASE_SECONDS = 60
    settings.PROVISIONING_MAX_ATTEMPTS = 5


def claimed_by_a_worker_that_dies(job: ProvisioningJob, at) -> ProvisioningJob:
    """What a db_worker does before it calls the provider: take the task row, then the job."""
    DBTaskResult.objects.get(id=job.task_id).claim("worker-that-dies")
    claimed = provisioning_job_claim(job_id=job.pk, now=at)
    assert claimed is not None
    return claimed


def test_a_job_whose_lease_ran_out_is_queued_again_with_the_same_idempotency_key(
    customer, webhook_backend
):
    webhook_backend.answer((200, {"remote_id": "vm-1"}, 0))
    (service,) = paid_webhook_services(customer, webhook_backend.url)
    job = service.jobs.get()
    started = timezone.now()
    claimed_by_a_worker_that_dies(job, started)
    dead_task_id = job.task_id

    provisioning_jobs_sweep(now=started + LEASE + timedelta(seconds=1))

    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.QUEUED
    assert (job.attempts, job.workers_lost) == (1, 1)
    assert job.next_attempt_at is None  # the worker failed, not the provider: no backoff
    dead_task = DBTaskResult.objects.get(id=dead_task_id)
    assert dead_task.status == TaskResultStatus.FAILED
    assert dead_task.exception_class_path == "subscriptions.jobs.WorkerLost"
    assert DBTaskResult.objects.get(id=job.task_id).status == TaskResultStatus.READY

    assert provisioning_job_run(job_id=job.pk) == "done"

    (request,) = webhook_backend.requests
    assert request.headers["Idempotency-Key"] == str(job.idempotency_key)
    service.refresh_from_db()
    assert (service.status, service.remote_id) == (Service.Status.ACTIVE, "vm-1")


def test_a_job_whose_lease_still_holds_is_left_to_its_worker(customer):
    (service,) = paid_webhook_services(customer, "http://127.0.0.1:9/hook")
    job = service.jobs.get()
    started = timezone.now()
    claimed_by_a_worker_that_dies(job, started)

    provisioning_jobs_sweep(now=started + LEASE - timedelta(seconds=1))

    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.RUNNING and job.workers_lost == 0
    assert DBTaskResult.objects.get(id=job.task_id).status == TaskResultStatus.RUNNING
    assert DBTaskResult.objects.count() == 1 + notification_tasks().count()


def test_a_service_whose_job_keeps_losing_its_worker_is_flagged_for_staff(customer, settings):
    settings.PROVISIONING_MAX_ATTEMPTS = 3
    (service,) = paid_webhook_services(customer, "http://127.0.0.1:9/hook")
    job = service.jobs.get()
    now = timezone.now()

    for _ in range(3):
        job.refresh_from_db()
        claimed_by_a_worker_that_dies(job, now)
        now += LEASE + timedelta(seconds=1)
        provisioning_jobs_sweep(now=now)

    job.refresh_from_db()
    service.refresh_from_db()
    assert job.status == ProvisioningJob.Status.FAILED
    assert (job.attempts, job.workers_lost) == (3, 3)
    assert service.needs_attention
    assert service.provisioning_error == (
        "Create failed after 3 attempt(s): "
        "the worker running this job stopped 3 time(s) before finishing it"
    )
    assert service.status == Service.Status.PENDING
    assert not DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).exists()


def test_a_finished_job_is_never_queued_again(customer, webhook_backend):
    webhook_backend.answer((200, {"remote_id": "vm-1"}, 0))
    (service,) = paid_webhook_services(customer, webhook_backend.url)
    job = service.jobs.get()
    task = DBTaskResult.objects.get(id=job.task_id)
    # The worker records the job's outcome, then dies before closing its task row.
    task.claim("worker-that-dies")
    assert provisioning_job_run(job_id=job.pk) == "done"
    tasks_before = DBTaskResult.objects.count()

    provisioning_jobs_sweep(now=timezone.now() + timedelta(days=1))

    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.SUCCEEDED and job.workers_lost == 0
    assert DBTaskResult.objects.count() == tasks_before
    task.refresh_from_db()
    assert task.status == TaskResultStatus.FAILED  # closed, not left "running"
    assert len(webhook_backend.requests) == 1


def test_a_job_whose_worker_died_before_claiming_it_gets_a_new_task(customer):
    (service,) = paid_webhook_services(customer, "http://127.0.0.1:9/hook")
    job = service.jobs.get()
    dead_task = DBTaskResult.objects.get(id=job.task_id)
    dead_task.claim("worker-that-dies")  # took the task row, never reached the job

    provisioning_jobs_sweep(now=timezone.now() + LEASE + timedelta(seconds=1))

    dead_task.refresh_from_db()
    job.refresh_from_db()
    assert dead_task.status == TaskResultStatus.FAILED
    assert job.status == ProvisioningJob.Status.QUEUED and job.task_id != str(dead_task.id)
    assert DBTaskResult.objects.get(id=job.task_id).status == TaskResultStatus.READY


def test_a_slow_worker_whose_job_was_queued_again_cannot_record_its_outcome(customer):
    (service,) = paid_webhook_services(customer, "http://127.0.0.1:9/hook")
    job = service.jobs.get()
    started = timezone.now() - LEASE - timedelta(seconds=1)
    slow = claimed_by_a_worker_that_dies(job, started)
    provisioning_jobs_sweep()
    second = provisioning_job_claim(job_id=job.pk)

    assert provisioning_job_succeeded(job_id=job.pk, lease_token=slow.lease_token).startswith(
        "skipped"
    )
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.RUNNING

    assert provisioning_job_succeeded(job_id=job.pk, lease_token=second.lease_token) == "done"
    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE


def test_staff_retry_a_job_stuck_running_as_soon_as_its_lease_runs_out(customer):
    (service,) = paid_webhook_services(customer, "http://127.0.0.1:9/hook")
    job = service.jobs.get()
    claimed_by_a_worker_that_dies(job, timezone.now() - LEASE + timedelta(seconds=5))

    with pytest.raises(ValidationError, match="whose worker stopped"):
        provisioning_job_retry(job=job)

    ProvisioningJob.objects.filter(pk=job.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    provisioning_job_retry(job=job)

    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.QUEUED and job.attempts == 0
    assert DBTaskResult.objects.get(id=job.task_id).status == TaskResultStatus.READY


def test_the_lease_outlasts_the_webhooks_timeout():
    slow = WebhookInstanceFactory.build(timeout_seconds=90)
    quick = WebhookInstanceFactory.build(timeout_seconds=10)

    assert lease_for(WebhookPlugin(), slow) == timedelta(seconds=95)
    assert lease_for(WebhookPlugin(), quick) == LEASE
    assert lease_for(ManualPlugin(), None) == LEASE


# Committed: the worker closes its database connection as it stops, which on PostgreSQL
# would end a test's surrounding transaction.
@pytest.mark.django_db(transaction=True)
def test_every_db_worker_sweeps_so_a_live_worker_finishes_a_dead_ones_job(
    customer, webhook_backend
):
    assert get_commands()["db_worker"] == "subscriptions"  # not django-tasks-db's own
    webhook_backend.answer((200, {"remote_id": "vm-1"}, 0))
    (service,) = paid_webhook_services(customer, webhook_backend.url)
    claimed_by_a_worker_that_dies(service.jobs.get(), timezone.now() - LEASE * 2)

    call_command(
        "db_worker", "--batch", "--no-reload", "--no-startup-delay", "--interval", "0",
        "--verbosity", "0", stdout=StringIO(),
    )  # fmt: skip

    service.refresh_from_db()
    assert (service.status, service.remote_id) == (Service.Status.ACTIVE, "vm-1")
    assert len(webhook_backend.requests) == 1


def test_staff_retry_a_job_whose_worker_stopped_from_the_service_list(customer, staff_client):
    (service,) = paid_webhook_services(customer, "http://127.0.0.1:9/hook")
    job = service.jobs.get()
    claimed_by_a_worker_that_dies(job, timezone.now() - LEASE * 2)

    response = staff_client.post(
        reverse("admin:subscriptions_service_changelist"),
        {"action": "retry_provisioning", "_selected_action": [service.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "1 job(s) queued again." in response.content.decode()
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.QUEUED and job.lease_token is None


def test_an_email_task_whose_worker_died_is_queued_again_after_the_abandon_time(
    settings, customer, mailoutbox
):
    settings.TASKS_ABANDONED_AFTER_SECONDS = 1800
    (service,) = paid_webhook_services(customer, "http://127.0.0.1:9/hook")
    emails = list(notification_tasks().ready())
    assert emails  # "order placed" and "invoice created"
    for email in emails:
        email.claim("worker-that-dies")  # claimed, then the worker was SIGKILLed
    claimed_at = DBTaskResult.objects.get(pk=emails[0].pk).started_at

    # Still within the abandon time, the task may be running yet: left alone.
    provisioning_jobs_sweep(now=claimed_at + timedelta(seconds=1799))
    assert not notification_tasks().ready().exists()

    outcome = provisioning_jobs_sweep(now=claimed_at + timedelta(seconds=1801))

    assert f"{len(emails)} abandoned task(s) queued again" in outcome
    # Provisioning tasks are the job sweep's to judge, never requeued blindly.
    assert DBTaskResult.objects.get(id=service.jobs.get().task_id).status == (
        TaskResultStatus.READY
    )
    send_queued_notifications()
    assert mailoutbox and all(message.to == [customer.email] for message in mailoutbox)
