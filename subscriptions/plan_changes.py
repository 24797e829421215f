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

from django.core import signing
from django.db import transaction
from django.utils import timezone
from djmoney.money import Money

from catalog.availability import Offer, package_refusal
from catalog.errors import ErrorCode, Refusal, refuse
from catalog.models import NotificationEvent, Package, PackageScaling
from catalog.selectors import packages_for_order
from catalog.stock import stock_lock, stock_release, stock_take

from .events import Kind, service_event_record
from .invoicing import service_invoice_issue, service_period_invoice
from .jobs import provisioning_job_cancel_open, provisioning_job_enqueue
from .lifecycle import plan_change_drop
from .models import Customer, Invoice, LineKind, PlanChange, ProvisioningJob, Service
from .notifications import notify_service
from .quotas import quota_snapshot
from .quotes import check_per_user_limit
from .signals import plan_change_credit_due


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


@dataclass(frozen=True)
class Preview:
    """What a plan change does, figured as `service_change_package` bills it.

    An upgrade applies at once and charges the price difference for the rest of
    the period, or credits the unused part of the paid period when the higher
    tier costs less; a downgrade applies at the period end and charges nothing.
    """

    target: Package
    sold: Offer
    direction: str
    charge: Money
    credit: Money
    recurring_amount: Money
    package_amount: Money
    applies_at: datetime
    priced_at: datetime

    @property
    def is_upgrade(self) -> bool:
        return self.direction == PlanChange.Direction.UPGRADE

    @property
    def effective_at(self) -> datetime:
        return self.applies_at

    def figures(self) -> dict[str, str]:
        """What the customer confirmed, as plain strings a form can carry (signed) and the
        change service compares: the figures, and the moment the charge was prorated to."""
        return {
            "package": str(self.target.pk),
            "direction": self.direction,
            "currency": str(self.charge.currency),
            "charge": str(self.charge.amount),
            "credit": str(self.credit.amount),
            "recurring_amount": str(self.recurring_amount.amount),
            # An upgrade applies when confirmed; only a downgrade's date is promised.
            "applies_at": "" if self.is_upgrade else self.applies_at.isoformat(),
            "priced_at": self.priced_at.isoformat(),
        }


# A preview's figures travel in the confirm form, signed, for at most this long.
PREVIEW_MAX_AGE = 30 * 60
PREVIEW_SALT = "subscriptions.views.plan_change_preview"


def preview_token(preview: Preview) -> str:
    """The preview's figures for the confirm form to carry, signed."""
    return signing.dumps(preview.figures(), salt=PREVIEW_SALT)


def preview_token_read(token: str, package: Package | None) -> dict[str, str]:
    """The figures a confirm form carried for moving to `package`.

    Raises signing.SignatureExpired for a preview over PREVIEW_MAX_AGE old, and
    signing.BadSignature for one altered, missing, or of another package.
    """
    confirmed = signing.loads(token, salt=PREVIEW_SALT, max_age=PREVIEW_MAX_AGE)
    if not isinstance(confirmed, dict) or confirmed.get("package") != str(
        getattr(package, "pk", "")
    ):
        raise signing.BadSignature("The preview is of another change.")
    return confirmed


def service_change_preview(
    *, service: Service, customer: Customer, package: Package | None, now: datetime
) -> Preview:
    """The charge, the new recurring price and the date of moving `service` to `package`.

    Raises ValidationError (with a code) when the move is refused. It reads and
    writes nothing else: `service_change_package` calls it under the service's
    lock and bills exactly what it returns.
    """
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
    package_amount = sold.price or Money(0, service.currency)
    recurring_amount = service.recurring_amount - _service_package_amount(service) + package_amount
    upgrade = target.tier > service.package.tier
    # package_change_refusal above refused a service with no running period.
    assert service.current_period_start is not None and service.current_period_end is not None
    charge = credit = Money(0, service.currency)
    if upgrade:
        charge = prorated_charge(
            difference=recurring_amount - service.recurring_amount,
            start=service.current_period_start,
            end=service.current_period_end,
            now=now,
        )
        # A higher tier at a lower price: the unused part of the paid period comes back
        # as account credit. Only money paid comes back (a free period gives none).
        if recurring_amount < service.recurring_amount and service_period_invoice(service):
            credit = prorated_charge(
                difference=service.recurring_amount - recurring_amount,
                start=service.current_period_start,
                end=service.current_period_end,
                now=now,
            )
    return Preview(
        target=target,
        sold=sold,
        direction=PlanChange.Direction.UPGRADE if upgrade else PlanChange.Direction.DOWNGRADE,
        charge=charge,
        credit=credit,
        recurring_amount=recurring_amount,
        package_amount=package_amount,
        applies_at=now if upgrade else service.current_period_end,
        priced_at=now,
    )


