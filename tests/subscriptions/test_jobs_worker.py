"""Real `manage.py db_worker` processes run the queued jobs against the test database.

Marked postgres: a worker is another process, so it needs a database server
(the SQLite test database lives in this process's memory).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from subscriptions.models import ProvisioningJob, Service
from tests.factories import paid_webhook_services
from tests.support.workers import start_worker as start_batch_worker
from tests.support.workers import wait

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def start_worker(**env) -> subprocess.Popen:
    return start_batch_worker("--batch", **env)


def test_a_worker_process_provisions_a_paid_service(customer, webhook_backend):
    webhook_backend.answer((200, {"remote_id": "from-worker"}, 0))
    (service,) = paid_webhook_services(customer, webhook_backend.url)

    wait(start_worker())

    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE
    assert service.remote_id == "from-worker"
    assert len(webhook_backend.requests) == 1


def test_two_workers_run_each_job_exactly_once(customer, webhook_backend):
    services = paid_webhook_services(customer, webhook_backend.url, count=12)

    wait(start_worker(), start_worker())

    keys = [request.headers["Idempotency-Key"] for request in webhook_backend.requests]
    assert len(keys) == 12 and len(set(keys)) == 12
    assert {s.status for s in Service.objects.filter(pk__in=[s.pk for s in services])} == {
        Service.Status.ACTIVE
    }


def test_a_worker_retries_then_marks_the_service_as_needing_attention(customer, webhook_backend):
    webhook_backend.answer((503, {}, 0))
    (service,) = paid_webhook_services(customer, webhook_backend.url)

    wait(start_worker(PROVISIONING_MAX_ATTEMPTS=3, PROVISIONING_RETRY_BASE_SECONDS=0))

    service.refresh_from_db()
    job = service.jobs.get()
    assert len(webhook_backend.requests) == 3
    assert job.status == ProvisioningJob.Status.FAILED and job.attempts == 3
    assert service.needs_attention and "HTTP 503" in service.provisioning_error


def test_a_worker_recovers_after_a_failed_attempt(customer, webhook_backend):
    webhook_backend.answer((500, {}, 0), (200, {"remote_id": "second-time"}, 0))
    (service,) = paid_webhook_services(customer, webhook_backend.url)

    wait(start_worker(PROVISIONING_RETRY_BASE_SECONDS=0))

    service.refresh_from_db()
    assert (service.status, service.remote_id) == (Service.Status.ACTIVE, "second-time")
