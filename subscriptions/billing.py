"""The billing run: renewals, trials ending, grace, suspension, termination and reminders.

Everything that happens because time passed; cron runs services_run_billing.
"""

from __future__ import annotations

import multiprocessing
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections, router, transaction
from django.db.models import DateTimeField, Exists, F, Max, OuterRef, Subquery, Value
from django.db.models.functions import Greatest
from django.utils import timezone
from django_tasks import task

from catalog.currency import format_money
from catalog.errors import ErrorCode, refuse
from catalog.models import NotificationEvent, Package, PriceType

from .billing_process import bill_due_in_process
from .bulk import OneOf, datetimes_loaded_by_psycopg, instances_read, instances_written
from .events import Kind, service_events_bulk
from .invoicing import (
    LineSpec,
    renewal_invoices_issue,
    renewal_invoices_prepare,
    renewal_payers,
)
from .jobs import provisioning_jobs_enqueue_many
from .lifecycle import service_end, services_apply_due_cancellations
from .models import Invoice, InvoiceLine, LineKind, PlanChange, ProvisioningJob, Service
from .notifications import (
    BatchTexts,
    Notice,
    emailed,
    notice_events,
    notices_queue,
    notify_many,
    overdue_notice,
    service_notice,
)
from .periods import add_interval, anchored_period_end
from .plan_changes import plan_change_apply_due
from .price_changes import (
    price_change_notices_due,
    scheduled_price_changes_apply_billed,
    service_prices_for_periods,
)
from .quotas import overage_lines_for

BATCH_SIZE = 1000
# The loops over a batch read `.id`, not `.pk`: `pk` looks up the model's primary key on
# every access, which was about 4% of a batch's Python.
# Services the run bills: a suspended one too, until it ends.
BILLED_STATUSES = (
    Service.Status.TRIAL,
    Service.Status.ACTIVE,
    Service.Status.GRACE,
    Service.Status.SUSPENDED,
)
# Services an invoice unpaid past its due date puts in grace.
GRACE_FROM = (Service.Status.TRIAL, Service.Status.ACTIVE)
# The columns the run reads of the services it handles: a service's other
# snapshots (provisioning options, settings, checkout fields) are never needed
# here, and loading them for a batch of thousands is most of the batch's time.
RUN_FIELDS = (
    "pk",
    "customer_id",
    "package_id",
    "status",
    "package_name",
    "price_name",
    "price_type",
    "time_interval",
    "billing_period",
    "currency",
    "recurring_amount",
    "recurring_amount_currency",
    "variants",
    "quotas",
    "overages_enabled",
    "grace_period",
    "grace_interval",
    "trial_ends_at",
    "billing_anchor",
    "current_period_start",
    "current_period_end",
    "next_bill_at",
    "grace_ends_at",
    # Read by every service notice (the termination date of the dunning emails).
    "terminates_at",
)
# What entering grace reads: a service notice's fields (notifications.service_notice) and
# the grace sold; a batch of services read with these loads a third less than RUN_FIELDS.
GRACE_FIELDS = (
    "pk",
    "customer_id",
    "package_id",
    "status",
    "package_name",
    "price_name",
    "price_type",
    "recurring_amount",
    "recurring_amount_currency",
    "trial_ends_at",
    "current_period_end",
    "grace_period",
    "grace_interval",
    "grace_ends_at",
    "terminates_at",
)


def invoice_lead_time() -> timedelta:
    """How long before it falls due a renewal is invoiced, so the customer has time to pay."""
    return timedelta(days=settings.BILLING_INVOICE_DAYS_BEFORE_DUE)


def _period_to_bill(service: Service) -> tuple[datetime, datetime]:
    """(start, end) of the period whose invoice falls due at `service.next_bill_at`.

    Falling due before the current period ends, it is that period: the first
    paid one, billed when the trial ends (outside: it follows the trial;
    inside: it began with it), whatever the status then, so a service
    suspended across its trial end is billed it too. Otherwise it is the
    period after the current one.
    """
    assert service.next_bill_at and service.current_period_start and service.current_period_end
    assert service.time_interval  # a recurring service has one (PackagePrice.clean)
    if service.next_bill_at < service.current_period_end:
        return service.current_period_start, service.current_period_end
    start = service.current_period_end
    anchor = service.billing_anchor or start
    return start, anchored_period_end(anchor, start, service.time_interval, service.billing_period)


