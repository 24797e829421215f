"""Background tasks (django-tasks, database backend); `manage.py db_worker` runs them.

`run_provisioning_job` lives with the jobs it runs (jobs.py queues it) and is
named here too, so the tasks are listed in one place.
"""

from __future__ import annotations

from django_tasks import task

from .billing import services_run_billing
from .jobs import run_provisioning_job
from .notifications import notifications_send

__all__ = ["run_billing", "run_provisioning_job", "send_notifications"]


@task()
def send_notifications(*, events: list[str], customer_id: int, context: dict[str, str]) -> int:
    return notifications_send(events=events, customer_id=customer_id, context=context)


@task()
def run_billing() -> str:
    """The billing run as a task, for a scheduler that enqueues tasks instead of cron."""
    return str(services_run_billing())
