"""Rows a billing run writes in one take (`subscriptions.bulk.rows_insert`) read back as the
ORM writes them: on SQLite through bulk_create, on PostgreSQL through COPY (the postgres run)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import DataError, transaction
from django.db.models import F
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from catalog.models import Catalog
from subscriptions.billing import RUN_FIELDS
from subscriptions.bulk import (
    OneOf,
    datetimes_loaded_by_psycopg,
    instances_built,
    instances_insert,
    instances_insert_returning,
    instances_read,
    instances_written,
    rows_insert,
)
from subscriptions.models import Invoice, InvoiceLine, LineKind, Service, ServiceEvent
from subscriptions.notifications import batch_send_notifications
from subscriptions.queueing import tasks_enqueue_many
from tests.factories import active_service, customers, usd

pytestmark = pytest.mark.django_db


def write_and_read_back(customer) -> None:
    service = active_service(customer)
    before = timezone.now()
    earlier = set(ServiceEvent.objects.values_list("pk", flat=True))
    rows_insert(
        ServiceEvent,
        ("service_id", "kind", "message", "data"),
        [
            (
                service.pk,
                ServiceEvent.Kind.EMAIL_SENT,
                "To the customer: “renewal_due”",
                {"a": [1]},
            ),
            (service.pk, ServiceEvent.Kind.STAFF_ACTION, "Noted", {}),
        ],
    )
    events = ServiceEvent.objects.filter(service=service).exclude(pk__in=earlier)
    assert sorted((e.message, e.data, e.actor_id) for e in events) == [
        ("Noted", {}, None),
        ("To the customer: “renewal_due”", {"a": [1]}, None),
    ]
    assert all(event.created_at >= before for event in events)

    due = timezone.now()
    rows = [
        ("INV-T-1", customer.pk, Invoice.Kind.RENEWAL, "USD", Decimal("12.50"), "USD", due),
        ("INV-T-2", customer.pk, Invoice.Kind.RENEWAL, "USD", Decimal("0.99"), "USD", due),
    ]
    ids = rows_insert(
        Invoice,
        ("number", "customer_id", "kind", "currency", "total", "total_currency", "due_at"),
        rows,
        with_ids=True,
    )
    invoices = Invoice.objects.in_bulk(ids)
    assert [(invoices[pk].number, invoices[pk].total) for pk in ids] == [
        ("INV-T-1", usd("12.50")),
        ("INV-T-2", usd("0.99")),
    ]
    assert all(invoices[pk].status == Invoice.Status.UNPAID for pk in ids)

    # A queued task's unset JSON (its return value) is SQL NULL, as enqueue leaves it.
    notices = [{"events": ["renewal_due"], "customer_id": customer.pk, "context": {}}]
    [task_id] = tasks_enqueue_many(batch_send_notifications, [([], {"notices": notices})])
    task = DBTaskResult.objects.get(pk=task_id)
    assert (task.args_kwargs, task.worker_ids, task.status) == (
        {"args": [], "kwargs": {"notices": notices}},
        [],
        "READY",
    )
    assert DBTaskResult.objects.filter(pk=task_id, return_value__isnull=True).exists()


def test_rows_written_in_one_take_read_back_with_their_defaults_and_ids_in_order():
    write_and_read_back(customers(1)[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rows_copied_into_postgresql_read_back_with_their_defaults_and_ids_in_order():
    write_and_read_back(customers(1)[0])


def test_services_read_as_rows_hold_what_the_orm_reads_and_load_the_rest_on_access():
    customer = customers(1)[0]
    service = active_service(customer)
    through_orm = Service.objects.only(*RUN_FIELDS).get(pk=service.pk)

    [read] = instances_read(Service.objects.filter(pk=service.pk), RUN_FIELDS)

    assert read == through_orm
    for name in RUN_FIELDS:
        assert getattr(read, name) == getattr(through_orm, name), name
    assert read.recurring_amount == service.recurring_amount
    assert read.get_deferred_fields() == through_orm.get_deferred_fields()
    # A field left out loads when read, and a save updates the row it came from.
    assert read.order_id == service.order_id
    read.price_name = "Renamed"
    read.save(update_fields=["price_name"])
    assert Service.objects.get(pk=service.pk).price_name == "Renamed"
    assert Service.objects.count() == 1


def test_services_filtered_by_a_list_of_ids_are_those_listed_and_none_for_an_empty_list():
    service = active_service(customers(1)[0])
    listed = Service.objects.filter(OneOf(F("pk"), [service.pk + 1, service.pk]))

    assert list(listed.values_list("pk", flat=True)) == [service.pk]
    assert not Service.objects.filter(OneOf(F("pk"), [service.pk + 1])).exists()
    assert not Service.objects.filter(OneOf(F("pk"), [])).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_services_filtered_by_a_list_of_ids_on_postgresql_are_those_listed():
    test_services_filtered_by_a_list_of_ids_are_those_listed_and_none_for_an_empty_list()


def read_with_psycopgs_datetimes_as_the_orm_reads() -> None:
    service = active_service(customers(1)[0])
    through_orm = Service.objects.only(*RUN_FIELDS).get(pk=service.pk)

    with datetimes_loaded_by_psycopg():
        [read] = instances_read(Service.objects.filter(pk=service.pk), RUN_FIELDS)
        after = Service.objects.values_list("current_period_end", flat=True).get(pk=service.pk)

    for name in RUN_FIELDS:
        value = getattr(read, name)
        assert value == getattr(through_orm, name), name
        if hasattr(value, "tzinfo"):
            assert value.tzinfo == getattr(through_orm, name).tzinfo, name
    assert after == service.current_period_end
    # The block's end leaves the connection's own loader as it was.
    assert Service.objects.only(*RUN_FIELDS).get(pk=service.pk).activated_at == service.activated_at


def test_datetimes_read_in_the_block_are_those_the_orm_reads():
    read_with_psycopgs_datetimes_as_the_orm_reads()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_datetimes_psycopg_reads_on_postgresql_are_those_the_orm_reads():
    read_with_psycopgs_datetimes_as_the_orm_reads()


def write_instances_and_read_back(customer) -> None:
    service = active_service(customer)
    before = timezone.now()
    invoices = [
        Invoice(customer=customer, currency="USD", total=usd("12.50"), due_at=before),
        Invoice(customer=customer, currency="USD", total=usd("0.99"), due_at=before, number="B"),
    ]
    instances_insert_returning(Invoice, invoices)
    # Each instance has its own row's id and its insert date, as save() leaves them.
    stored = Invoice.objects.in_bulk([invoice.pk for invoice in invoices])
    assert [(stored[i.pk].total, stored[i.pk].number) for i in invoices] == [
        (usd("12.50"), ""),
        (usd("0.99"), "B"),
    ]
    assert [stored[i.pk].issued_at for i in invoices] == [i.issued_at for i in invoices]
    assert all(invoice.issued_at >= before and not invoice._state.adding for invoice in invoices)

    instances_insert(
        InvoiceLine,
        [
            InvoiceLine(
                invoice=invoices[0], kind=LineKind.PRICE, description="Monthly",
                unit_amount=usd("6.25"), quantity=2, amount=usd("12.50"),
            )
        ],
    )  # fmt: skip
    assert [
        (line.description, line.unit_amount, line.quantity, line.amount, line.service_id)
        for line in invoices[0].lines.all()
    ] == [("Monthly", usd("6.25"), 2, usd("12.50"), None)]

    instances_insert(
        ServiceEvent,
        [ServiceEvent(service=service, kind="ordered", message="Order 1", data={"order": 1})],
    )
    [event] = ServiceEvent.objects.filter(service=service, message="Order 1")
    assert (event.message, event.data, event.actor_id) == ("Order 1", {"order": 1}, None)
    assert event.created_at >= before


def test_instances_written_in_one_take_read_back_as_saved_with_their_ids_and_dates():
    write_instances_and_read_back(customers(1)[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_instances_written_to_postgresql_read_back_as_saved_with_their_ids_and_dates():
    write_instances_and_read_back(customers(1)[0])


def change_instances_and_read_back(customer) -> None:
    services = [active_service(customer, variant_code=f"zone{n}") for n in range(3)]
    untouched = services[2].next_bill_at
    later = timezone.now() + timedelta(days=3)
    services[0].next_bill_at, services[0].status = None, Service.Status.GRACE
    services[0].grace_ends_at = later
    services[1].next_bill_at, services[1].grace_ends_at = None, None
    services[2].price_name = "Not written"

    instances_written(services, ("next_bill_at", "status", "grace_ends_at"))

    rows = Service.objects.in_bulk([service.pk for service in services])
    assert [
        (rows[s.pk].next_bill_at, rows[s.pk].status, rows[s.pk].grace_ends_at) for s in services
    ] == [
        (None, Service.Status.GRACE, later),
        (None, Service.Status.ACTIVE, None),
        (untouched, Service.Status.ACTIVE, None),
    ]
    assert rows[services[2].pk].price_name != "Not written"


def write_awkward_texts_and_dates_and_read_back(customer) -> None:
    # What an array's text would have to quote: each value is written as it is.
    names = ['A "quoted", {braced} \\ name', "NULL", "", "Comma, and space "]
    services = [active_service(customer, variant_code=f"zone{n}") for n in range(len(names))]
    elsewhere = timezone.get_fixed_timezone(330)
    dates = [timezone.now().astimezone(elsewhere) + timedelta(days=n) for n in range(len(names))]
    for service, name, date in zip(services, names, dates, strict=True):
        service.price_name, service.grace_ends_at = name, date

    instances_written(services, ("price_name", "grace_ends_at"))

    rows = Service.objects.in_bulk([service.pk for service in services])
    assert [(rows[s.pk].price_name, rows[s.pk].grace_ends_at) for s in services] == list(
        zip(names, dates, strict=True)
    )


def test_instances_written_keep_texts_and_dates_as_they_are():
    write_awkward_texts_and_dates_and_read_back(customers(1)[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_instances_written_to_postgresql_keep_texts_and_dates_as_they_are():
    write_awkward_texts_and_dates_and_read_back(customers(1)[0])


def test_instances_changed_are_written_each_with_its_own_values():
    change_instances_and_read_back(customers(1)[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_instances_changed_are_written_to_postgresql_each_with_its_own_values():
    change_instances_and_read_back(customers(1)[0])


def test_instances_built_from_rows_written_hold_their_values_and_every_default():
    customer = customers(1)[0]
    due = timezone.now()
    columns = ("number", "customer_id", "kind", "currency", "total", "total_currency", "due_at")
    row = ("INV-T-9", customer.pk, Invoice.Kind.RENEWAL, "USD", Decimal("3.10"), "USD", due)
    [pk] = rows_insert(Invoice, columns, [row], with_ids=True)

    [built] = instances_built(Invoice, [{"id": pk, **dict(zip(columns, row, strict=True))}])

    stored = Invoice.objects.get(pk=pk)
    for field in Invoice._meta.concrete_fields:
        if field.attname != "issued_at":  # filled as the row was written
            assert getattr(built, field.attname) == getattr(stored, field.attname), field.name
    assert built.total == usd("3.10") and not built.get_deferred_fields()
    built.status = Invoice.Status.CANCELLED
    built.save(update_fields=["status"])
    assert Invoice.objects.get(pk=pk).status == Invoice.Status.CANCELLED


# Texts JSON escapes, a NUL-free control character, a decimal past its places (rounded
# as a parameter is), a date in another offset, JSON that is a bare string and JSON null.
AWKWARD = [
    ('A "q", \\ {b}\né ✓', "1.005", 330, "text"),
    ("NULL", "12345.675", -480, None),
    ("", "0.00", 0, {"nested": ["a", 1, None]}),
]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rows_written_from_json_are_those_save_writes():
    customer = customers(1)[0]
    now = timezone.now()
    saved, written = [], []
    for number, total, offset, bill_to in AWKWARD:
        due = now.astimezone(timezone.get_fixed_timezone(offset))
        values = {"total": usd(total), "due_at": due, "bill_to": bill_to}
        # Numbers are unique: the saved row's says so.
        saved.append(
            Invoice.objects.create(
                customer=customer, currency="USD", number=f"saved {number}", **values
            )
        )
        written.append(Invoice(customer=customer, currency="USD", number=number, **values))
    instances_insert_returning(Invoice, written)

    def stored(invoices):
        rows = Invoice.objects.in_bulk([invoice.pk for invoice in invoices])
        return [
            (rows[i.pk].number.removeprefix("saved "), rows[i.pk].total, rows[i.pk].due_at,
             rows[i.pk].bill_to)
            for i in invoices
        ]  # fmt: skip

    assert stored(written) == stored(saved)
    assert [number for number, *_ in stored(written)] == [number for number, *_ in AWKWARD]
    assert [total for _, total, _, _ in stored(written)] == [
        usd("1.01"), usd("12345.68"), usd("0.00")
    ]  # fmt: skip
    assert Invoice.objects.filter(pk=written[1].pk, bill_to__isnull=True).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_value_too_long_for_its_column_is_refused_from_json_as_from_a_parameter():
    customer = customers(1)[0]
    invoice = Invoice(customer=customer, currency="USDX", total=usd("1"), due_at=timezone.now())
    with pytest.raises(DataError), transaction.atomic():
        instances_insert_returning(Invoice, [invoice])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_model_with_a_column_json_would_not_carry_is_refused_when_its_sql_is_built():
    with pytest.raises(ImproperlyConfigured, match="icon"):
        instances_insert_returning(Catalog, [Catalog(name="Books", slug="books")])