def _ends_a_period(service: Service) -> bool:
    """Billing `service` now bills the period after its current one, which just ended.

    Not so for the first paid period, billed when a trial ends: no period ended before it.
    """
    assert service.next_bill_at and service.current_period_end
    return service.next_bill_at >= service.current_period_end


def _ended_periods(services: list[Service]):
    """(service, start, end) of the period that just ended, of each service billing the next."""
    for service in services:
        if _ends_a_period(service):
            assert service.current_period_start and service.current_period_end
            yield service, service.current_period_start, service.current_period_end


def service_period_lines(services: list[Service]) -> list[LineSpec]:
    """The lines each service puts on its customer's invoice due at next_bill_at.

    The period's price (a staff price change from its start on), and the
    overages of the period that ended, in a fixed number of queries for the set.
    """
    periods = {service.id: _period_to_bill(service) for service in services}
    prices = service_prices_for_periods([(service, periods[service.id][0]) for service in services])
    overages = overage_lines_for(_ended_periods(services))
    lines = []
    texts = BatchTexts()
    for service in services:
        start, end = periods[service.id]
        assert service.next_bill_at is not None  # selected by it
        variants = "".join(f", {item['name']}: {item['option']}" for item in service.variants)
        lines.append(
            LineSpec(
                service=service,
                due_at=service.next_bill_at,
                description=f"{service.package_name} – {service.price_name}{variants}, "
                f"{texts.date(start)} to {texts.date(end)}",
                amount=prices[service.id],
                period_start=start,
                period_end=end,
            )
        )
        assert service.current_period_start and service.current_period_end
        lines.extend(
            LineSpec(
                service=service,
                due_at=service.next_bill_at,
                description=overage.description,
                amount=overage.amount,
                period_start=service.current_period_start,
                period_end=service.current_period_end,
                kind=LineKind.OVERAGE,
            )
            for overage in overages.get(service.id, [])
        )
    return lines


class _Packages:
    """The packages of the services a run handles, read once each with what notices need.

    A notice asks the service's package which emails it sends; reading it with
    every service (select_related) would repeat its row a thousand times a batch.
    """

    def __init__(self) -> None:
        self._packages: dict[int, Package] = {}

    def attach(self, services: list[Service]) -> None:
        missing = {service.package_id for service in services} - self._packages.keys()
        if missing:
            self._packages.update(
                Package.objects.only("pk", "notification_preferences").in_bulk(missing)
            )
        for service in services:
            service.package = self._packages[service.package_id]


def _due(now: datetime):
    """The services with a renewal to bill: invoiced BILLING_INVOICE_DAYS_BEFORE_DUE ahead."""
    return Service.objects.filter(
        next_bill_at__lte=now + invoice_lead_time(),
        status__in=BILLED_STATUSES,
        price_type=PriceType.RECURRING,
        cancel_at__isnull=True,
    )


def services_bill_due(run: BillingRun, now: datetime) -> None:
    """Bill every period that fell due, a batch of customers per transaction: the run's bill
    step, which `billing_process` also runs in a process of its own.

    A batch takes its customers' locks (SKIP LOCKED, in id order, the lock a
    payment takes to spend account credit) and then every due service of
    theirs, so all of a customer's services due the same day are on one
    invoice even when two runs overlap: the runs share the customers instead
    of waiting or billing a period twice. A billed service's next_bill_at is
    cleared in the same transaction, so no later batch or run selects it again
    until its invoice is paid. A customer or service another transaction holds
    is left to the next run.
    """
    due = _due(now)
    # The customers with something due, read once and streamed (a server-side cursor) a
    # batch at a time: asked again for each batch, the query would pass over every service
    # still due, and over every one already billed (its index entry stays until a vacuum).
    due_customers = due.order_by("customer_id").values_list("customer_id", flat=True).distinct()
    customers = (
        get_user_model()
        .objects.order_by("pk")
        .select_for_update(skip_locked=True)
        .values_list("pk", flat=True)
    )
    packages = _Packages()
    # Five datetimes a service: Django's loader took more of the run than any one query.
    with datetimes_loaded_by_psycopg():
        for chunk in _batches(due_customers.iterator(chunk_size=BATCH_SIZE), BATCH_SIZE):
            with transaction.atomic():
                customer_ids = list(customers.filter(OneOf(F("pk"), chunk)))
                if not customer_ids:
                    continue
                batch = instances_read(
                    due.filter(OneOf(F("customer_id"), customer_ids))
                    .order_by("next_bill_at", "pk")
                    .select_for_update(skip_locked=True, of=("self",)),
                    RUN_FIELDS,
                )
                if not batch:
                    continue
                packages.attach(batch)
                issued, grace = _services_bill(batch, now)
                run.invoices += len(issued)
                run.grace += grace