@transaction.atomic
def service_change_package(
    *,
    service: Service,
    customer: Customer,
    package: Package | None,
    now: datetime | None = None,
    confirmed: dict[str, str] | None = None,
) -> PlanChange:
    """Move a service to one of its package's scaling targets, as `service_change_preview` says.

    `confirmed` is the preview's `figures()` the customer agreed to: the charge is
    prorated to the moment they were shown, and when any figure now differs the
    change is refused, so a customer is never billed an amount they did not see.
    Raises ValidationError (with a code) and writes nothing when the move is refused.
    """
    now = now or timezone.now()
    # Only the service row: the packages are locked one at a time, for their stock.
    service = (
        Service.objects.select_for_update(of=("self",)).select_related("package").get(pk=service.pk)
    )
    priced_at = now
    if confirmed is not None:
        priced_at = _confirmed_time(confirmed, service, now)
        # The period must still be running now, not only when the figures were shown.
        refusal = service.package_change_refusal(now)
        if refusal is not None:
            raise refusal.error()
    preview = service_change_preview(
        service=service, customer=customer, package=package, now=priced_at
    )
    if confirmed is not None and preview.figures() != confirmed:
        raise refuse(
            ErrorCode.PREVIEW_OUTDATED,
            "The price of this change has changed since you saw it; "
            "nothing was charged. Review the new figures and confirm again.",
        )
    target = preview.target
    took_stock = False
    if target.has_stock:
        # As in order_place: the target's row lock, its rules again, then the unit.
        stock_lock(target)
        refusal = package_refusal(target)
        if refusal is not None:
            raise refusal.error()
        took_stock = stock_take(target, 1) > 0

    upgrade = preview.is_upgrade
    assert service.current_period_end is not None  # the preview refused a service without
    change = PlanChange(
        service=service,
        direction=preview.direction,
        from_package_id=service.package_id,
        from_package_name=service.package_name,
        to_package=target,
        to_package_name=target.name,
        currency=service.currency,
        recurring_amount=preview.recurring_amount,
        package_amount=preview.package_amount,
        provisioning_options=target.provisioning_options,
        package_settings=target.package_settings,
        quotas=quota_snapshot(target, service.currency),
        overages_enabled=target.overages_enabled,
        took_stock=took_stock,
        charge=preview.charge,
        effective_at=now if upgrade else preview.applies_at,
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
        if preview.credit.amount > 0:
            # Payments writes the credit note and the account credit (see signals).
            plan_change_credit_due.send(
                sender=PlanChange,
                plan_change=change,
                invoice=service_period_invoice(service),
                amount=preview.credit,
            )
    else:
        service_event_record(
            service,
            Kind.PLAN_CHANGE_SCHEDULED,
            f"Moves to {target.name} on {change.effective_at:%Y-%m-%d} ({change.recurring_amount} a period)",
            data={"plan_change": change.pk},
        )
    return change


def _confirmed_time(confirmed: dict[str, str], service: Service, now: datetime) -> datetime:
    """When the confirmed figures were prorated: in this period, and not in the future."""
    try:
        priced_at = datetime.fromisoformat(confirmed.get("priced_at", ""))
    except ValueError:
        priced_at = None
    if (
        priced_at is None
        or priced_at.tzinfo is None
        or priced_at > now
        or service.current_period_start is None
        or priced_at < service.current_period_start
    ):
        raise refuse(
            ErrorCode.PREVIEW_OUTDATED,
            "This preview is out of date; nothing was charged. Review the change again.",
        )
    return priced_at


def plan_change_preview(service: Service, target: Package | None, now: datetime) -> Preview:
    """What `service_change_package` would charge and when it would apply, for staff.

    The customer's preview with the service's own customer: one computation, so
    the console shows what the change bills. Writes nothing.
    """
    service = Service.objects.select_related("package", "customer").get(pk=service.pk)
    return service_change_preview(
        service=service, customer=service.customer, package=target, now=now
    )


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
