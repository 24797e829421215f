"""Lifecycle emails to customers, sent only for the events their package's preferences list.

`notify()` runs inside the transaction of the change it reports and enqueues
its task there (the database backend), like a provisioning job: a change
rolled back sends nothing, and a change committed never loses its email.
The task renders `templates/subscriptions/email/<event>.txt`, whose first
line is the subject.

The context is made of ready-formatted strings when the event happens (a list of
them for an email naming several services), so the email tells what was true then
and the task's arguments are plain JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.template import Context
from django.template.loader import get_template
from django_tasks import task
from djmoney.money import Money

from catalog.currency import MoneyFormats, format_money
from catalog.models import NotificationEvent, Package

from .events import Kind, service_event_record, service_events_bulk, service_events_record
from .models import Invoice, Order, Service
from .queueing import tasks_enqueue_many

Event = NotificationEvent


def notify(
    *, event: str | Iterable[str], package: Package, customer_id: int, context: dict[str, str]
) -> bool:
    """Queue the emails for `event` (or several, sent by one task) the package wants sent.

    The package is the one the order or service has at the time of the event.
    True when a task was queued.
    """
    events = [event] if isinstance(event, str) else list(event)
    wanted = [name for name in events if name in (package.notification_preferences or [])]
    if not wanted:
        return False
    # One row, written without enqueue's normalizing: the context is plain strings already.
    tasks_enqueue_many(
        send_notifications,
        [([], {"events": wanted, "customer_id": customer_id, "context": context})],
    )
    return True


@dataclass(frozen=True)
class Notice:
    """One customer's email(s) about one event, for notify_many."""

    events: list[str]
    package: Package
    customer_id: int
    context: dict[str, Any]
    # The services the email is about, whose timelines record it.
    service_ids: tuple[int, ...] = ()


def notify_many(notices: Iterable[Notice]) -> int:
    """Queue many customers' emails in one task: a billing run tells thousands at once.

    Each notice is sent only for the events its package wants, and written on
    the timelines of its services; the number of notices queued is returned.
    """
    notices = list(notices)
    queued = notices_queue(notices)
    service_events_bulk(
        (pk, Kind.EMAIL_SENT, f"To the customer: {', '.join(events)}", {"events": events})
        for notice, events in zip(notices, queued, strict=True)
        for pk in notice.service_ids
        if events
    )
    return sum(1 for events in queued if events)


def notices_queue(notices: Iterable[Notice]) -> list[list[str]]:
    """Queue the notices in one task, without writing them on any timeline; what each sent.

    The events queued of each notice, in order (none when its package wants
    none), for a caller that writes the email into the timeline event of what
    it tells: a billing run writes one row where it would write two.
    """
    queued = []
    wanted: list[dict[str, Any]] = []
    for notice in notices:
        events = notice_events(notice)
        queued.append(events)
        if events:
            wanted.append(
                {"events": events, "customer_id": notice.customer_id, "context": notice.context}
            )
    if wanted:
        # One row, written without enqueue's normalizing: notices are plain strings already.
        # What every context has in common is written once: a batch's notices mostly quote
        # the same package, price and dates, and the row's size is most of its cost.
        shared = _shared(item["context"] for item in wanted)
        if shared:
            for item in wanted:
                item["context"] = {
                    key: value for key, value in item["context"].items() if key not in shared
                }
        tasks_enqueue_many(batch_send_notifications, [([], {"notices": wanted, "shared": shared})])
    return queued


def notice_events(notice: Notice) -> list[str]:
    """The events of `notice` its package wants sent: what notices_queue queues of it."""
    preferences = notice.package.notification_preferences or []
    return [name for name in notice.events if name in preferences]


