"""Provider calls as background jobs: queued with the change, retried, never run twice.

A `ProvisioningJob` row is written in the same transaction as the change that
needs it (an order paid, a cancellation), together with the django-tasks task
that runs it, so a crash can lose neither. A task run first claims its job
with a conditional UPDATE; a second run of the same task, or a stale one,
finds nothing to claim and does nothing. The job's idempotency key goes to
the provider on every attempt, so even a worker that dies mid-call cannot
make the provider act twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_tasks import task

from catalog.errors import ErrorCode, refuse
from catalog.models import NotificationEvent, Package
from provisioning.plugins.base import ProvisioningError, ProvisionRequest
from provisioning.registry import plugin_for

from .models import ProvisioningJob, Service
from .notifications import notify_service
from .periods import add_interval

MAX_BACKOFF_SECONDS = 3600


def max_attempts() -> int:
    return getattr(settings, "PROVISIONING_MAX_ATTEMPTS", 5)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff: base, 2×base, 4×base… capped at an hour."""
    base = getattr(settings, "PROVISIONING_RETRY_BASE_SECONDS", 30)
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


def _queue_task(job: ProvisioningJob) -> None:
    task = run_provisioning_job
    if job.next_attempt_at and job.next_attempt_at > timezone.now():
        task = task.using(run_after=job.next_attempt_at)
    result = task.enqueue(job.pk)
    job.task_id = str(result.id)
    job.save(update_fields=["task_id"])


def provisioning_job_enqueue(
    *, service: Service, action: str, payload: dict | None = None
) -> ProvisioningJob:
    """Call within the transaction of the change: the job and its task commit with it."""
    job = ProvisioningJob(service=service, action=action, payload=payload or {})
    job.full_clean(exclude=["service"], validate_constraints=False)
    job.save()
    _queue_task(job)
    return job


def provisioning_job_enqueue_once(
    *, service: Service, action: str, payload: dict | None = None
) -> None:
    """Queue `action` unless one is open already."""
    # One open job per action and service (a database constraint): an open one
    # still to run reads the service as it is then, so it covers this change too.
    if not service.jobs.filter(action=action, status__in=ProvisioningJob.OPEN_STATUSES).exists():
        provisioning_job_enqueue(service=service, action=action, payload=payload)


def provisioning_job_cancel_open(*, service: Service, action: str) -> int:
    """Drop jobs that have not started; a running one sees the new state when it finishes."""
    return ProvisioningJob.objects.filter(
        service=service, action=action, status__in=ProvisioningJob.NOT_STARTED_STATUSES
    ).update(status=ProvisioningJob.Status.CANCELLED, finished_at=timezone.now())


def _request_for(job: ProvisioningJob) -> ProvisionRequest:
    service = job.service
    return ProvisionRequest(
        action=job.action,
        service_id=str(service.uuid),
        idempotency_key=str(job.idempotency_key),
        package_options=service.provisioning_options,
        package_settings=service.package_settings,
        variants=service.variants_map,
        checkout_fields=service.checkout_fields,
        extra={
            "customer_email": service.customer.email,
            "package": service.package_name,
            "pricing_option": service.price_name,
            "remote_id": service.remote_id,
            **job.payload,
        },
    )


def provisioning_job_run(*, job_id: int) -> str:
    """What the task does: claim the job, call the provider, record the outcome."""
    now = timezone.now()
    claimed = (
        ProvisioningJob.objects.filter(pk=job_id, status=ProvisioningJob.Status.QUEUED)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(status=ProvisioningJob.Status.RUNNING, started_at=now, attempts=F("attempts") + 1)
    )
    if not claimed:
        return "skipped: nothing to do"
    job = ProvisioningJob.objects.select_related("service__customer").get(pk=job_id)
    try:
        plugin, instance = plugin_for(job.service.provider_instance)
        result = plugin.perform(instance, _request_for(job))
    except ProvisioningError as error:
        return provisioning_job_failed(job_id=job_id, error=str(error))
    except Exception as error:  # a plugin bug must not leave the job running for ever
        return provisioning_job_failed(job_id=job_id, error=f"{type(error).__name__}: {error}")
    if result.done:
        return provisioning_job_succeeded(
            job_id=job_id,
            remote_id=result.remote_id,
            message=result.message,
            replaces_remote_id=result.replaces_remote_id,
        )
    return provisioning_job_waiting(job_id=job_id, message=result.message)


@task()
def run_provisioning_job(job_id: int) -> str:
    return provisioning_job_run(job_id=job_id)


@transaction.atomic
def provisioning_job_failed(*, job_id: int, error: str) -> str:
    job = ProvisioningJob.objects.select_for_update().get(pk=job_id)
    if job.status != ProvisioningJob.Status.RUNNING:
        return f"skipped: {job.status}"
    service = Service.objects.select_for_update().get(pk=job.service_id)
    now = timezone.now()
    job.last_error = error
    if job.action == ProvisioningJob.Action.CREATE and not service.is_live:
        job.status = ProvisioningJob.Status.CANCELLED
        job.finished_at = now
        job.save()
        return "cancelled: the service has ended"
    if job.attempts < max_attempts():
        job.status = ProvisioningJob.Status.QUEUED
        job.next_attempt_at = now + retry_delay(job.attempts)
        job.save()
        _queue_task(job)
        return f"retry {job.attempts + 1} at {job.next_attempt_at.isoformat()}: {error}"
    job.status = ProvisioningJob.Status.FAILED
    job.finished_at = now
    job.save()
    service.needs_attention = True
    service.provisioning_error = (
        f"{job.get_action_display()} failed after {job.attempts} attempt(s): {error}"
    )
    service.save(update_fields=["needs_attention", "provisioning_error"])
    return f"failed: {error}"


