"""Background tasks (django-tasks, database backend); `manage.py db_worker` runs them."""

from __future__ import annotations

from django_tasks import task

from .billing import services_run_billing
from .jobs import provisioning_job_run
from .notifications import notifications_send


@task()
def run_provisioning_job(job_id: int) -> str:
    return provisioning_job_run(job_id=job_id)


@task()
def send_notifications(*, events: list[str], customer_id: int, context: dict[str, str]) -> int:
    return notifications_send(events=events, customer_id=customer_id, context=context)


@task()
def run_billing() -> str:
    """The billing run as a task, for a scheduler that enqueues tasks instead of cron."""
    return str(services_run_billing())