def _services_bill_due_in_processes(run: BillingRun, now: datetime, processes: int) -> None:
    """`services_bill_due` in `processes` processes at once, when on PostgreSQL more than a
    batch of customers is due: the run's own and others started fresh, which share the
    customers as overlapping runs do (each takes a batch the others have not locked).

    One process would use one core and wait on the database for the other. In one
    process, inside a transaction (the others would not see its rows), on SQLite
    (one writer at a time), or with little due.
    """
    database = connections[router.db_for_write(Service)]
    due_customers = _due(now).order_by().values("customer_id").distinct()
    if (
        processes <= 1
        or database.vendor != "postgresql"
        or database.in_atomic_block
        or not due_customers[BATCH_SIZE : BATCH_SIZE + 1].exists()
    ):
        services_bill_due(run, now)
        return
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes - 1, mp_context=spawn) as others:
        started = [
            others.submit(
                bill_due_in_process,
                settings.SETTINGS_MODULE,
                database.alias,
                database.settings_dict,
                now,
            )
            for _ in range(processes - 1)
        ]
        services_bill_due(run, now)
        for result in started:
            invoices, grace = result.result()
            run.invoices += invoices
            run.grace += grace


def _services_bill(
    services: list[Service], now: datetime
) -> tuple[list[tuple[Invoice, list[Service]]], int]:
    """Invoice each service's period due and move it on: (each invoice with the services it
    bills, how many services entered grace). Call it holding the services' and their
    customers' locks.

    Everything that needs no invoice number is written before the invoices are
    numbered (the year's counter stays locked from then to commit, so that is all
    two billing processes cannot do at once): the lines, and the services of the
    invoices left to pay, moved on with their timeline events. The services of
    an invoice the payments app may pay as it is issued (a zero total, account
    credit) are moved on after it had its say, as the payment left them.
    """
    prepared = renewal_invoices_prepare(service_period_lines(services))
    payers = renewal_payers(prepared.invoices)
    # Left to pay as they are issued: a total, and no credit that may pay it.
    to_pay = {
        invoice.id
        for invoice in prepared.invoices
        if invoice.total.amount and invoice.customer_id not in payers
    }
    entering, overdue = _services_billed(
        [(invoice, billed) for invoice, billed in prepared.billed if invoice.id in to_pay], now
    )
    overdue_notices = _grace_announce(entering, overdue)
    issued = renewal_invoices_issue(prepared)
    # Numbered now: an overdue email quotes the number of the invoice it is about.
    for invoice, notice in overdue_notices:
        notice.context["invoice_number"] = invoice.number
    notices_queue(notice for _, notice in overdue_notices)
    paid_at_issue = [(invoice, billed) for invoice, billed in issued if invoice.id not in to_pay]
    entered, overdue = _services_billed(paid_at_issue, now)
    notices_queue(notice for _, notice in _grace_announce(entered, overdue))
    return issued, len(entering) + len(entered)


