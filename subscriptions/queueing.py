"""Many tasks queued at once: what a billing run needs, which `task.enqueue` does one row at a time.

The database backend stores each queued task as a `DBTaskResult` row; a run
that queues thousands writes them in one INSERT (a COPY on PostgreSQL), in the transaction of the
change, so they commit with it exactly as `enqueue`'s rows do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django_tasks import TaskResultStatus
from django_tasks.base import Task
from django_tasks_db.models import DBTaskResult, get_date_max

from .bulk import rows_insert


def tasks_enqueue_many(
    task: Task, calls: list[tuple[list, dict]], ids: list[str] | None = None
) -> list[str]:
    """Queue `task` once per (args, kwargs) in one INSERT; the ids of the queued task rows.

    The arguments must be JSON already (str, int, list, dict), as notices and
    job ids are: `enqueue` normalizes them twice, which for a batch of
    thousands of notices costs more than the INSERT. `ids` gives the rows their
    ids when the caller stores them before the rows exist.
    """
    task.get_backend().validate_task(task)
    ids = ids or [str(uuid.uuid4()) for _ in calls]
    # The backend's pre_save sets run_after for a task with none; an INSERT of rows sends none.
    run_after = task.run_after or get_date_max()
    rows_insert(
        DBTaskResult,
        ("id", "args_kwargs", "priority", "task_path", "queue_name", "run_after", "backend_name"),
        (
            (task_id, {"args": list(args), "kwargs": kwargs}, task.priority, task.module_path,
             task.queue_name, run_after, task.backend)
            for task_id, (args, kwargs) in zip(ids, calls, strict=True)
        ),
    )  # fmt: skip
    return ids


def tasks_requeue_abandoned(
    *, now: datetime, older_than: timedelta, except_paths: Iterable[str]
) -> int:
    """Queue again the task rows a dead worker left "running"; how many.

    django-tasks-db records no heartbeat, so a worker SIGKILLed mid-task (or
    stopped by SIGTERM between claiming a task and starting it, which its
    worker does not guard) leaves the row running for ever and the task never
    runs. Rows started longer ago than `older_than` are taken to be lost.
    `except_paths` names the tasks with a lease of their own (provisioning jobs),
    which their own sweep judges exactly.
    """
    return (
        DBTaskResult.objects.filter(
            status=TaskResultStatus.RUNNING, started_at__lt=now - older_than
        )
        .exclude(task_path__in=list(except_paths))
        .update(status=TaskResultStatus.READY, started_at=None)
    )
