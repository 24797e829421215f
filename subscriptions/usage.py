"""Recording usage of a service's quotas, from a provider, staff or a CSV import.

Each record is written once per (service, idempotency key): the same report
sent again returns the record already written, and a key reused for other
usage is refused. With overages off (or no overage price in the service's
currency) a quota's limit is hard: the record that reaches it tells the
customer ("quota reached") and the provider (a `limit` job) once per period
and quota. Usage is never refused for being over the limit: the provider
measured it, so it happened; billing decides what it costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.errors import ErrorCode, refuse
from catalog.models import NotificationEvent

from .jobs import provisioning_job_enqueue
from .models import Customer, ProvisioningJob, QuotaAlert, Service, UsageRecord
from .notifications import notify_service
from .quotas import figure, service_quota, usage_total, usage_window

# A provider's clock may run a little ahead of ours; beyond this, a time is a mistake.
CLOCK_SKEW = timedelta(minutes=5)
MAX_QUANTITY = Decimal("1e14")


@dataclass(frozen=True)
class UsageOutcome:
    record: UsageRecord
    created: bool


def usage_record(
    *,
    service: Service,
    quota_code: str,
    quantity: Decimal,
    occurred_at: datetime,
    idempotency_key: str,
    source: str,
    recorded_by: Customer | None = None,
    now: datetime | None = None,
) -> UsageOutcome:
    """Record usage once per key; raises ValidationError (with a code) and writes nothing
    when the usage cannot be recorded."""
    now = now or timezone.now()
    quota = service_quota(service, quota_code)
    if quota is None:
        raise refuse(ErrorCode.UNKNOWN_QUOTA, f"This service has no quota “{quota_code}”.")
    if not quantity.is_finite() or quantity <= 0 or quantity >= MAX_QUANTITY:
        raise refuse(ErrorCode.USAGE_INVALID, "The quantity must be a number above zero.")
    if timezone.is_naive(occurred_at):
        raise refuse(ErrorCode.USAGE_INVALID, "The time must include its UTC offset.")
    if occurred_at > now + CLOCK_SKEW:
        raise refuse(ErrorCode.USAGE_INVALID, "The usage cannot happen in the future.")
    if occurred_at < service.created_at - CLOCK_SKEW:
        raise refuse(ErrorCode.USAGE_INVALID, "The usage happened before the service existed.")
    key = idempotency_key.strip()
    if not key or len(key) > 200:
        raise refuse(ErrorCode.USAGE_INVALID, "The idempotency key must be 1 to 200 characters.")

    with transaction.atomic():
        # One writer per service: the duplicate check, the total and the alert agree.
        service = Service.objects.select_for_update().select_related("package").get(pk=service.pk)
        existing = UsageRecord.objects.filter(service=service, idempotency_key=key).first()
        if existing is not None:
            same = (
                existing.quota_code == quota_code
                and existing.quantity == quantity
                and existing.occurred_at == occurred_at
            )
            if not same:
                raise refuse(
                    ErrorCode.USAGE_KEY_REUSED,
                    "This idempotency key was already used for other usage of this service.",
                )
            return UsageOutcome(existing, created=False)
        record = UsageRecord(
            service=service,
            quota_code=quota_code,
            quantity=quantity,
            occurred_at=occurred_at,
            idempotency_key=key,
            source=source,
            recorded_by=recorded_by,
        )
        record.full_clean(exclude=["service", "recorded_by"], validate_constraints=False)
        try:
            with transaction.atomic():
                record.save()
        except IntegrityError:  # a constraint the checks above should have caught
            raise refuse(ErrorCode.USAGE_INVALID, "The usage could not be recorded.") from None
        if quota.is_hard(service.overages_enabled):
            _alert_if_reached(service, quota_code, occurred_at, now)
    return UsageOutcome(record, created=True)


def _alert_if_reached(service: Service, code: str, occurred_at: datetime, now: datetime) -> None:
    """Tell the customer and the provider once a period that a hard quota is used up."""
    start, end = usage_window(service, occurred_at)
    current_start, _ = usage_window(service, now)
    if start != current_start:
        return  # late usage of a past period: that period's limit no longer matters
    quota = service_quota(service, code)
    assert quota is not None and quota.limit is not None  # a hard quota has a limit
    used = usage_total(service, code, start, end)
    if used < quota.limit:
        return
    period_start = start or service.created_at
    _, created = QuotaAlert.objects.get_or_create(
        service=service, quota_code=code, period_start=period_start
    )
    if not created:
        return
    notify_service(
        NotificationEvent.QUOTA_REACHED,
        service,
        quota_name=quota.name,
        quota_limit=f"{quota.limit:,} {quota.unit}",
        quota_used=f"{figure(used)} {quota.unit}",
    )
    if service.status not in (Service.Status.TRIAL, Service.Status.ACTIVE, Service.Status.GRACE):
        return  # nothing running on the provider to limit
    reached = {"code": code, "limit": quota.limit, "used": str(used)}
    # One open job per action and service: a limit job not yet sent carries this quota too.
    open_job = (
        service.jobs.filter(
            action=ProvisioningJob.Action.LIMIT,
            status__in=ProvisioningJob.NOT_STARTED_STATUSES,
        )
        .select_for_update()
        .first()
    )
    if open_job is not None:
        open_job.payload = {"quotas": [*open_job.payload.get("quotas", []), reached]}
        open_job.save(update_fields=["payload"])
    elif not service.jobs.filter(
        action=ProvisioningJob.Action.LIMIT, status=ProvisioningJob.Status.RUNNING
    ).exists():
        provisioning_job_enqueue(
            service=service, action=ProvisioningJob.Action.LIMIT, payload={"quotas": [reached]}
        )
