"""The service's timeline: one appended row per thing that happened, written where it happened.

Each service that changes a service calls one of these in its own transaction,
so a change rolled back leaves no event and a committed one always has it.
Rows are never updated or deleted (the admin offers neither).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models import Q

from .bulk import instances_insert, rows_insert
from .models import Invoice, InvoiceLine, Service, ServiceEvent

Kind = ServiceEvent.Kind


def service_event_record(
    service: Service | int,
    kind: str,
    message: str,
    *,
    data: dict[str, Any] | None = None,
    actor=None,
) -> ServiceEvent:
    """Append one event to one service's timeline."""
    service_id = service if isinstance(service, int) else service.pk
    return ServiceEvent.objects.create(
        service_id=service_id, kind=kind, message=message[:500], data=data or {}, actor=actor
    )


def service_events_record(
    *,
    kind: str,
    message: str,
    service_ids: Iterable[int] = (),
    invoice: Invoice | None = None,
    data: dict[str, Any] | None = None,
    actor=None,
) -> int:
    """Append the same event to several services' timelines (and those `invoice` bills) at once."""
    ids = set(service_ids)
    if invoice is not None:
        ids |= invoice_service_ids(invoice)
    instances_insert(
        ServiceEvent,
        [
            ServiceEvent(
                service_id=pk, kind=kind, message=message[:500], data=data or {}, actor=actor
            )
            for pk in sorted(ids)
        ],
    )
    return len(ids)


def service_events_bulk(events: Iterable[tuple[int, str, str, dict[str, Any]]]) -> int:
    """Append (service id, kind, message, data) events in one INSERT: a billing run writes many."""
    rows = [(pk, kind, message[:500], data) for pk, kind, message, data in events]
    rows_insert(ServiceEvent, ("service_id", "kind", "message", "data"), rows)
    return len(rows)


def invoice_service_ids(invoice: Invoice) -> set[int]:
    """The services an invoice bills: its own, its order's, or those on its lines (renewals)."""
    billed = Q(pk__in=InvoiceLine.objects.filter(invoice=invoice).values("service_id"))
    if invoice.service_id:
        billed |= Q(pk=invoice.service_id)
    if invoice.order_id:
        billed |= Q(order_id=invoice.order_id)
    return set(Service.objects.filter(billed).values_list("pk", flat=True))


def status_changed(service: Service, before: str, *, actor=None) -> ServiceEvent | None:
    """Record `before` → the service's status now; nothing when it did not change."""
    if before == service.status:
        return None
    return service_event_record(
        service,
        Kind.STATUS_CHANGED,
        f"{Service.Status(before).label} → {service.get_status_display()}",
        data={"from": before, "to": service.status},
        actor=actor,
    )
