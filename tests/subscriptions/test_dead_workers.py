"""Workers killed mid-call: every job still completes once, one remote resource per service.

Real `manage.py db_worker` processes against PostgreSQL and a slow stand-in
provider; workers are SIGKILLed while both are inside a provider call, then
replaced, as an out-of-memory killer or a lost machine would.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter

import pytest
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from subscriptions.models import ProvisioningJob, Service
from tests.factories import paid_webhook_services
from tests.support.webhook_server import start_provider
from tests.support.workers import every_job_done, kill, start_worker, stop_cleanly, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SERVICES = 20
KILL_ROUNDS = 3
# A short lease so the test is quick: 2 s, stretched to the plugin's 2 s timeout + 5 s.
WORKER_ENV = {
    "PROVISIONING_LEASE_SECONDS": 2,
    "PROVISIONING_MAX_ATTEMPTS": 50,
    "PROVISIONING_RETRY_BASE_SECONDS": 0,
}


def test_jobs_of_killed_workers_complete_once_with_one_remote_resource_per_service(customer):
    provider = start_provider(delay=1.0)
    services = paid_webhook_services(customer, provider.url, count=SERVICES, timeout_seconds=2)
    workers: list[subprocess.Popen] = []
    try:
        workers = [start_worker(**WORKER_ENV), start_worker(**WORKER_ENV)]
        since = 0.0
        for _ in range(KILL_ROUNDS):
            # Both workers are inside a provider call: killing them loses two jobs mid-call.
            def both_mid_call(since=since) -> bool:
                return provider.in_flight_since(since) == 2

            wait_for(both_mid_call, timeout=30, what="both workers inside a call")
            for worker in workers:
                kill(worker)
            since = time.monotonic()
            workers = [start_worker(**WORKER_ENV), start_worker(**WORKER_ENV)]

        wait_for(every_job_done, timeout=45, what="every job to succeed and the queue to empty")
        stop_cleanly(workers)
    finally:
        for worker in workers:
            if worker.poll() is None:  # the test failed: leave no worker behind
                kill(worker)
        provider.server.shutdown()
        provider.server.server_close()

    jobs = list(ProvisioningJob.objects.select_related("service"))
    assert len(jobs) == SERVICES
    # Each kill lost one job mid-call; every job then succeeded once.
    assert sum(job.workers_lost for job in jobs) == 2 * KILL_ROUNDS
    calls = Counter(call.key for call in provider.calls)
    for job in jobs:
        assert job.status == ProvisioningJob.Status.SUCCEEDED
        assert job.attempts == job.workers_lost + 1
        # Each attempt, lost or not, called the provider once, always with the job's key.
        assert calls[str(job.idempotency_key)] == job.attempts
        assert job.service.remote_id == provider.resources[str(job.idempotency_key)][1]
    # One remote resource per service, none for anything else.
    built_for = Counter(service_id for service_id, _ in provider.resources.values())
    assert built_for == Counter(str(service.uuid) for service in services)
    assert set(Service.objects.values_list("status", flat=True)) == {Service.Status.ACTIVE}
    # The dead workers' task rows were closed, not left running.
    assert not DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).exists()
    assert DBTaskResult.objects.filter(
        status=TaskResultStatus.FAILED, exception_class_path="subscriptions.jobs.WorkerLost"
    ).count() == (2 * KILL_ROUNDS)