def _services_billed(
    issued: list[tuple[Invoice, list[Service]]], now: datetime
) -> tuple[list[Service], dict[int, Invoice]]:
    """Write each billed service once: its next_bill_at cleared, and grace entered when its
    invoice is already due; those that entered grace, and the invoice each entered it for.

    The grace step would put those in grace later in the run, updating every
    row a second time; here they enter it by the same rule (`_grace_ends`,
    from the earliest invoice of theirs unpaid past its due date). A service
    whose invoice was paid as it was issued (account credit, a zero total)
    moved on to its next period then, and is left as the payment left it.
    """
    unpaid = [
        (invoice, service)
        for invoice, services in issued
        if invoice.status == Invoice.Status.UNPAID
        for service in services
    ]
    overdue = {
        service.id: invoice
        for invoice, service in unpaid
        if invoice.due_at <= now and service.status in GRACE_FROM
    }
    entering = [service for _, service in unpaid if service.id in overdue]
    # An invoice of theirs overdue before this one (an upgrade's charge) counts first.
    earlier = _earliest_overdue_invoices(
        [service.id for service in entering],
        now,
        excluding=[invoice.id for invoice, _ in issued],
    )
    for pk, invoice in earlier.items():
        if (invoice.due_at, invoice.id) < (overdue[pk].due_at, overdue[pk].id):
            overdue[pk] = invoice
    for _, service in unpaid:
        service.next_bill_at = None
    for service in entering:
        service.status = Service.Status.GRACE
        service.grace_ends_at = _grace_ends(service, overdue[service.id])
    instances_written(
        [service for _, service in unpaid], ("next_bill_at", "status", "grace_ends_at")
    )
    return entering, overdue


@transaction.atomic
def service_bill_now(*, service: Service) -> Invoice:
    """Issue the service's next renewal invoice now instead of waiting for the billing run.

    The same lines and invoice as the run makes; the invoice keeps its due date.
    """
    # The customer's lock first, as the run takes it: no payment spends their credit meanwhile.
    get_user_model().objects.select_for_update().filter(pk=service.customer_id).exists()
    service = (
        Service.objects.select_for_update(of=("self",)).select_related("package").get(pk=service.pk)
    )
    if (
        service.next_bill_at is None
        or service.status not in BILLED_STATUSES
        or service.price_type != PriceType.RECURRING
        or service.cancel_at is not None
    ):
        raise refuse(
            ErrorCode.NOT_BILLABLE,
            "This service has no renewal to bill: its next invoice is already issued, "
            "it is not recurring, or it is ending.",
        )
    # As the run leaves a service it billed (an invoice paid as it was issued moved it on).
    issued, _ = _services_bill([service], timezone.now())
    return issued[0][0]


def _grace_candidates(now: datetime, issued_up_to: int):
    """Batches of ids of trial or active services billed on an invoice unpaid past its due date,
    of the invoices up to id `issued_up_to`.

    Found from the overdue invoices (the partial index on unpaid due dates finds
    them, so a run with nothing to do reads only those still overdue), a batch
    of invoices at a time: a query joining lines, invoices and services over
    the whole set would be planned with the statistics of before the run, and
    right after a run billed thousands of services they say those tables are empty.
    """
    # Only invoices billing a service still to put in grace: a run with nothing to do
    # streams none of those whose services are in grace already.
    on_a_running_service = InvoiceLine.objects.filter(
        invoice=OuterRef("pk"), service__status__in=GRACE_FROM
    )
    overdue = (
        Invoice.objects.filter(status=Invoice.Status.UNPAID, due_at__lte=now, pk__lte=issued_up_to)
        .filter(Exists(on_a_running_service))
        # In no order: ordered by id, the plan scans every invoice ever issued for the unpaid.
        .order_by()
        .values_list("pk", flat=True)
    )
    for invoice_ids in _batches(overdue.iterator(chunk_size=BATCH_SIZE), BATCH_SIZE):
        service_ids = (
            InvoiceLine.objects.filter(
                OneOf(F("invoice_id"), invoice_ids),
                service__status__in=GRACE_FROM,
            )
            .order_by("service_id")
            .values_list("service_id", flat=True)
            .distinct()
        )
        yield from _batches(service_ids, BATCH_SIZE)


