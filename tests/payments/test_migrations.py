"""The move of payments out of subscriptions keeps every payment and every issued number."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("subscriptions", "0004_provisioning_job_lease")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_payments_and_invoice_numbers_survive_the_move_to_the_payments_app():
    old = migrate(BEFORE)
    user = old.get_model("auth", "User").objects.create(username="old@example.com")
    staff = old.get_model("auth", "User").objects.create(username="staff")
    invoice = old.get_model("subscriptions", "Invoice").objects.create(
        customer=user, currency="USD", total=Decimal("30"), total_currency="USD",
        due_at=datetime(2025, 5, 1, tzinfo=UTC),
    )  # fmt: skip
    OldPayment = old.get_model("subscriptions", "Payment")
    payment = OldPayment.objects.create(
        invoice=invoice, amount=Decimal("12.50"), amount_currency="USD", method="staff",
        reference="marked paid by staff", recorded_by=staff,
    )  # fmt: skip
    OldPayment.objects.filter(pk=payment.pk).update(created_at=datetime(2025, 5, 2, tzinfo=UTC))

    executor = MigrationExecutor(connection)
    new = migrate(executor.loader.graph.leaf_nodes())

    moved = new.get_model("payments", "Payment").objects.get()
    assert (moved.invoice_id, moved.customer_id, moved.recorded_by_id) == (
        invoice.pk, user.pk, staff.pk,
    )  # fmt: skip
    assert (moved.amount.amount, moved.amount_currency, moved.status) == (
        Decimal("12.50"),
        "USD",
        "succeeded",
    )
    assert moved.reference == "marked paid by staff"
    assert moved.received_at == moved.created_at == datetime(2025, 5, 2, tzinfo=UTC)
    numbered = new.get_model("subscriptions", "Invoice").objects.get(pk=invoice.pk)
    assert numbered.number == f"INV-{invoice.pk:06d}"  # the number it was shown with
