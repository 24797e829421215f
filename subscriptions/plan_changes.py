"""Plan changes: a service moves to one of its package's scaling targets.

An upgrade applies now and is prorated; a downgrade is scheduled for the
period end, when the billing run applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from django.db import transaction
from django.utils import timezone
from djmoney.money import Money

from catalog.availability import Offer, package_refusal
from catalog.errors import ErrorCode, Refusal, refuse
from catalog.models import NotificationEvent, Package, PackageScaling
from catalog.selectors import packages_for_order
from catalog.stock import stock_lock, stock_release, stock_take

from .events import Kind, service_event_record
from .invoicing import service_invoice_issue
from .jobs import provisioning_job_cancel_open, provisioning_job_enqueue
from .lifecycle import plan_change_drop
from .models import Customer, Invoice, LineKind, PlanChange, ProvisioningJob, Service
from .notifications import notify_service
from .quotas import quota_snapshot
from .quotes import check_per_user_limit


def prorated_charge(*, difference: Money, start: datetime, end: datetime, now: datetime) -> Money:
    """`difference` × the part of [start, end) still to come, rounded half up to the cent.

    Computed as an exact fraction of microseconds, so no rounding happens before
    the one to cents.
    """
    microsecond = timedelta(microseconds=1)
    total = (end - start) // microsecond
    left = min(max((end - now) // microsecond, 0), total)
    if total <= 0 or difference.amount <= 0:
        return Money(0, difference.currency)
    cents = Fraction(difference.amount) * left * 100 / total
    rounded = math.floor(cents + Fraction(1, 2))
    return Money(Decimal(rounded).scaleb(-2), difference.currency)


def _service_package_amount(service: Service) -> Money:
    if service.package_amount is not None:
        return service.package_amount
    # Services sold before the field existed: the order's own pricing-option line.
    line = service.order.lines.filter(kind=LineKind.PRICE, recurring=True).first()
    return line.unit_amount if line else Money(0, service.currency)


def _scaling_target(
    service: Service, package: Package | None, customer: Customer
) -> tuple[Package, Offer]:
    """The target and its same-name offer, or a refusal: the rule the service page applies too."""
    if package is None or not package.pk:
        raise refuse(ErrorCode.TARGET_REQUIRED, "Choose the package to move to.")
    if not PackageScaling.objects.filter(
        from_package_id=service.package_id, to_package_id=package.pk
    ).exists():
        raise refuse(ErrorCode.NOT_A_TARGET, "Your service cannot be moved to this package.")
    target = packages_for_order().get(pk=package.pk)
    sold = service.scaling_offer(target)
    if isinstance(sold, Refusal):
        raise sold.error()
    check_per_user_limit(target, customer, 1)
    return target, sold


@transaction.atomic
def service_change_package(
    *, service: Service, customer: Customer, package: Package | None, now: datetime | None = None
) -> PlanChange:
    """Move a service to one of its package's scaling targets.

    A higher tier applies now and charges the price difference for the rest of
    the period; a lower or equal tier applies when the period ends. Raises
    ValidationError (with a code) and writes nothing when the move is refused.
    """
    now = now or timezone.now()
    # Only the service row: the packages are locked one at a time, for their stock.
    service = (
        Service.objects.select_for_update(of=("self",)).select_related("package").get(pk=service.pk)
    )
    if service.customer_id != customer.pk:
        raise refuse(ErrorCode.NOT_OWNER, "This is not your service.")
    refusal = service.package_change_refusal(now)
    if refusal is not None:
        raise refusal.error()
    if service.plan_changes.filter(status=PlanChange.Status.SCHEDULED).exists():
        raise refuse(ErrorCode.CHANGE_SCHEDULED, "A change of package is already scheduled.")
    if service.jobs.filter(
        action=ProvisioningJob.Action.CHANGE_PACKAGE, status__in=ProvisioningJob.OPEN_STATUSES
    ).exists():
        raise refuse(ErrorCode.OPEN_JOB, "A change of package is still under way.")

    target, sold = _scaling_target(service, package, customer)
    took_stock = False
    if target.has_stock:
        # As in order_place: the target's row lock, its rules again, then the unit.
        stock_lock(target)
        refusal = package_refusal(target)
        if refusal is not None:
            raise refusal.error()
        took_stock = stock_take(target, 1) > 0

    terms = _plan_change_terms(service, target, sold, now)
    package_amount, recurring_amount = terms.package_amount, terms.recurring_amount
    upgrade = terms.direction == PlanChange.Direction.UPGRADE
    # package_change_refusal above refused a service with no running period.
    assert service.current_period_start is not None and service.current_period_end is not None
    change = PlanChange(
        service=service,
        direction=PlanChange.Direction.UPGRADE if upgrade else PlanChange.Direction.DOWNGRADE,
        from_package_id=service.package_id,
        from_package_name=service.package_name,
        to_package=target,
        to_package_name=target.name,
        currency=service.currency,
        recurring_amount=recurring_amount,
        package_amount=package_amount,
        provisioning_options=target.provisioning_options,
        package_settings=target.package_settings,
        quotas=quota_snapshot(target, service.currency),
        overages_enabled=target.overages_enabled,
        took_stock=took_stock,
        charge=terms.charge,
        effective_at=terms.effective_at,
    )
    change.full_clean(exclude=["service", "from_package", "to_package", "invoice"])
    change.save()
    if upgrade:
        if change.charge.amount > 0:
            change.invoice = service_invoice_issue(
                service=service,
                kind=Invoice.Kind.PLAN_CHANGE,
                description=f"Upgrade to {target.name} until "
                f"{service.current_period_end:%Y-%m-%d} (prorated)",
                amount=change.charge,
                due_at=now,
            )
            change.save(update_fields=["invoice"])
        _plan_change_apply(change, service, now)
    else:
        service_event_record(
            service,
            Kind.PLAN_CHANGE_SCHEDULED,
            f"Moves to {target.name} on {change.effective_at:%Y-%m-%d} ({recurring_amount} a period)",
            data={"plan_change": change.pk},
        )
    return change


@dataclass(frozen=True)
class PlanChangePreview:
    """What moving a service to `target` would do, as `service_change_package` would do it."""

    target: Package
    direction: str
    package_amount: Money
    recurring_amount: Money
    # Charged now for the rest of the period (an upgrade); zero for a downgrade.
    charge: Money
    effective_at: datetime


def _plan_change_terms(
    service: Service, target: Package, sold: Offer, now: datetime
) -> PlanChangePreview:
    """The one computation of a change's price, charge and date: previews and the change share it."""
    assert service.current_period_start is not None and service.current_period_end is not None
    package_amount = sold.price or Money(0, service.currency)
    recurring_amount = service.recurring_amount - _service_package_amount(service) + package_amount
    upgrade = target.tier > service.package.tier
    charge = Money(0, service.currency)
    if upgrade:
        charge = prorated_charge(
            difference=recurring_amount - service.recurring_amount,
            start=service.current_period_start,
            end=service.current_period_end,
            now=now,
        )
    return PlanChangePreview(
        target=target,
        direction=PlanChange.Direction.UPGRADE if upgrade else PlanChange.Direction.DOWNGRADE,
        package_amount=package_amount,
        recurring_amount=recurring_amount,
        charge=charge,
        effective_at=now if upgrade else service.current_period_end,
    )