def _earliest_overdue_invoices(
    service_ids: list[int], now: datetime, *, excluding: list[int] | None = None
) -> dict[int, Invoice]:
    """Each service's earliest invoice unpaid past its due date, the one grace counts from;
    the invoices `excluding` names are left out.

    Read by id, the lines by their service and the invoices by their key: a join
    of the two would be planned with the statistics of before the run, which
    right after a run billed thousands say these tables are empty.
    """
    if not service_ids:
        return {}
    lines = InvoiceLine.objects.filter(OneOf(F("service_id"), service_ids))
    if excluding:
        lines = lines.exclude(OneOf(F("invoice_id"), excluding))
    billed = defaultdict(set)
    for service_id, invoice_id in lines.values_list("service_id", "invoice_id"):
        billed[invoice_id].add(service_id)
    if not billed:
        return {}
    # What the notice quotes of the invoice, and grace counts from.
    invoices = instances_read(
        Invoice.objects.filter(
            OneOf(F("pk"), billed), status=Invoice.Status.UNPAID, due_at__lte=now
        ).order_by("due_at", "pk"),
        ("pk", "number", "total", "total_currency", "due_at"),
    )
    earliest: dict[int, Invoice] = {}
    for invoice in invoices:
        for service_id in billed[invoice.id]:
            earliest.setdefault(service_id, invoice)
    return earliest


def _grace_ends(service: Service, overdue: Invoice) -> datetime:
    """When the grace sold with the service runs out: counted from its earliest overdue invoice."""
    return add_interval(overdue.due_at, service.grace_period, service.grace_interval or "day")


def _grace_announce(
    services: list[Service], overdue: dict[int, Invoice]
) -> list[tuple[Invoice, Notice]]:
    """Services that just entered grace: a timeline event per service that says so, and
    whether its customer is emailed (one row where the email would be a second); returns
    the emails to queue (notices_queue), one per overdue invoice naming its services."""
    texts = BatchTexts()
    by_invoice: dict[int, list[Service]] = defaultdict(list)
    for service in services:
        by_invoice[overdue[service.id].id].append(service)
    notices = [
        (overdue[group[0].id], overdue_notice(overdue[group[0].id], group, texts))
        for group in by_invoice.values()
    ]
    told = {
        service.id: notice_events(notice)
        for group, (_, notice) in zip(by_invoice.values(), notices, strict=True)
        for service in group
    }
    # The same data is one object, written once (bulk.rows_insert).
    data: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    service_events_bulk(
        (
            s.id,
            Kind.STATUS_CHANGED,
            f"→ Grace period until {texts.date(s.grace_ends_at)}: invoice unpaid"
            f"{emailed(told[s.id])}",
            data.setdefault(
                (s.status, tuple(told[s.id])),
                {"to": s.status, "events": told[s.id]} if told[s.id] else {"to": s.status},
            ),
        )
        for s in services
    )
    return notices


def _batches(rows, size: int):
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _services_enter_grace(run: BillingRun, now: datetime, issued_up_to: int) -> None:
    """Services with an invoice unpaid past its due date enter grace, a batch at a time.

    Only invoices up to id `issued_up_to`, those issued before the run billed: the
    bill step put the services of its own invoices in grace itself, and an invoice
    issued elsewhere meanwhile is the next run's (its grace counts from its due date
    all the same). At 100,000 renewals, looking at the run's own took 0.35 s.

    The grace period is the one snapshotted at order time and counts from the
    earliest overdue invoice; the customers are told in one task per batch.
    Each batch locks its services (SKIP LOCKED: another run has them) and reads
    their invoices again under the lock, so a payment that got there first
    wins; a service met again on a later batch of invoices is in grace by then.
    """
    packages = _Packages()
    for candidates in _grace_candidates(now, issued_up_to):
        with transaction.atomic():
            services = instances_read(
                Service.objects.filter(
                    OneOf(F("pk"), candidates),
                    status__in=GRACE_FROM,
                )
                .order_by("pk")
                .select_for_update(skip_locked=True, of=("self",)),
                GRACE_FIELDS,
            )
            overdue = _earliest_overdue_invoices([service.pk for service in services], now)
            batch = [service for service in services if service.pk in overdue]
            if not batch:
                continue
            packages.attach(batch)
            for service in batch:
                service.status = Service.Status.GRACE
                service.grace_ends_at = _grace_ends(service, overdue[service.pk])
            instances_written(batch, ("status", "grace_ends_at"))
            notices_queue(notice for _, notice in _grace_announce(batch, overdue))
            run.grace += len(batch)


