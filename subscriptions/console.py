"""The service console: the actions staff take from a service's admin page.

Each action calls the service function customers and the billing run use,
after a confirmation page that says what will happen (GET shows it, POST does
it). The outcome is shown to staff and written to the service's timeline with
the staff user as its actor, in the action's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import QueryDict
from django.utils import timezone

from catalog.errors import ErrorCode, refuse
from catalog.models import Package

from . import billing, jobs, lifecycle, plan_changes
from .events import Kind, service_event_record
from .models import PlanChange, ProvisioningJob, Service
from .selectors import service_change_targets

S = Service.Status


@dataclass
class Confirmation:
    """What the confirmation page shows: what will happen, and the choices staff must make."""

    lines: list[str]
    # (value, label) choices of a radio named "choice", when the action takes one.
    choices: list[tuple[str, str]] = field(default_factory=list)
    choice_label: str = ""
    chosen: str = ""
    # A text input named "remote_id", for a manual job staff did by hand.
    remote_id: bool = False
    # Set when the action cannot be done now: the page says why and offers no button.
    refusal: str = ""
    # What the button confirms, signed (a package change's figures): posted as "preview".
    token: str = ""


@dataclass(frozen=True)
class ConsoleAction:
    slug: str
    label: str
    # Offered on the service page when this holds (the action still checks its own rules).
    offered: Callable[[Service], bool]
    confirm: Callable[[Service, QueryDict], Confirmation]
    # Does it; returns the outcome said to staff and written to the timeline.
    perform: Callable[[Service, QueryDict, object], str]
    dangerous: bool = False


def _failed_job(service: Service) -> ProvisioningJob | None:
    """The job a retry would send again: failed, or running with its worker gone."""
    lost = ProvisioningJob.objects.lost(timezone.now())
    return (
        service.jobs.filter(Q(status=ProvisioningJob.Status.FAILED) | Q(pk__in=lost))
        .order_by("-created_at", "-pk")
        .first()
    )


def _waiting_job(service: Service) -> ProvisioningJob | None:
    return service.jobs.filter(status=ProvisioningJob.Status.WAITING).order_by("created_at").first()


def _simple(lines: list[str]) -> Callable[[Service, QueryDict], Confirmation]:
    return lambda service, data: Confirmation([line.format(service=service) for line in lines])


# --- renew now


def _renewable(service: Service) -> bool:
    """As `billing.service_bill_now` checks: a period not yet invoiced, of a service not ending."""
    return (
        service.next_bill_at is not None
        and service.status in billing.BILLED_STATUSES
        and service.is_recurring
        and service.cancel_at is None
    )


def _renew_confirm(service: Service, data: QueryDict) -> Confirmation:
    if not _renewable(service):
        return Confirmation(
            [],
            refusal="This service has no renewal to bill now: its next invoice is already "
            "issued, it is not recurring, or it is ending.",
        )
    (line,) = billing.service_period_lines([service])
    return Confirmation(
        [
            f"Issue the invoice of the next period now: {line.description}, {line.amount}.",
            f"It falls due on {line.due_at:%Y-%m-%d %H:%M}, as it would from the billing run; "
            "a saved card or account credit pays it as it is issued.",
        ]
    )


def _renew(service: Service, data: QueryDict, user) -> str:
    invoice = billing.service_bill_now(service=service)
    return f"Invoice {invoice.number} issued for {invoice.total}, due {invoice.due_at:%Y-%m-%d}."


# --- change package


def _target(service: Service, data: QueryDict) -> Package | None:
    chosen = data.get("choice", "")
    if not chosen.isdigit():
        return None
    return Package.objects.filter(pk=int(chosen)).first()


def _change_confirm(service: Service, data: QueryDict) -> Confirmation:
    refusal = service.package_change_refusal(timezone.now())
    if refusal is not None:
        return Confirmation([], refusal=refusal.message)
    targets = service_change_targets(service=service)
    if not targets:
        return Confirmation([], refusal="No package this service may move to is on sale.")
    confirmation = Confirmation(
        [f"Move {service} from {service.package_name} ({service.recurring_amount} a period)."],
        choices=[(str(target.pk), f"{target.name} ({label})") for target, label in targets],
        choice_label="Move to",
        chosen=data.get("choice", ""),
    )
    target = _target(service, data)
    if target is None:
        confirmation.chosen = ""  # nothing to confirm until a package is chosen
        confirmation.lines.append("Choose a package to see what the move charges.")
        return confirmation
    try:
        preview = plan_changes.plan_change_preview(service, target, timezone.now())
    except ValidationError as error:
        confirmation.refusal = " ".join(error.messages)
        return confirmation
    confirmation.token = plan_changes.preview_token(preview)
    if preview.is_upgrade:
        confirmation.lines.append(
            f"Upgrade to {target.name} now: charged {preview.charge} for the rest of the "
            f"period (prorated), then {preview.recurring_amount} a period."
        )
        if preview.credit.amount:
            confirmation.lines.append(
                f"The unused part of the paid period, {preview.credit}, goes to the "
                "customer's account credit."
            )
    else:
        confirmation.lines.append(
            f"Downgrade to {target.name} at the period end, "
            f"{preview.effective_at:%Y-%m-%d %H:%M}: then {preview.recurring_amount} a period; "
            "nothing is charged now."
        )
    return confirmation


def _change(service: Service, data: QueryDict, user) -> str:
    target = _target(service, data)
    try:
        confirmed = plan_changes.preview_token_read(data.get("preview", ""), target)
    except signing.BadSignature:  # also one over 30 minutes old
        raise refuse(
            ErrorCode.PREVIEW_OUTDATED,
            "That preview is out of date; review the figures below and confirm again.",
        ) from None
    # Billed as previewed: prorated to the moment staff saw it, refused if a figure moved.
    change = plan_changes.service_change_package(
        service=service, customer=service.customer, package=target, confirmed=confirmed
    )
    if change.direction == PlanChange.Direction.UPGRADE:
        return (
            f"Moved to {change.to_package_name}; charged {change.charge}, "
            f"now {change.recurring_amount} a period."
        )
    return f"Moves to {change.to_package_name} on {change.effective_at:%Y-%m-%d}."


# --- cancel

CANCEL_CHOICES = [
    (Service.CancelMode.PERIOD_END.value, "At the end of the period"),
    (Service.CancelMode.IMMEDIATE.value, "Immediately: the provider removes it now"),
]


def _cancel_confirm(service: Service, data: QueryDict) -> Confirmation:
    end = service.cancel_at or service.current_period_end or service.trial_ends_at
    return Confirmation(
        [
            f"End {service} for {service.customer}."
            + (f" The period runs until {end:%Y-%m-%d %H:%M}." if end else ""),
            "The customer is emailed; nothing is refunded.",
        ],
        choices=CANCEL_CHOICES,
        choice_label="When",
        chosen=data.get("choice", "") or Service.CancelMode.PERIOD_END,
    )


def _cancel(service: Service, data: QueryDict, user) -> str:
    service = lifecycle.service_cancel(service=service, mode=data.get("choice", ""), actor=user)
    if service.status == S.CANCELLED:
        return "Cancelled now."
    assert service.cancel_at is not None  # set by a cancellation at period end
    return f"Cancels at the period end, {service.cancel_at:%Y-%m-%d %H:%M}."


# --- jobs


def _retry_confirm(service: Service, data: QueryDict) -> Confirmation:
    job = _failed_job(service)
    if job is None:
        return Confirmation([], refusal="No job of this service has failed.")
    return Confirmation(
        [
            f"Send “{job.get_action_display()}” (job #{job.pk}) to the provider again, "
            f"its attempts reset; it last said: {job.last_error or 'nothing'}.",
            "It keeps its idempotency key, so the provider acts once.",
        ]
    )


def _retry(service: Service, data: QueryDict, user) -> str:
    job = _failed_job(service)
    if job is None:
        raise ValidationError("No job of this service has failed.", code="no_open_job")
    jobs.provisioning_job_retry(job=job)
    return f"{job.get_action_display()} (job #{job.pk}) queued again."


def _complete_confirm(service: Service, data: QueryDict) -> Confirmation:
    job = _waiting_job(service)
    if job is None:
        return Confirmation([], refusal="No job of this service waits for staff.")
    return Confirmation(
        [
            f"Mark “{job.get_action_display()}” (job #{job.pk}) done: you did it by hand "
            f"on the provider. It asked: {job.result_message or 'nothing'}.",
            "The service moves on as if the provider had answered.",
        ],
        remote_id=True,
    )


def _complete(service: Service, data: QueryDict, user) -> str:
    job = _waiting_job(service)
    if job is None:
        raise ValidationError("No job of this service waits for staff.", code="no_open_job")
    jobs.provisioning_job_complete(job=job, remote_id=data.get("remote_id", "").strip()[:255])
    return f"{job.get_action_display()} (job #{job.pk}) marked done."


# --- the provider's state


def _suspend(service: Service, data: QueryDict, user) -> str:
    job = lifecycle.service_suspend(service=service)
    return f"Suspension queued (job #{job.pk}); the service is suspended when the provider is."


def _unsuspend(service: Service, data: QueryDict, user) -> str:
    job = lifecycle.service_unsuspend(service=service)
    return f"Unsuspension queued (job #{job.pk})."


def _terminate(service: Service, data: QueryDict, user) -> str:
    lifecycle.service_terminate(service=service)
    return "Terminated; the provider removes it in a job."


ACTIONS: dict[str, ConsoleAction] = {
    action.slug: action
    for action in [
        ConsoleAction(
            "renew", "Renew now", _renewable, _renew_confirm, _renew,
        ),
        ConsoleAction(
            "change-package", "Change package",
            lambda s: s.package_change_refusal(timezone.now()) is None,
            _change_confirm, _change,
        ),
        ConsoleAction(
            "suspend", "Suspend", lambda s: s.status in (S.TRIAL, S.ACTIVE, S.GRACE),
            _simple(["Ask the provider to suspend {service}; the customer loses access and is "
                     "emailed once the provider has done it."]),
            _suspend,
        ),
        ConsoleAction(
            "unsuspend", "Unsuspend", lambda s: s.status == S.SUSPENDED,
            _simple(["Ask the provider to give {service} back; unpaid invoices stay unpaid."]),
            _unsuspend,
        ),
        ConsoleAction(
            "retry", "Retry failed job", lambda s: _failed_job(s) is not None,
            _retry_confirm, _retry,
        ),
        ConsoleAction(
            "complete-manual", "Mark manual job done", lambda s: _waiting_job(s) is not None,
            _complete_confirm, _complete,
        ),
        ConsoleAction(
            "cancel", "Cancel", lambda s: s.is_live, _cancel_confirm, _cancel, dangerous=True,
        ),
        ConsoleAction(
            "terminate", "Terminate", lambda s: s.status != S.TERMINATED,
            _simple(["End {service} now and have the provider remove it. Its data may be lost; "
                     "this cannot be undone."]),
            _terminate, dangerous=True,
        ),
    ]
}  # fmt: skip


def console_actions(service: Service) -> list[ConsoleAction]:
    """The actions the service's page offers now."""
    return [action for action in ACTIONS.values() if action.offered(service)]


@transaction.atomic
def console_action_perform(
    *, action: ConsoleAction, service: Service, data: QueryDict, user
) -> str:
    """Do `action` and write it on the timeline with `user`; a refusal writes nothing."""
    outcome = action.perform(service, data, user)
    service_event_record(
        service,
        Kind.STAFF_ACTION,
        f"{action.label} by {user.get_username()}: {outcome}",
        data={"action": action.slug},
        actor=user,
    )
    return outcome
