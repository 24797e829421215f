"""A service's lifecycle: started by its paid order, ended, suspended, renewed by payment.

Every status change of a service that is not a provider's answer happens
here; the provider's answers are applied in `jobs`.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from catalog.errors import ErrorCode, refuse
from catalog.models import NotificationEvent
from catalog.stock import stock_release

from .events import Kind, service_event_record, service_events_bulk, status_changed
from .jobs import (
    provisioning_job_cancel_open,
    provisioning_job_enqueue,
    provisioning_job_enqueue_once,
    provisioning_jobs_enqueue_many,
)
from .models import Customer, Invoice, LineKind, Order, PlanChange, ProvisioningJob, Service
from .notifications import notify_service


def order_mark_paid(order: Order) -> None:
    """Paid (or nothing to pay): each service's provisioning is queued in this transaction."""
    order.status = Order.Status.PAID
    order.paid_at = timezone.now()
    order.save(update_fields=["status", "paid_at"])
    services = list(Service.objects.filter(order=order, status=Service.Status.PENDING).only("pk"))
    # However many units the order has: the jobs, their tasks and their events in one
    # INSERT each.
    jobs = provisioning_jobs_enqueue_many(services=services, action=ProvisioningJob.Action.CREATE)
    service_events_bulk(
        (job.service_id, Kind.JOB_QUEUED, f"{job.get_action_display()} queued (job #{job.pk})",
         {"job": job.pk})
        for job in jobs
    )  # fmt: skip


def service_end(service: Service, status: str) -> None:
    """Cancel or terminate now. A service that never started gives its stock back."""
    now = timezone.now()
    started = service.activated_at is not None or bool(service.remote_id)
    before = service.status
    service.status = status
    if status == Service.Status.CANCELLED:
        service.cancelled_at = now
    else:
        service.terminated_at = now
    if service.took_stock and service.activated_at is None:
        stock_release(package_id=service.package_id, units=1)
        service.took_stock = False
    service.save()
    status_changed(service, before)
    notify_service(
        NotificationEvent.SERVICE_CANCELLED
        if status == Service.Status.CANCELLED
        else NotificationEvent.SERVICE_TERMINATED,
        service,
    )
    for change in service.plan_changes.filter(status=PlanChange.Status.SCHEDULED):
        plan_change_drop(change, now)
    provisioning_job_cancel_open(service=service, action=ProvisioningJob.Action.CREATE)
    if (
        started
        and not service.jobs.filter(
            action=ProvisioningJob.Action.TERMINATE, status__in=ProvisioningJob.OPEN_STATUSES
        ).exists()
    ):
        provisioning_job_enqueue(service=service, action=ProvisioningJob.Action.TERMINATE)


@transaction.atomic
def service_request_cancellation(*, service: Service, customer: Customer, mode: str) -> Service:
    """A customer asks to end their service, once, where the package allows it."""
    service = Service.objects.select_for_update().select_related("package").get(pk=service.pk)
    if service.customer_id != customer.pk:
        raise refuse(ErrorCode.NOT_OWNER, "This is not your service.")
    refusal = service.cancellation_refusal()
    if refusal is not None:
        raise refusal.error()
    return service_cancel(service=service, mode=mode, actor=customer)


@transaction.atomic
def service_cancel(*, service: Service, mode: str, actor=None) -> Service:
    """End a live service now or at its period end: a customer's request (checked above), or
    staff's, who may cancel any package and may end now one already set to end later."""
    service = Service.objects.select_for_update().select_related("package").get(pk=service.pk)
    if not service.is_live:
        raise refuse(ErrorCode.SERVICE_ENDED, "This service has already ended.")
    if mode == Service.CancelMode.PERIOD_END and service.cancel_requested_at is not None:
        raise refuse(ErrorCode.CANCELLATION_REQUESTED, "This service is already set to cancel.")
    if mode not in Service.CancelMode.values:
        raise refuse(ErrorCode.CANCEL_MODE, "Choose when the service should end.")
    now = timezone.now()
    service.cancel_requested_at = now
    service.cancel_mode = mode
    if mode == Service.CancelMode.PERIOD_END:
        end = service.current_period_end or service.trial_ends_at
        if service.trial_ends_at and service.status == Service.Status.TRIAL:
            end = service.trial_ends_at
        if end is None or end <= now:
            raise refuse(
                ErrorCode.NO_PERIOD,
                "This service has no billing period running; cancel it immediately instead.",
            )
        service.cancel_at = end
        service.save()
        service_event_record(
            service,
            Kind.CANCELLATION_SCHEDULED,
            f"Cancels at the period end, {end:%Y-%m-%d %H:%M}",
            actor=actor,
        )
    else:
        service.cancel_at = now
        service_end(service, Service.Status.CANCELLED)
    return service


@transaction.atomic
def service_cancellation_undo(*, service: Service, customer: Customer) -> Service:
    """A customer keeps a service they asked to end at the period end, until it ends."""
    service = Service.objects.select_for_update().get(pk=service.pk)
    if service.customer_id != customer.pk:
        raise refuse(ErrorCode.NOT_OWNER, "This is not your service.")
    if (
        not service.is_live
        or service.cancel_mode != Service.CancelMode.PERIOD_END
        or service.cancel_at is None
        or service.cancel_at <= timezone.now()
    ):
        raise refuse(
            ErrorCode.NOT_CANCELLING, "This service is not set to end at the end of its period."
        )
    service.cancel_requested_at = None
    service.cancel_mode = ""
    service.cancel_at = None
    service.save(update_fields=["cancel_requested_at", "cancel_mode", "cancel_at"])
    return service