def _services_suspend_after_grace(run: BillingRun, now: datetime) -> None:
    """Queue the suspension of each service whose grace ran out; the provider suspends it.

    A batch per transaction, its jobs and their tasks written in two INSERTs;
    a service with a suspension under way is left out, so neither a second run
    nor a later one queues another.
    """
    suspending = ProvisioningJob.objects.filter(
        service=OuterRef("pk"),
        action=ProvisioningJob.Action.SUSPEND,
        status__in=ProvisioningJob.OPEN_STATUSES,
    )
    due = (
        Service.objects.filter(status=Service.Status.GRACE, grace_ends_at__lte=now)
        .exclude(Exists(suspending))
        .only("pk")
        .order_by("pk")
    )
    while True:
        with transaction.atomic():
            batch = list(due.select_for_update(skip_locked=True, of=("self",))[:BATCH_SIZE])
            if not batch:
                return
            # Read again under the locks: a run that queued some of these and committed
            # while this query ran left their rows unchanged, so the query's older view
            # of the jobs still let them through.
            queued = set(
                ProvisioningJob.objects.filter(
                    OneOf(F("service_id"), [service.pk for service in batch]),
                    action=ProvisioningJob.Action.SUSPEND,
                    status__in=ProvisioningJob.OPEN_STATUSES,
                ).values_list("service_id", flat=True)
            )
            batch = [service for service in batch if service.pk not in queued]
            provisioning_jobs_enqueue_many(services=batch, action=ProvisioningJob.Action.SUSPEND)
            run.suspended += len(batch)


def _reminder_window(now: datetime) -> tuple[datetime, datetime]:
    """(after, until]: a trial or period ending in it is reminded of now."""
    return now, now + timedelta(days=settings.BILLING_REMINDER_DAYS)


def _services_remind(due, *, mark: dict[str, F], notices) -> int:
    """Lock a batch of `due` services at a time, mark them reminded, queue `notices(batch)`.

    SKIP LOCKED and the mark in the batch's transaction: a run racing another
    sends each reminder once. Returns the number of notices queued.
    """
    packages = _Packages()
    sent = 0
    while True:
        with transaction.atomic():
            batch = instances_read(
                due.select_for_update(skip_locked=True, of=("self",))[:BATCH_SIZE], RUN_FIELDS
            )
            if not batch:
                return sent
            Service.objects.filter(pk__in=[service.pk for service in batch]).update(**mark)
            packages.attach(batch)
            sent += notify_many(notices(batch))


def _trial_notices(batch: list[Service]) -> list[Notice]:
    texts = BatchTexts()
    return [service_notice(NotificationEvent.TRIAL_ENDING, s, texts=texts) for s in batch]


def _services_send_trial_reminders(run: BillingRun, after: datetime, until: datetime) -> None:
    """Tell customers their trial ends soon, once per trial end.

    The trial end is recorded even when the package's preferences leave the email out.
    """
    run.trial_reminders += _services_remind(
        Service.objects.trial_reminder_due(after=after, until=until),
        mark={"trial_reminder_sent_for": F("trial_ends_at")},
        notices=_trial_notices,
    )


def _renewal_notice(
    service: Service, change: PlanChange | None, texts: BatchTexts | None = None
) -> Notice:
    """A downgrade scheduled for the period end is what the renewal bills, so the email
    quotes it."""
    notice = service_notice(NotificationEvent.RENEWAL_DUE, service, texts=texts)
    if change is None:
        return notice
    return Notice(
        events=notice.events,
        package=notice.package,
        customer_id=notice.customer_id,
        context={
            **notice.context,
            "recurring_amount": format_money(change.recurring_amount),
            "new_package": change.to_package_name,
        },
    )


def _renewal_notices(batch: list[Service]) -> list[Notice]:
    """The renewal reminders of a batch, each quoting the downgrade its renewal bills, if any."""
    ends = {service.pk: service.current_period_end for service in batch}
    changes: dict[int, PlanChange] = {}
    for change in PlanChange.objects.filter(
        service_id__in=ends, status=PlanChange.Status.SCHEDULED
    ).order_by("effective_at", "pk"):
        end = ends[change.service_id]
        if end is not None and change.effective_at <= end:
            changes.setdefault(change.service_id, change)
    texts = BatchTexts()
    return [_renewal_notice(service, changes.get(service.pk), texts) for service in batch]


