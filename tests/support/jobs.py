"""Stand-ins for the db_worker: run what the tests committed, in this process."""

from __future__ import annotations

from django_tasks_db.models import DBTaskResult

from subscriptions.jobs import provisioning_job_complete, provisioning_job_run
from subscriptions.models import ProvisioningJob


def run_all_jobs() -> None:
    for job in ProvisioningJob.objects.filter(status=ProvisioningJob.Status.QUEUED):
        provisioning_job_run(job_id=job.pk)
        job.refresh_from_db()
        if job.status == ProvisioningJob.Status.WAITING:  # manual: staff do it
            provisioning_job_complete(job=job)


def notification_tasks():
    return DBTaskResult.objects.filter(task_path__endswith="send_notifications")


def send_queued_notifications() -> None:
    """What the db_worker does with the notification tasks that were committed."""
    for result in notification_tasks().ready():
        result.task.call(*result.args_kwargs["args"], **result.args_kwargs["kwargs"])
        result.delete()