@transaction.atomic
def provisioning_job_waiting(*, job_id: int, message: str) -> str:
    job = ProvisioningJob.objects.select_for_update().get(pk=job_id)
    if job.status != ProvisioningJob.Status.RUNNING:
        return f"skipped: {job.status}"
    job.status = ProvisioningJob.Status.WAITING
    job.result_message = message
    job.save()
    return f"waiting: {message}"


@transaction.atomic
def provisioning_job_succeeded(
    *, job_id: int, remote_id: str = "", message: str = "", replaces_remote_id: bool = False
) -> str:
    job = ProvisioningJob.objects.select_for_update().get(pk=job_id)
    if job.status not in (ProvisioningJob.Status.RUNNING, ProvisioningJob.Status.WAITING):
        return f"skipped: {job.status}"
    service = Service.objects.select_for_update().get(pk=job.service_id)
    now = timezone.now()
    job.status = ProvisioningJob.Status.SUCCEEDED
    job.finished_at = now
    job.result_message = message
    job.save()
    service.needs_attention = False
    service.provisioning_error = ""
    # The remote id comes from create and stays until terminate: providers
    # that answer every call with an id (often a request id) must not move it.
    if remote_id and (job.action == ProvisioningJob.Action.CREATE or replaces_remote_id):
        service.remote_id = remote_id
    _apply(job, service, now)
    service.save()
    return "done"


def service_start(service: Service, *, now: datetime | None = None) -> None:
    """The provider has set it up: the trial or the first period begins now."""
    now = now or timezone.now()
    service.activated_at = now
    recurring = service.is_recurring
    if service.trial_period and recurring:
        service.status = Service.Status.TRIAL
        service.trial_started_at = now
        service.trial_ends_at = add_interval(now, service.trial_period, service.trial_interval)
        # outside: the first paid period follows the trial; inside: it began with it.
        start = service.trial_ends_at if service.trial_mode == Package.TrialMode.OUTSIDE else now
        service.current_period_start = start
        service.current_period_end = max(
            add_interval(start, service.time_interval, service.billing_period),
            service.trial_ends_at,
        )
        service.next_due_at = service.trial_ends_at
    else:
        service.status = Service.Status.ACTIVE
        if recurring:
            service.current_period_start = now
            service.current_period_end = add_interval(
                now, service.time_interval, service.billing_period
            )
            service.next_due_at = service.current_period_end


def _apply(job: ProvisioningJob, service: Service, now) -> None:
    Action, S = ProvisioningJob.Action, Service.Status
    if job.action == Action.CREATE:
        if service.status == S.PENDING:
            service_start(service, now=now)
            notify_service(
                NotificationEvent.TRIAL_STARTED
                if service.status == S.TRIAL
                else NotificationEvent.SERVICE_ACTIVATED,
                service,
            )
        elif not service.is_live:
            # Cancelled while the provider was creating it: remove it again.
            provisioning_job_enqueue(service=service, action=Action.TERMINATE)
    elif job.action == Action.SUSPEND and service.status in (S.TRIAL, S.ACTIVE, S.GRACE):
        service.status = S.SUSPENDED
        service.suspended_at = now
        notify_service(NotificationEvent.SERVICE_SUSPENDED, service)
    elif job.action == Action.UNSUSPEND and service.status == S.SUSPENDED:
        in_trial = service.trial_ends_at and service.trial_ends_at > now
        service.status = S.TRIAL if in_trial else S.ACTIVE
        service.suspended_at = None
        notify_service(NotificationEvent.SERVICE_UNSUSPENDED, service)
    elif job.action == Action.TERMINATE and service.status != S.TERMINATED:
        service.status = S.TERMINATED
        service.terminated_at = now
        notify_service(NotificationEvent.SERVICE_TERMINATED, service)


def provisioning_job_complete(*, job: ProvisioningJob, remote_id: str = "") -> str:
    """Staff did a manual job by hand."""
    if not ProvisioningJob.objects.filter(
        pk=job.pk, status=ProvisioningJob.Status.WAITING
    ).exists():
        raise refuse(ErrorCode.NOT_WAITING, "Only a job waiting for staff can be completed.")
    # An id staff type in is meant: it replaces the one the service had.
    return provisioning_job_succeeded(
        job_id=job.pk, remote_id=remote_id, message="Completed by staff.", replaces_remote_id=True
    )


@transaction.atomic
def provisioning_job_retry(*, job: ProvisioningJob) -> ProvisioningJob:
    """Staff send a failed (or stuck running) job to the provider again, with its attempts reset."""
    job = ProvisioningJob.objects.select_for_update().get(pk=job.pk)
    stale = job.status == ProvisioningJob.Status.RUNNING and (
        job.started_at is None or job.started_at < timezone.now() - timedelta(minutes=15)
    )
    if job.status != ProvisioningJob.Status.FAILED and not stale:
        raise refuse(
            ErrorCode.NOT_RETRYABLE,
            f"Only a failed job (or one stuck running) can be retried; this one is "
            f"{job.get_status_display().lower()}.",
        )
    job.status = ProvisioningJob.Status.QUEUED
    job.attempts = 0
    job.next_attempt_at = None
    job.finished_at = None
    job.save()
    Service.objects.filter(pk=job.service_id).update(needs_attention=False)
    _queue_task(job)
    return job