def _services_send_renewal_reminders(run: BillingRun, after: datetime, until: datetime) -> None:
    """Tell customers their service renews soon, once per period end."""
    run.renewal_reminders += _services_remind(
        Service.objects.renewal_reminder_due(after=after, until=until),
        mark={"renewal_reminder_sent_for": F("current_period_end")},
        notices=_renewal_notices,
    )


def _services_send_reminders(run: BillingRun, now: datetime) -> None:
    """Trial-ending and renewal-due reminders, once per trial end and period end.

    Each batch is locked with SKIP LOCKED and marked as reminded in the same
    transaction, so a run racing another sends each reminder once.
    """
    after, until = _reminder_window(now)
    if until <= after:
        return
    _services_send_trial_reminders(run, after, until)
    _services_send_renewal_reminders(run, after, until)


def _price_changes_apply(run: BillingRun, now: datetime) -> None:
    """Staff price changes whose first period at the new price started (and is billed)."""
    run.price_changes += scheduled_price_changes_apply_billed(now=now)


def _price_change_notices_send(run: BillingRun, now: datetime) -> None:
    run.price_notices += price_change_notices_due(now)


def termination_delay() -> timedelta:
    """How long a service suspended for an unpaid invoice lasts before it is terminated."""
    return timedelta(days=settings.BILLING_TERMINATE_AFTER_DAYS)


def termination_notice() -> timedelta:
    """How long before its termination the customer is warned: never less than a day,
    since the warning is the customer's last chance to pay."""
    return timedelta(days=max(settings.BILLING_REMINDER_DAYS, 1))


def _services_unpaid_suspended(now: datetime):
    """Suspended services with an invoice unpaid past its due date, not being unsuspended.

    Each dunning step below reads them through this condition under the row
    lock, so a payment that lands first (it clears terminates_at and queues
    the unsuspension) stops the termination.
    """
    overdue = InvoiceLine.objects.filter(
        service=OuterRef("pk"),
        invoice__status=Invoice.Status.UNPAID,
        invoice__due_at__lte=now,
    )
    first_overdue = Invoice.objects.filter(
        status=Invoice.Status.UNPAID, due_at__lte=now, lines__service=OuterRef("pk")
    ).order_by("due_at", "pk")
    unsuspending = ProvisioningJob.objects.filter(
        service=OuterRef("pk"),
        action=ProvisioningJob.Action.UNSUSPEND,
        status__in=ProvisioningJob.OPEN_STATUSES,
    )
    return (
        Service.objects.filter(Exists(overdue), status=Service.Status.SUSPENDED)
        .exclude(Exists(unsuspending))
        .annotate(overdue_invoice_id=Subquery(first_overdue.values("pk")[:1]))
        .select_related("package")
        .order_by("pk")
    )


def _services_schedule_termination(now: datetime) -> None:
    """Give each unpaid suspended service its termination date, a batch at a time.

    The date is BILLING_TERMINATE_AFTER_DAYS after the suspension, and never
    sooner than the warning period from now: a service long suspended when
    termination is switched on is warned before it ends like any other.
    """
    unscheduled = _services_unpaid_suspended(now).filter(
        terminates_at__isnull=True, suspended_at__isnull=False
    )
    earliest = Value(now + termination_notice(), output_field=DateTimeField())
    while True:
        with transaction.atomic():
            pks = list(
                unscheduled.select_for_update(skip_locked=True, of=("self",)).values_list(
                    "pk", flat=True
                )[:BATCH_SIZE]
            )
            if not pks:
                return
            Service.objects.filter(pk__in=pks).update(
                terminates_at=Greatest(F("suspended_at") + termination_delay(), earliest)
            )


