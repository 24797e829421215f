"""Provider calls as background jobs: queued with the change, retried, never run twice.

A `ProvisioningJob` row is written in the same transaction as the change that
needs it (an order paid, a cancellation), together with the django-tasks task
that runs it, so a crash can lose neither. A task run first claims its job
with a conditional UPDATE; a second run of the same task, or a stale one,
finds nothing to claim and does nothing. The job's idempotency key goes to
the provider on every attempt, so even a worker that dies mid-call cannot
make the provider act twice.

A claimed job is leased to its worker for `PROVISIONING_LEASE_SECONDS` (longer
when the plugin's calls may take longer). A worker killed mid-call leaves the
job running with a lease that runs out; `provisioning_jobs_sweep()` then
queues it again, with the same idempotency key, as one more attempt, and marks
the dead worker's task row failed. Every `manage.py db_worker` runs the sweep
(see `subscriptions/management/commands/db_worker.py`), so a live worker
rescues the jobs of a dead one.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_tasks import TaskResultStatus, task
from django_tasks_db.models import DBTaskResult

from catalog.errors import ErrorCode, refuse
from catalog.models import NotificationEvent, Package
from provisioning.plugins.base import ProvisioningError, ProvisionRequest
from provisioning.registry import plugin_for

from .events import Kind, service_event_record, status_changed
from .models import ProvisioningJob, Service
from .notifications import notify_service
from .periods import add_interval, anchored_period_end, first_paid_period_start
from .queueing import tasks_enqueue_many, tasks_requeue_abandoned

MAX_BACKOFF_SECONDS = 3600
# Beyond the plugin's own timeout: time to record the outcome once the call returns.
LEASE_MARGIN_SECONDS = 5
# Tasks queued before the task moved here from subscriptions.tasks keep that path.
LEGACY_TASK_PATH = "subscriptions.tasks.run_provisioning_job"


class WorkerLost(Exception):
    """Recorded on the task row of a worker that stopped while running it."""


def max_attempts() -> int:
    return getattr(settings, "PROVISIONING_MAX_ATTEMPTS", 5)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff: base, 2×base, 4×base… capped at an hour."""
    base = getattr(settings, "PROVISIONING_RETRY_BASE_SECONDS", 30)
    return timedelta(seconds=min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


def lease_seconds() -> int:
    return getattr(settings, "PROVISIONING_LEASE_SECONDS", 60)


def sweep_interval_seconds() -> float:
    """How often a worker sweeps: a quarter of a lease, so a lost job waits little longer."""
    return min(15.0, max(1.0, lease_seconds() / 4))


def lease_for(plugin, instance) -> timedelta:
    """The lease outlasts the plugin's longest call, so a live worker keeps its job."""
    return timedelta(
        seconds=max(lease_seconds(), plugin.call_timeout(instance) + LEASE_MARGIN_SECONDS)
    )


@task()
def run_provisioning_job(job_id: int) -> str:
    return provisioning_job_run(job_id=job_id)


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
    # Its task's id chosen first, so the job is written once: its idempotency key is a
    # fresh UUID and one open job per action is the database's constraint to enforce.
    job = ProvisioningJob(
        service=service, action=action, payload=payload or {}, task_id=str(uuid.uuid4())
    )
    job.full_clean(exclude=["service"], validate_unique=False, validate_constraints=False)
    job.save()
    tasks_enqueue_many(run_provisioning_job, [([job.pk], {})], ids=[job.task_id])
    service_event_record(
        service,
        Kind.JOB_QUEUED,
        f"{job.get_action_display()} queued (job #{job.pk})",
        data={"job": job.pk},
    )
    return job


def provisioning_jobs_enqueue_many(
    *, services: list[Service], action: str
) -> list[ProvisioningJob]:
    """`provisioning_job_enqueue` for many services in two INSERTs: the jobs, then their tasks.

    Call it holding the services' locks, having checked none has `action` open
    (a database constraint refuses a second open job).
    """
    jobs = [
        ProvisioningJob(service=service, action=action, task_id=str(uuid.uuid4()))
        for service in services
    ]
    ProvisioningJob.objects.bulk_create(jobs)
    tasks_enqueue_many(
        run_provisioning_job, [([job.pk], {}) for job in jobs], ids=[job.task_id for job in jobs]
    )
    return jobs


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


def provisioning_job_claim(*, job_id: int, now: datetime | None = None) -> ProvisioningJob | None:
    """Take a queued job for this worker, leased for the base lease; None if it is not ready."""
    now = now or timezone.now()
    claimed = (
        ProvisioningJob.objects.filter(pk=job_id, status=ProvisioningJob.Status.QUEUED)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(
            status=ProvisioningJob.Status.RUNNING,
            started_at=now,
            attempts=F("attempts") + 1,
            lease_expires_at=now + timedelta(seconds=lease_seconds()),
            lease_token=uuid.uuid4(),
        )
    )
    if not claimed:
        return None
    job = ProvisioningJob.objects.select_related("service__customer").get(pk=job_id)
    service_event_record(
        job.service_id,
        Kind.JOB_ATTEMPT,
        f"{job.get_action_display()}: attempt {job.attempts} started (job #{job.pk})",
        data={"job": job.pk, "attempt": job.attempts},
    )
    return job


def _cover_the_call(job: ProvisioningJob, plugin, instance) -> None:
    """Lengthen the lease when this plugin's calls may outlast the base lease."""
    # A claimed job always has both (the claim sets them; a constraint holds it).
    assert job.started_at is not None and job.lease_expires_at is not None
    expires_at = job.started_at + lease_for(plugin, instance)
    if expires_at > job.lease_expires_at:
        ProvisioningJob.objects.filter(pk=job.pk, lease_token=job.lease_token).update(
            lease_expires_at=expires_at
        )


def provisioning_job_run(*, job_id: int) -> str:
    """What the task does: claim the job, call the provider, record the outcome."""
    job = provisioning_job_claim(job_id=job_id)
    if job is None:
        return "skipped: nothing to do"
    token = job.lease_token
    try:
        plugin, instance = plugin_for(job.service.provider_instance)
        _cover_the_call(job, plugin, instance)
        result = plugin.perform(instance, _request_for(job))
    except ProvisioningError as error:
        return provisioning_job_failed(job_id=job_id, lease_token=token, error=str(error))
    except Exception as error:  # a plugin bug must not leave the job running for ever
        return provisioning_job_failed(
            job_id=job_id, lease_token=token, error=f"{type(error).__name__}: {error}"
        )
    if result.done:
        return provisioning_job_succeeded(
            job_id=job_id,
            lease_token=token,
            remote_id=result.remote_id,
            message=result.message,
            replaces_remote_id=result.replaces_remote_id,
        )
    return provisioning_job_waiting(job_id=job_id, lease_token=token, message=result.message)


def _holds_lease(job: ProvisioningJob, lease_token: uuid.UUID | None) -> bool:
    """Only the worker whose lease is current may record an outcome: one that was
    only slow, and whose job was queued again meanwhile, must not finish it twice."""
    return job.status == ProvisioningJob.Status.RUNNING and job.lease_token == lease_token


def _release(job: ProvisioningJob) -> None:
    job.lease_expires_at = None
    job.lease_token = None


@transaction.atomic
def provisioning_job_failed(*, job_id: int, lease_token: uuid.UUID | None, error: str) -> str:
    job = ProvisioningJob.objects.select_for_update().get(pk=job_id)
    if not _holds_lease(job, lease_token):
        return f"skipped: {job.status}, the lease was lost"
    service = Service.objects.select_for_update().get(pk=job.service_id)
    now = timezone.now()
    return _retry_or_give_up(job, service, error=error, retry_at=now + retry_delay(job.attempts))


def _retry_or_give_up(
    job: ProvisioningJob, service: Service, *, error: str, retry_at: datetime | None
) -> str:
    """After an attempt that did not finish: try again, or give up and flag the service."""
    now = timezone.now()
    job.last_error = error
    _release(job)
    if job.action == ProvisioningJob.Action.CREATE and not service.is_live:
        job.status = ProvisioningJob.Status.CANCELLED
        job.finished_at = now
        job.save()
        return "cancelled: the service has ended"
    if job.attempts < max_attempts():
        job.status = ProvisioningJob.Status.QUEUED
        job.next_attempt_at = retry_at
        job.save()
        _queue_task(job)
        when = retry_at.isoformat() if retry_at else "once"
        service_event_record(
            service,
            Kind.JOB_ATTEMPT,
            f"{job.get_action_display()}: attempt {job.attempts} did not finish ({error}); retry at {when}",
            data={"job": job.pk, "attempt": job.attempts},
        )
        return f"retry {job.attempts + 1} at {when}: {error}"
    job.status = ProvisioningJob.Status.FAILED
    job.finished_at = now
    job.save()
    service.needs_attention = True
    service.provisioning_error = (
        f"{job.get_action_display()} failed after {job.attempts} attempt(s): {error}"
    )
    service.save(update_fields=["needs_attention", "provisioning_error"])
    service_event_record(service, Kind.JOB_FAILED, service.provisioning_error, data={"job": job.pk})
    return f"failed: {error}"


@transaction.atomic
def provisioning_job_waiting(*, job_id: int, lease_token: uuid.UUID | None, message: str) -> str:
    job = ProvisioningJob.objects.select_for_update().get(pk=job_id)
    if not _holds_lease(job, lease_token):
        return f"skipped: {job.status}, the lease was lost"
    _release(job)
    job.status = ProvisioningJob.Status.WAITING
    job.result_message = message
    job.save()
    service_event_record(
        job.service_id,
        Kind.JOB_WAITING,
        f"{job.get_action_display()} waits for staff: {message}",
        data={"job": job.pk},
    )
    return f"waiting: {message}"


@transaction.atomic
def provisioning_job_succeeded(
    *,
    job_id: int,
    lease_token: uuid.UUID | None = None,
    remote_id: str = "",
    message: str = "",
    replaces_remote_id: bool = False,
) -> str:
    """The provider did it (a running job, with its lease), or staff did (a waiting job)."""
    job = ProvisioningJob.objects.select_for_update().get(pk=job_id)
    if job.status != ProvisioningJob.Status.WAITING and not _holds_lease(job, lease_token):
        return f"skipped: {job.status}"
    service = Service.objects.select_for_update().get(pk=job.service_id)
    now = timezone.now()
    _release(job)
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
    before = service.status
    _apply(job, service, now)
    service.save()
    service_event_record(
        service,
        Kind.JOB_SUCCEEDED,
        f"{job.get_action_display()} done" + (f": {message}" if message else ""),
        data={"job": job.pk, "remote_id": service.remote_id},
    )
    status_changed(service, before)
    return "done"


def service_start(service: Service, *, now: datetime | None = None) -> None:
    """The provider has set it up: the trial or the first period begins now."""
    now = now or timezone.now()
    service.activated_at = now
    service.status = Service.Status.ACTIVE
    if not service.is_recurring:
        return
    assert service.time_interval  # a recurring option has one (PackagePrice.clean)
    start = now
    if service.trial_period:
        service.status = Service.Status.TRIAL
        service.trial_started_at = now
        service.trial_ends_at = add_interval(now, service.trial_period, service.trial_interval)
        start = first_paid_period_start(
            started=now,
            trial_ends=service.trial_ends_at,
            inside=service.trial_mode == Package.TrialMode.INSIDE,
            count=service.time_interval,
            unit=service.billing_period,
        )
    service.billing_anchor = service.current_period_start = start
    service.current_period_end = anchored_period_end(
        start, start, service.time_interval, service.billing_period
    )
    # The first invoice falls due when the trial ends, the next ones at period ends.
    service.next_due_at = service.next_bill_at = service.trial_ends_at or service.current_period_end


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
        # A termination date belongs to this suspension; a later one gets its own.
        service.terminates_at = None
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
    """Staff send a failed job, or a running one whose worker was lost, to the provider again,
    with its attempts reset. The sweeper would requeue a lost one too, but staff need not wait."""
    now = timezone.now()
    job = ProvisioningJob.objects.select_for_update().get(pk=job.pk)
    lost = ProvisioningJob.objects.lost(now).filter(pk=job.pk).exists()
    if job.status != ProvisioningJob.Status.FAILED and not lost:
        raise refuse(
            ErrorCode.NOT_RETRYABLE,
            f"Only a failed job, or a running one whose worker stopped, can be retried; "
            f"this one is {job.get_status_display().lower()}.",
        )
    if lost:
        _fail_task_row(job, now)
    _release(job)
    job.status = ProvisioningJob.Status.QUEUED
    job.attempts = 0
    job.workers_lost = 0
    job.next_attempt_at = None
    job.finished_at = None
    job.save()
    Service.objects.filter(pk=job.service_id).update(needs_attention=False)
    _queue_task(job)
    return job


# The sweeper: requeue the jobs of workers that stopped, and tidy their task rows.


def _fail_task_row(job: ProvisioningJob, now: datetime) -> None:
    """The dead worker's task row would say "running" for ever: mark it failed."""
    _fail_task_rows(DBTaskResult.objects.filter(id=job.task_id), now, job_id=job.pk)


def _fail_task_rows(rows, now: datetime, *, job_id: int) -> int:
    return rows.filter(status=TaskResultStatus.RUNNING).update(
        status=TaskResultStatus.FAILED,
        finished_at=now,
        exception_class_path=f"{WorkerLost.__module__}.{WorkerLost.__qualname__}",
        traceback=f"The worker running provisioning job {job_id} stopped before it finished.",
        return_value=None,
    )


@transaction.atomic
def provisioning_job_lost(*, job_id: int, now: datetime | None = None) -> str:
    """Its worker stopped mid-job: one more attempt used, the same idempotency key kept."""
    now = now or timezone.now()
    job = ProvisioningJob.objects.select_for_update().get(pk=job_id)
    if not ProvisioningJob.objects.lost(now).filter(pk=job_id).exists():
        return f"skipped: {job.status}, the lease holds"
    service = Service.objects.select_for_update().get(pk=job.service_id)
    _fail_task_row(job, now)
    job.workers_lost += 1
    # At once: it was the worker that failed, not the provider, so no backoff.
    return _retry_or_give_up(
        job,
        service,
        error=f"the worker running this job stopped {job.workers_lost} time(s) before finishing it",
        retry_at=None,
    )


def _task_job_id(row: DBTaskResult) -> int | None:
    args, kwargs = row.args_kwargs.get("args", []), row.args_kwargs.get("kwargs", {})
    job_id = args[0] if args else kwargs.get("job_id")
    return job_id if isinstance(job_id, int) else None


def _fail_stale_task_rows(now: datetime) -> int:
    """Task rows a dead worker left running whose job is no longer theirs: it was requeued,
    finished, or never claimed because the worker died first."""
    stale = DBTaskResult.objects.filter(
        status=TaskResultStatus.RUNNING,
        task_path__in=[run_provisioning_job.module_path, LEGACY_TASK_PATH],
        started_at__lt=now - timedelta(seconds=lease_seconds()),
    )
    failed = 0
    for row in stale:
        job_id = _task_job_id(row)
        if job_id is None:
            continue  # not a job's task: nothing of ours to judge it by
        held = ProvisioningJob.objects.filter(
            pk=job_id,
            status=ProvisioningJob.Status.RUNNING,
            lease_expires_at__gte=now,
            task_id=str(row.id),
        ).exists()
        if not held:
            failed += _fail_task_rows(DBTaskResult.objects.filter(pk=row.pk), now, job_id=job_id)
    return failed


def _requeue_orphans(now: datetime) -> int:
    """Queued jobs whose task will never run (its worker died before claiming the job,
    or the row was pruned) get a new task."""
    queued = dict(
        ProvisioningJob.objects.filter(status=ProvisioningJob.Status.QUEUED)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .values_list("pk", "task_id")
    )
    live = {
        str(task_id)
        for task_id in DBTaskResult.objects.filter(
            id__in=[task_id for task_id in queued.values() if _is_uuid(task_id)],
            status__in=[TaskResultStatus.READY, TaskResultStatus.RUNNING],
        ).values_list("id", flat=True)
    }
    requeued = 0
    for job_id, task_id in queued.items():
        if task_id in live:
            continue
        with transaction.atomic():
            job = ProvisioningJob.objects.select_for_update().get(pk=job_id)
            if job.status == ProvisioningJob.Status.QUEUED and job.task_id == task_id:
                _queue_task(job)
                requeued += 1
    return requeued


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def provisioning_jobs_sweep(*, now: datetime | None = None) -> str:
    """Requeue the jobs (and other tasks) whose worker stopped; every worker runs this
    every few seconds.

    Safe to run from many workers at once: each job is taken under its row lock
    and only while its lease has run out.
    """
    now = now or timezone.now()
    outcomes = [
        provisioning_job_lost(job_id=job_id, now=now)
        for job_id in ProvisioningJob.objects.lost(now).values_list("pk", flat=True)
    ]
    stale_tasks = _fail_stale_task_rows(now)
    orphans = _requeue_orphans(now)
    abandoned = tasks_requeue_abandoned(
        now=now,
        older_than=timedelta(seconds=settings.TASKS_ABANDONED_AFTER_SECONDS),
        except_paths=[run_provisioning_job.module_path, LEGACY_TASK_PATH],
    )
    requeued = sum(outcome.startswith("retry") for outcome in outcomes)
    gave_up = sum(outcome.startswith("failed") for outcome in outcomes)
    return (
        f"{requeued} lost job(s) queued again, {gave_up} given up, "
        f"{stale_tasks} stale task(s) closed, {orphans} orphaned job(s) queued again, "
        f"{abandoned} abandoned task(s) queued again"
    )
