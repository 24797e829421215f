"""The Webhook plugin against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import time

import pytest

from payments.services import payment_record
from provisioning.plugins.webhook import SIGNATURE_HEADER, verify
from subscriptions.jobs import provisioning_job_run
from subscriptions.models import ProvisioningJob, Service
from tests.factories import WebhookInstanceFactory
from tests.subscriptions.helpers import shop_package
from tests.subscriptions.test_order_place import place

pytestmark = pytest.mark.django_db
SECRET = "webhook-secret"


def webhook_service(customer, url, timeout=2) -> Service:
    instance = WebhookInstanceFactory(url=url, signing_secret=SECRET, timeout_seconds=timeout)
    package, monthly, options = shop_package(
        provider_instance=instance,
        provisioning_options={"plan_code": "pro", "region": "eu", "send_settings": True},
        package_settings={"rooms": "5"},
    )
    order = place(
        customer, package, monthly, [options["eu"]], checkout_fields={"label": "team-room"}
    )
    invoice = order.invoices.get()
    payment_record(method="bank_transfer", invoice=invoice, amount=invoice.total)
    return order.services.get()


def test_it_posts_a_signed_event_and_stores_the_remote_id(customer, webhook_backend):
    webhook_backend.answer((201, {"remote_id": "srv-42"}, 0))
    service = webhook_service(customer, webhook_backend.url)
    job = service.jobs.get()

    assert provisioning_job_run(job_id=job.pk) == "done"

    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE
    assert service.remote_id == "srv-42"
    (request,) = webhook_backend.requests
    assert verify(SECRET, request.body, request.headers[SIGNATURE_HEADER])
    assert not verify("wrong", request.body, request.headers[SIGNATURE_HEADER])
    assert request.headers["Idempotency-Key"] == str(job.idempotency_key)
    event = request.json
    assert event["event"] == "service.create"
    assert event["data"]["service_id"] == str(service.uuid)
    assert event["data"]["variants"] == {"region": "eu"}
    assert event["data"]["checkout_fields"] == {"label": "team-room"}
    assert event["data"]["package_options"]["plan_code"] == "pro"
    assert event["data"]["package_settings"] == {"rooms": "5"}


def test_a_replayed_event_is_rejected_after_the_window(customer, webhook_backend):
    service = webhook_service(customer, webhook_backend.url)
    provisioning_job_run(job_id=service.jobs.get().pk)
    (request,) = webhook_backend.requests
    header = request.headers[SIGNATURE_HEADER]

    assert not verify(SECRET, request.body, header, now=time.time() + 301)
    assert not verify(SECRET, request.body + b" ", header)


def test_a_slow_backend_times_out_and_the_job_is_retried_later(customer, webhook_backend):
    webhook_backend.answer((200, {"remote_id": "late"}, 3.0))
    service = webhook_service(customer, webhook_backend.url, timeout=1)
    job = service.jobs.get()

    started = time.monotonic()
    outcome = provisioning_job_run(job_id=job.pk)
    elapsed = time.monotonic() - started

    assert elapsed < 2.5, "the instance's 1 s timeout was not honoured"
    assert outcome.startswith("retry 2")
    job.refresh_from_db()
    assert job.status == ProvisioningJob.Status.QUEUED
    assert "did not answer within 1 s" in job.last_error
    assert job.next_attempt_at is not None


def test_an_error_status_is_retried_with_the_same_idempotency_key(
    customer, webhook_backend, settings
):
    settings.PROVISIONING_RETRY_BASE_SECONDS = 0
    webhook_backend.answer((500, {}, 0), (200, {"remote_id": "srv-7"}, 0))
    service = webhook_service(customer, webhook_backend.url)
    job = service.jobs.get()

    assert provisioning_job_run(job_id=job.pk).startswith("retry")
    assert provisioning_job_run(job_id=job.pk) == "done"

    first, second = webhook_backend.requests
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    service.refresh_from_db()
    assert (service.status, service.remote_id) == (Service.Status.ACTIVE, "srv-7")


def test_running_a_finished_job_again_does_not_call_the_backend_again(customer, webhook_backend):
    service = webhook_service(customer, webhook_backend.url)
    job = service.jobs.get()

    provisioning_job_run(job_id=job.pk)
    assert provisioning_job_run(job_id=job.pk).startswith("skipped")

    assert len(webhook_backend.requests) == 1