def plan_change_preview(
    service: Service, target: Package | None, now: datetime
) -> PlanChangePreview:
    """What `service_change_package` would charge and when it would apply; refused as it would be.

    Writes nothing: staff see it on the service console before they confirm.
    """
    service = Service.objects.select_related("package", "customer").get(pk=service.pk)
    refusal = service.package_change_refusal(now)
    if refusal is not None:
        raise refusal.error()
    found, sold = _scaling_target(service, target, service.customer)
    return _plan_change_terms(service, found, sold, now)


def _plan_change_apply(change: PlanChange, service: Service, now: datetime) -> None:
    """The service becomes the target package; call it holding the service's lock."""
    if service.took_stock:
        stock_release(package_id=service.package_id, units=1)
    service.took_stock = change.took_stock
    service.package_id = change.to_package_id
    service.package_name = change.to_package_name
    service.recurring_amount = change.recurring_amount
    service.package_amount = change.package_amount
    service.provisioning_options = change.provisioning_options
    service.package_settings = change.package_settings
    service.quotas = change.quotas
    service.overages_enabled = change.overages_enabled
    service.save()
    change.status = PlanChange.Status.APPLIED
    change.applied_at = now
    change.save(update_fields=["status", "applied_at"])
    service_event_record(
        service,
        Kind.PLAN_CHANGED,
        f"{change.get_direction_display()}: {change.from_package_name} → {change.to_package_name}, now {change.recurring_amount} a period"
        + (f", charged {change.charge}" if change.charge.amount else ""),
        data={"plan_change": change.pk},
    )
    notify_service(
        NotificationEvent.PACKAGE_CHANGED, service, from_package=change.from_package_name
    )
    # A change still waiting to run is superseded: the new job carries the latest package.
    provisioning_job_cancel_open(service=service, action=ProvisioningJob.Action.CHANGE_PACKAGE)
    provisioning_job_enqueue(
        service=service,
        action=ProvisioningJob.Action.CHANGE_PACKAGE,
        payload={
            "plan_change": change.pk,
            "from_package": change.from_package_name,
            "to_package": change.to_package_name,
        },
    )


def plan_change_apply_due(pk: int, now: datetime) -> int:
    """Apply a scheduled downgrade whose time has come; 1 when applied."""
    change = PlanChange.objects.select_for_update().get(pk=pk)
    service = Service.objects.select_for_update().get(pk=change.service_id)
    if change.status != PlanChange.Status.SCHEDULED or change.effective_at > now:
        return 0
    if not service.is_live:
        plan_change_drop(change, now)
        return 0
    if service.jobs.filter(
        action=ProvisioningJob.Action.CHANGE_PACKAGE, status=ProvisioningJob.Status.RUNNING
    ).exists():
        return 0  # the next run applies it, once the provider has finished the last change
    _plan_change_apply(change, service, now)
    return 1


@transaction.atomic
def plan_change_cancel(*, change: PlanChange, customer: Customer) -> PlanChange:
    """A customer drops a scheduled downgrade; its reserved unit goes back to stock."""
    change = PlanChange.objects.select_for_update().select_related("service").get(pk=change.pk)
    if change.service.customer_id != customer.pk:
        raise refuse(ErrorCode.NOT_OWNER, "This is not your service.")
    if change.status != PlanChange.Status.SCHEDULED:
        raise refuse(ErrorCode.NOT_SCHEDULED, "Only a scheduled change can be dropped.")
    plan_change_drop(change, timezone.now())
    return change