def _services_warn_termination(run: BillingRun, now: datetime) -> None:
    """Tell each customer, once per date, when their unpaid service will be terminated.

    A date that passed unwarned (the run did not run for longer than the
    warning period) moves to the warning period from now: no service is
    terminated without its customer having been told the date.
    """
    notice = termination_notice()
    unwarned = _services_unpaid_suspended(now).filter(terminates_at__lte=now + notice)
    unwarned = unwarned.exclude(termination_warning_sent_for=F("terminates_at"))
    while True:
        with transaction.atomic():
            batch = list(unwarned.select_for_update(skip_locked=True, of=("self",))[:BATCH_SIZE])
            if not batch:
                return
            late = [service for service in batch if service.terminates_at <= now]
            for service in late:
                service.terminates_at = now + notice
            Service.objects.filter(pk__in=[service.pk for service in late]).update(
                terminates_at=now + notice
            )
            Service.objects.filter(pk__in=[service.pk for service in batch]).update(
                termination_warning_sent_for=F("terminates_at")
            )
            invoices = Invoice.objects.in_bulk([service.overdue_invoice_id for service in batch])
            notify_many(
                service_notice(
                    NotificationEvent.TERMINATION_WARNING,
                    service,
                    invoice=invoices[service.overdue_invoice_id],
                )
                for service in batch
            )
            run.termination_warnings += len(batch)


def _services_terminate_due(run: BillingRun, now: datetime) -> None:
    """Terminate each unpaid suspended service whose warned date has come.

    Through the lifecycle's service_end, as staff terminating it would: the
    customer gets the "terminated" email and the provider's terminate job is queued.
    """
    due = _services_unpaid_suspended(now).filter(
        terminates_at__lte=now, termination_warning_sent_for=F("terminates_at")
    )
    while True:
        with transaction.atomic():
            batch = list(due.select_for_update(skip_locked=True, of=("self",))[:BATCH_SIZE])
            if not batch:
                return
            for service in batch:
                service_end(service, Service.Status.TERMINATED)
            run.terminated += len(batch)


def services_terminate_unpaid(run: BillingRun, now: datetime) -> None:
    """Dunning's end: date, warn, then terminate services left suspended and unpaid.

    Off when BILLING_TERMINATE_AFTER_DAYS is 0.
    """
    if settings.BILLING_TERMINATE_AFTER_DAYS <= 0:
        return
    _services_schedule_termination(now)
    _services_warn_termination(run, now)
    _services_terminate_due(run, now)


@dataclass
class BillingRun:
    cancelled: int = 0
    plan_changes: int = 0
    invoices: int = 0
    grace: int = 0
    suspended: int = 0
    trial_reminders: int = 0
    renewal_reminders: int = 0
    termination_warnings: int = 0
    terminated: int = 0
    price_changes: int = 0
    price_notices: int = 0

    def __str__(self) -> str:
        return (
            f"{self.cancelled} cancelled, {self.plan_changes} plan change(s) applied, "
            f"{self.invoices} invoice(s) issued, {self.grace} entered grace, "
            f"{self.suspended} suspension(s) queued, "
            f"{self.termination_warnings} termination warning(s) sent, "
            f"{self.terminated} terminated for non-payment, "
            f"{self.trial_reminders} trial-ending reminder(s) and "
            f"{self.renewal_reminders} renewal reminder(s) sent. "
            f"{self.price_changes} price change(s) applied, "
            f"{self.price_notices} price change notice(s) sent."
        )


def services_run_billing(
    *, now: datetime | None = None, processes: int | None = None
) -> BillingRun:
    """Everything that happens because time passed; cron runs it, it is safe to run twice.

    One function per step; each works in batches of services, a transaction
    per batch holding the batch's row locks (taken with SKIP LOCKED), so a run
    never waits on, or undoes, another run or a payment, and two runs that
    overlap share the work. Renewals are billed in `processes` processes at once
    (BILLING_PROCESSES) when there are many, on PostgreSQL.
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

    issued_up_to = Invoice.objects.aggregate(last=Max("pk"))["last"] or 0
    _services_bill_due_in_processes(run, now, processes or settings.BILLING_PROCESSES)
    # After billing: a change applies once its first period at the new price is billed.
    _price_changes_apply(run, now)
    _services_enter_grace(run, now, issued_up_to)
    _services_suspend_after_grace(run, now)
    services_terminate_unpaid(run, now)
    _services_send_reminders(run, now)
    _price_change_notices_send(run, now)
    return run


@task()
def run_billing() -> str:
    """The billing run as a task, for a scheduler that enqueues tasks instead of cron."""
    return str(services_run_billing())