def _shared(contexts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The items every one of `contexts` has."""
    contexts = iter(contexts)
    shared = dict(next(contexts))
    for context in contexts:
        for key in [key for key, value in shared.items() if context.get(key) != value]:
            del shared[key]
        if not shared:
            break
    return shared


def emailed(events: list[str]) -> str:
    """What a timeline event adds when the customer was emailed about it."""
    return f"; emailed to the customer ({', '.join(events)})" if events else ""


@task()
def batch_send_notifications(
    *, notices: list[dict[str, Any]], shared: dict[str, Any] | None = None
) -> int:
    """Each notice's emails; `shared` holds the context items all the notices have in common."""
    return sum(
        notifications_send(
            events=notice["events"],
            customer_id=notice["customer_id"],
            context={**(shared or {}), **notice["context"]},
        )
        for notice in notices
    )


@task()
def send_notifications(*, events: list[str], customer_id: int, context: dict[str, str]) -> int:
    return notifications_send(events=events, customer_id=customer_id, context=context)


def notifications_send(*, events: list[str], customer_id: int, context: dict[str, Any]) -> int:
    """What the task does: one email per event to the customer's address as it is now."""
    email = get_user_model().objects.filter(pk=customer_id).values_list("email", flat=True).first()
    if not email:
        return 0
    for event in events:
        subject, body = render_email(event, context)
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email])
    return len(events)


def render_email(event: str, context: dict[str, Any]) -> tuple[str, str]:
    """(subject, body) of the event's plain-text template; the first line is the subject."""
    template = get_template(f"subscriptions/email/{event}.txt")
    # Plain text: autoescaping would turn “&” in a package name into “&amp;”.
    text = template.template.render(  # type: ignore[attr-defined]  # Django's backend Template has .template; the stubs' protocol does not
        Context(context, autoescape=False)
    )
    subject, _, body = text.strip().partition("\n")
    return subject.strip(), body.strip() + "\n"


def _money(amount: Money | None) -> str:
    return format_money(amount) if amount is not None else ""


def _date(value) -> str:
    return f"{value:%Y-%m-%d}" if value else ""


class BatchTexts:
    """The amounts and dates of a batch of notices or lines, each distinct one written once.

    A billing run writes the same few amounts and days for thousands of services.
    """

    def __init__(self) -> None:
        self._money = MoneyFormats()
        self._dates: dict[tuple[object, object], str] = {}

    def money(self, amount: Money | None) -> str:
        return self._money(amount) if amount is not None else ""

    def date(self, value) -> str:
        # By time zone too: one instant is another day in another zone.
        key = (value, getattr(value, "tzinfo", None))
        text = self._dates.get(key)
        if text is None:
            text = self._dates[key] = _date(value)
        return text


def _invoice_context(invoice: Invoice, texts: BatchTexts | None = None) -> dict[str, str]:
    texts = texts or BatchTexts()
    return {
        "invoice_number": invoice.number,
        "invoice_total": texts.money(invoice.total),
        "invoice_due": texts.date(invoice.due_at),
    }


def notify_order_placed(*, order: Order, invoice: Invoice, package: Package) -> None:
    """Order placed and its invoice, in one task; an order with nothing to pay has no invoice email."""
    events = [Event.ORDER_PLACED]
    if invoice.total.amount > 0:
        events.append(Event.INVOICE_CREATED)
    notify(
        event=events,
        package=package,
        customer_id=order.customer_id,
        context={
            "package_name": order.package_name,
            "order_number": order.number,
            "price_name": order.price_name,
            "period": order.period_label,
            "quantity": str(order.quantity),
            "order_total": _money(order.total),
            "recurring_total": _money(order.recurring_total)
            if order.recurring_total.amount
            else "",
            **_invoice_context(invoice),
        },
    )


def notify_invoice(
    event: str,
    invoice: Invoice,
    *,
    payment_amount: Money | None = None,
    balance: Money | None = None,
) -> None:
    """An invoice issued or paid; a zero invoice settles itself and is not worth an email.

    The payments app, which alone knows payments, passes a payment's amount and
    the balance left.
    """
    if invoice.total.amount == 0:
        return
    source: Service | Order | None = invoice.service if invoice.service_id else invoice.order
    if invoice.kind == Invoice.Kind.RENEWAL:
        services = [line.service for line in invoice.lines.select_related("service__package")]
        source = next((service for service in services if service is not None), None)
        package_name = _names(services)
    assert source is not None  # an invoice is of a service or an order (constraint)
    package = source.package
    if invoice.kind != Invoice.Kind.RENEWAL:
        package_name = source.package_name
    context = {"package_name": package_name, **_invoice_context(invoice)}
    if payment_amount is not None:
        context["payment_amount"] = _money(payment_amount)
        context["balance"] = _money(balance)
    if notify(event=event, package=package, customer_id=invoice.customer_id, context=context):
        service_events_record(
            kind=Kind.EMAIL_SENT,
            message=f"To the customer: {event} ({invoice.number})",
            invoice=invoice,
            data={"events": [event]},
        )


