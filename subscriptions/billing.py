"""The billing run: renewals, trials ending, grace, suspension and reminders.

Everything that happens because time passed; cron runs services_run_billing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import task

from catalog.currency import format_money
from catalog.models import NotificationEvent, PriceType

from .invoicing import service_invoice_issue
from .jobs import provisioning_job_enqueue
from .lifecycle import services_apply_due_cancellations
from .models import Invoice, PlanChange, ProvisioningJob, Service
from .notifications import notify_service
from .periods import add_interval, anchored_period_end
from .plan_changes import plan_change_apply_due


def _next_billing_period(
    service: Service, *, first_billed: bool
) -> tuple[datetime, datetime, datetime] | None:
    """(start, end, due) of the period to bill next, or None when there is none.

    `first_billed`: the first paid period after a trial has its invoice.
    """
    if not service.is_recurring or service.current_period_end is None:
        return None
    if service.trial_ends_at is not None and not first_billed:
        # Outside: the first paid period follows the trial; inside: it began with
        # it. Either way its first invoice falls due when the trial ends, whatever
        # the status is then (a service suspended across its trial end included).
        if service.current_period_start is None:
            return None
        return service.current_period_start, service.current_period_end, service.trial_ends_at
    assert service.time_interval  # a recurring service has one (PackagePrice.clean)
    start = service.current_period_end
    anchor = service.billing_anchor or start
    return (
        start,
        anchored_period_end(anchor, start, service.time_interval, service.billing_period),
        start,
    )


def _service_renewal_issue(service: Service, now: datetime) -> Invoice | None:
    """Bill the service's next period when it has come; call it holding the service's lock."""
    S = Service.Status
    if service.status not in (S.TRIAL, S.ACTIVE, S.GRACE, S.SUSPENDED) or service.cancel_at:
        return None
    renewals = service.invoices.filter(kind=Invoice.Kind.RENEWAL)
    period = _next_billing_period(service, first_billed=renewals.exists())
    if period is None or period[2] > now:
        return None
    start, end, due = period
    # The period advances only when its invoice is paid, so an unpaid one means
    # this period is billed already.
    if renewals.filter(Q(period_start=start) | Q(status=Invoice.Status.UNPAID)).exists():
        return None
    return service_invoice_issue(
        service=service,
        kind=Invoice.Kind.RENEWAL,
        description=f"{service.package_name} – {service.price_name}, "
        f"{start:%Y-%m-%d} to {end:%Y-%m-%d}",
        amount=service.recurring_amount,
        due_at=due,
        period_start=start,
        period_end=end,
    )


def _service_overdue(service: Service, now: datetime) -> tuple[bool, bool]:
    """Unpaid past the due date: grace first, then suspension.

    Returns (entered grace, suspension queued).
    """
    S = Service.Status
    if service.status not in (S.TRIAL, S.ACTIVE, S.GRACE):
        return False, False
    overdue = (
        service.invoices.filter(status=Invoice.Status.UNPAID, due_at__lte=now)
        .order_by("due_at")
        .first()
    )
    if overdue is None:
        return False, False
    entered_grace = suspended = False
    if service.status != S.GRACE:
        service.status = S.GRACE
        # The grace period snapshotted at order time: catalog edits change no service.
        service.grace_ends_at = add_interval(
            overdue.due_at, service.grace_period, service.grace_interval or "day"
        )
        service.save(update_fields=["status", "grace_ends_at"])
        entered_grace = True
        notify_service(NotificationEvent.PAYMENT_OVERDUE, service, invoice=overdue)
    suspending = service.jobs.filter(
        action=ProvisioningJob.Action.SUSPEND, status__in=ProvisioningJob.OPEN_STATUSES
    )
    if service.grace_ends_at and service.grace_ends_at <= now and not suspending.exists():
        # The provider suspends it; the job's success marks the service suspended.
        provisioning_job_enqueue(service=service, action=ProvisioningJob.Action.SUSPEND)
        suspended = True
    return entered_grace, suspended


def _reminder_window(now: datetime) -> tuple[datetime, datetime]:
    """(after, until]: a trial or period ending in it is reminded of now."""
    return now, now + timedelta(days=settings.BILLING_REMINDER_DAYS)


def _service_trial_reminder(service: Service) -> bool:
    """Tell the customer their trial ends soon; call it on a row locked as still due.

    The trial end is recorded even when the package's preferences leave the
    email out; True when it was queued.
    """
    service.trial_reminder_sent_for = service.trial_ends_at
    service.save(update_fields=["trial_reminder_sent_for"])
    return notify_service(NotificationEvent.TRIAL_ENDING, service)


def _service_renewal_reminder(service: Service) -> bool:
    """Tell the customer their service renews soon; call it on a row locked as still due.

    A downgrade scheduled for the period end is what the renewal bills, so the
    email quotes it. True when the email was queued (the package's
    preferences may leave it out).
    """
    end = service.current_period_end
    service.renewal_reminder_sent_for = end
    service.save(update_fields=["renewal_reminder_sent_for"])
    extra: dict[str, str] = {}
    change = service.plan_changes.filter(
        status=PlanChange.Status.SCHEDULED, effective_at__lte=end
    ).first()
    if change is not None:
        extra = {
            "recurring_amount": format_money(change.recurring_amount),
            "new_package": change.to_package_name,
        }
    return notify_service(NotificationEvent.RENEWAL_DUE, service, invoice=None, **extra)


def _services_send_reminders(run: BillingRun, now: datetime) -> None:
    """Trial-ending and renewal-due reminders, once per trial end and period end.

    Each service is locked and read again through the same condition that
    selected it, so a run racing another sends each reminder once.
    """
    after, until = _reminder_window(now)
    if until <= after:
        return
    due = Service.objects.trial_reminder_due(after=after, until=until)
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            service = due.select_for_update().filter(pk=pk).first()
            if service is not None:
                run.trial_reminders += _service_trial_reminder(service)
    due = Service.objects.renewal_reminder_due(after=after, until=until)
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            service = due.select_for_update().filter(pk=pk).first()
            if service is not None:
                run.renewal_reminders += _service_renewal_reminder(service)


@dataclass
class BillingRun:
    cancelled: int = 0
    plan_changes: int = 0
    invoices: int = 0
    grace: int = 0
    suspended: int = 0
    trial_reminders: int = 0
    renewal_reminders: int = 0

    def __str__(self) -> str:
        return (
            f"{self.cancelled} cancelled, {self.plan_changes} plan change(s) applied, "
            f"{self.invoices} invoice(s) issued, {self.grace} entered grace, "
            f"{self.suspended} suspension(s) queued, "
            f"{self.trial_reminders} trial-ending reminder(s) and "
            f"{self.renewal_reminders} renewal reminder(s) sent."
        )


def services_run_billing(*, now: datetime | None = None) -> BillingRun:
    """Everything that happens because time passed; cron runs it, it is safe to run twice.

    Each service is handled in its own transaction holding its row lock, so a
    run never waits on, or undoes, another run or a payment.
    """
    now = now or timezone.now()
    run = BillingRun()
    # Cancellations first: a service ending at its period end is not billed again.
    run.cancelled = services_apply_due_cancellations(now=now)
    # Downgrades next, so the renewal bills the new package.
    due_changes = PlanChange.objects.filter(
        status=PlanChange.Status.SCHEDULED, effective_at__lte=now
    ).values_list("pk", flat=True)
    for pk in due_changes:
        with transaction.atomic():
            run.plan_changes += plan_change_apply_due(pk, now)

    S = Service.Status
    billable = Service.objects.filter(
        price_type=PriceType.RECURRING,
        cancel_at__isnull=True,
        status__in=[S.TRIAL, S.ACTIVE, S.GRACE, S.SUSPENDED],
    ).filter(Q(trial_ends_at__lte=now) | Q(current_period_end__lte=now))
    for pk in billable.values_list("pk", flat=True):
        with transaction.atomic():
            service = Service.objects.select_for_update().get(pk=pk)
            if _service_renewal_issue(service, now) is not None:
                run.invoices += 1

    overdue = Service.objects.filter(
        status__in=[S.TRIAL, S.ACTIVE, S.GRACE],
        invoices__status=Invoice.Status.UNPAID,
        invoices__due_at__lte=now,
    ).distinct()
    for pk in overdue.values_list("pk", flat=True):
        with transaction.atomic():
            service = Service.objects.select_for_update().get(pk=pk)
            entered_grace, suspended = _service_overdue(service, now)
            run.grace += entered_grace
            run.suspended += suspended

    _services_send_reminders(run, now)
    return run


@task()
def run_billing() -> str:
    """The billing run as a task, for a scheduler that enqueues tasks instead of cron."""
    return str(services_run_billing())