def service_cancel_for_closing(service: Service) -> Service:
    """End a service of an account being closed: at its period end while a paid period (or a
    trial) runs, now when there is none (not started, or unpaid in grace or suspension)."""
    service = Service.objects.select_for_update().get(pk=service.pk)
    if not service.is_live:
        return service
    if service.cancel_at is not None:
        return service  # already ending when its period does
    now = timezone.now()
    end = service.paid_until(now)
    service.cancel_requested_at = now
    if end is not None:
        service.cancel_mode = Service.CancelMode.PERIOD_END
        service.cancel_at = end
        service.save()
    else:
        # Not yet started, or unpaid (grace, suspended): there is no paid period left to run.
        service.cancel_mode = Service.CancelMode.IMMEDIATE
        service.cancel_at = now
        service_end(service, Service.Status.CANCELLED)
    return service


def services_apply_due_cancellations(*, now: datetime | None = None) -> int:
    """End the services whose cancellation at period end has come; run it periodically."""
    now = now or timezone.now()
    ended = 0
    due = Service.objects.live().filter(cancel_at__lte=now).values_list("pk", flat=True)
    for pk in due:
        with transaction.atomic():
            service = Service.objects.select_for_update().get(pk=pk)
            if service.is_live and service.cancel_at and service.cancel_at <= now:
                service_end(service, Service.Status.CANCELLED)
                ended += 1
    return ended


def _service_change(service: Service, action: str, allowed: tuple[str, ...]) -> ProvisioningJob:
    service = Service.objects.select_for_update().get(pk=service.pk)
    if service.status not in allowed:
        raise refuse(
            ErrorCode.BAD_STATUS,
            f"A {service.get_status_display().lower()} service cannot be {action}ed.",
        )
    if service.jobs.filter(action=action, status__in=ProvisioningJob.OPEN_STATUSES).exists():
        raise refuse(ErrorCode.OPEN_JOB, f"A {action} of this service is already under way.")
    return provisioning_job_enqueue(service=service, action=action)


@transaction.atomic
def service_suspend(*, service: Service) -> ProvisioningJob:
    S = Service.Status
    return _service_change(service, "suspend", (S.TRIAL, S.ACTIVE, S.GRACE))


@transaction.atomic
def service_unsuspend(*, service: Service) -> ProvisioningJob:
    return _service_change(service, "unsuspend", (Service.Status.SUSPENDED,))


@transaction.atomic
def service_terminate(*, service: Service) -> Service:
    """Staff end a service now; the provider removes it in a job."""
    service = Service.objects.select_for_update().get(pk=service.pk)
    if service.status == Service.Status.TERMINATED:
        raise refuse(ErrorCode.BAD_STATUS, "This service is already terminated.")
    service_end(service, Service.Status.TERMINATED)
    return service


def service_invoice_paid(invoice: Invoice) -> None:
    """Every service the invoice bills moves on, in the order of its lines."""
    if invoice.kind == Invoice.Kind.RENEWAL:
        # Price lines only: an overage line's period is the one that ended, already paid for.
        periods = invoice.lines.filter(
            kind=LineKind.PRICE,
            service__isnull=False,
            period_start__isnull=False,
            period_end__isnull=False,
        ).values_list("service_id", "period_start", "period_end")
        for service_id, start, end in periods:
            assert start is not None and end is not None  # filtered above
            _service_paid(service_id, period=(start, end))
    elif invoice.service_id is not None:
        _service_paid(invoice.service_id, period=None)


def _service_paid(service_id: int, *, period: tuple[datetime, datetime] | None) -> None:
    """A period paid moves the service on to it; its last unpaid invoice paid lifts grace or
    suspension."""
    service = Service.objects.select_for_update().get(pk=service_id)
    if not service.is_live:
        return
    S, Action = Service.Status, ProvisioningJob.Action
    before = service.status
    if period is not None:
        start, end = period
        service.current_period_start = start
        service.current_period_end = end
        service.next_due_at = end
        # The next period falls due when this one ends; the billing run bills it then.
        service.next_bill_at = end
        if service.status == S.TRIAL:
            service.status = S.ACTIVE
        provisioning_job_enqueue_once(
            service=service, action=Action.RENEW, payload={"period_end": end.isoformat()}
        )
    if not Invoice.objects.of_service(service.pk).filter(status=Invoice.Status.UNPAID).exists():
        service.grace_ends_at = None
        # Paid: it is no longer to be terminated, even before the provider unsuspends it.
        service.terminates_at = None
        if service.status == S.GRACE:
            service.status = S.ACTIVE
            provisioning_job_cancel_open(service=service, action=Action.SUSPEND)
        elif service.status == S.SUSPENDED:
            provisioning_job_enqueue_once(service=service, action=Action.UNSUSPEND)
    service.save()
    status_changed(service, before)


def plan_change_drop(change: PlanChange, now: datetime) -> None:
    if change.took_stock:
        stock_release(package_id=change.to_package_id, units=1)
    change.status = PlanChange.Status.CANCELLED
    change.cancelled_at = now
    change.took_stock = False
    change.save(update_fields=["status", "cancelled_at", "took_stock"])