def _names(services: Iterable[Service | None]) -> str:
    """“Video Pro” or “Video Pro, Web Basic”: what a renewal invoice bills."""
    names = [service.package_name for service in services if service]
    # Most invoices bill one service: a billing run names thousands.
    return names[0] if len(names) == 1 else ", ".join(dict.fromkeys(names))


def notify_invoices_issued(issued: list[tuple[Invoice, list[Service]]]) -> dict[int, list[str]]:
    """Renewal invoices a billing run issued, each with the services it bills, in one task.

    A customer is told when the package of any service on the invoice wants it;
    zero invoices pay themselves and are not worth an email. Returns the events
    emailed for each invoice: the caller writes them into the timeline event of
    the invoice (`emailed`).
    """
    texts = BatchTexts()
    told = [(invoice, services) for invoice, services in issued if invoice.total.amount > 0]
    queued = notices_queue(
        Notice(
            events=[Event.INVOICE_CREATED],
            package=_most_talkative(services, Event.INVOICE_CREATED),
            customer_id=invoice.customer_id,
            context={"package_name": _names(services), **_invoice_context(invoice, texts)},
        )
        for invoice, services in told
    )
    return {invoice.pk: events for (invoice, _), events in zip(told, queued, strict=True) if events}


def overdue_notice(invoice: Invoice, services: list[Service], texts: BatchTexts) -> Notice:
    """One "payment overdue" email for an unpaid invoice, naming each of its services that
    just entered grace and until when it stays usable: a customer with five services on
    the invoice gets one email, not five."""
    return Notice(
        events=[Event.PAYMENT_OVERDUE],
        package=_most_talkative(services, Event.PAYMENT_OVERDUE),
        customer_id=invoice.customer_id,
        context={
            "package_name": _names(services),
            # Each service with its own grace (sold with it), in the order they were billed.
            "services": [
                {
                    "name": service.package_name,
                    "number": str(service.pk),
                    "grace_ends": texts.date(service.grace_ends_at),
                }
                for service in services
            ],
            **_invoice_context(invoice, texts),
        },
        service_ids=tuple(service.pk for service in services),
    )


def _most_talkative(services: list[Service], event: str) -> Package:
    """The package of the invoice's services that wants `event` sent, if any does."""
    for service in services:
        if event in (service.package.notification_preferences or []):
            return service.package
    return services[0].package


def service_notice(
    event: str,
    service: Service,
    *,
    invoice: Invoice | None = None,
    texts: BatchTexts | None = None,
) -> Notice:
    """What notify_service would send, for notify_many; a batch shares its `texts`."""
    return Notice(
        events=[event],
        package=service.package,
        customer_id=service.customer_id,
        context=_service_context(service, invoice, texts),
        service_ids=(service.pk,),
    )


def _service_context(
    service: Service, invoice: Invoice | None, texts: BatchTexts | None = None
) -> dict[str, str]:
    texts = texts or BatchTexts()
    return {
        "package_name": service.package_name,
        "service_number": str(service.pk),
        "price_name": service.price_name,
        "recurring_amount": texts.money(service.recurring_amount) if service.is_recurring else "",
        "trial_ends": texts.date(service.trial_ends_at),
        "period_end": texts.date(service.current_period_end),
        "grace_ends": texts.date(service.grace_ends_at),
        "terminates_on": texts.date(service.terminates_at),
        **(_invoice_context(invoice, texts) if invoice is not None else {}),
    }


def notify_service(
    event: str, service: Service, *, invoice: Invoice | None = None, **extra: str
) -> bool:
    """A service's lifecycle changed; the invoice it is about and `extra` add to the context.

    True when the package wants the email and its task was queued.
    """
    sent = notify(
        event=event,
        package=service.package,
        customer_id=service.customer_id,
        context={**_service_context(service, invoice), **extra},
    )
    if sent:
        service_event_record(
            service, Kind.EMAIL_SENT, f"To the customer: {event}", data={"events": [event]}
        )
    return sent
