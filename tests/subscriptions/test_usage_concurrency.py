"""Usage reported at once by many senders, on a real PostgreSQL server."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from subscriptions.models import ProvisioningJob, QuotaAlert, UsageRecord
from subscriptions.usage import usage_record
from tests.factories import customers, metered_service
from tests.support.concurrency import race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def report(service, key: str, quantity: str = "1", at=None):
    at = at or timezone.now()
    return lambda: usage_record(service=service, quota_code="minutes", quantity=Decimal(quantity),
                                occurred_at=at, idempotency_key=key, source="provider")  # fmt: skip


def test_the_same_report_sent_eight_times_at_once_is_recorded_once():
    assert connection.vendor == "postgresql"
    (customer,) = customers(1)
    service = metered_service(customer, limit=100)
    at = timezone.now()

    outcomes = race([report(service, "evt-1", at=at) for _ in range(8)])

    assert outcomes == ["ok"] * 8
    assert UsageRecord.objects.filter(service=service).count() == 1


def test_reports_crossing_a_hard_limit_at_once_announce_it_once():
    (customer,) = customers(1)
    service = metered_service(customer, limit=10)

    outcomes = race([report(service, f"evt-{n}", "3") for n in range(8)])

    assert outcomes == ["ok"] * 8
    assert QuotaAlert.objects.filter(service=service).count() == 1
    assert service.jobs.filter(action=ProvisioningJob.Action.LIMIT).count() == 1
