"""A move to a higher tier at a lower price credits the unused part of the paid period."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.urls import reverse

from payments.models import CreditEntry, CreditNote, Payment
from payments.services import credit_balance, invoice_balance
from subscriptions.billing import services_run_billing
from subscriptions.models import Invoice
from subscriptions.plan_changes import service_change_package
from tests.factories import active_service, target_of, usd, with_period
from tests.support.html import section
from tests.support.mail import text

pytestmark = pytest.mark.django_db


def test_the_unused_part_of_the_period_is_credited_to_the_cent_and_pays_the_next_invoice(
    customer, customer_client
):
    # Monthly 10 + Europe 2 over a 30-day period; the higher tier's Monthly costs 3.35.
    service = with_period(active_service(customer, tier=2))
    target = target_of(service.package, tier=3, price="3.35")
    start, end = service.current_period_start, service.current_period_end
    now = start + timedelta(days=10, hours=7)  # 473 of 720 hours left

    change = service_change_package(service=service, customer=customer, package=target, now=now)

    service.refresh_from_db()
    assert service.recurring_amount == usd("5.35")
    assert change.charge == usd(0) and change.invoice is None
    expected = (Decimal("6.65") * 473 / 720).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert expected == Decimal("4.37")
    note = CreditNote.objects.get(customer=customer)
    assert (note.kind, note.amount) == (CreditNote.Kind.PLAN_CHANGE, usd(expected))
    # On the invoice that paid the period it cuts short: here the order's.
    assert note.invoice == Invoice.objects.get(order=service.order)
    entry = CreditEntry.objects.get(customer=customer)
    assert (entry.kind, entry.amount) == (CreditEntry.Kind.PLAN_CHANGE, usd(expected))
    assert credit_balance(customer=customer, currency="USD") == usd(expected)

    page = text(customer_client.get(reverse("payments:billing")).content.decode())
    assert "4.37 USD" in section(page, "credit")
    assert "Plan change credit" in section(page, "credit-history")

    services_run_billing(now=end)

    renewal = Invoice.objects.of_service(service.pk).get(kind=Invoice.Kind.RENEWAL)
    assert renewal.total == usd("5.35")
    credit_payment = renewal.payments.get()
    assert (credit_payment.method, credit_payment.amount) == (
        Payment.Method.ACCOUNT_CREDIT,
        usd(expected),
    )
    assert invoice_balance(renewal) == usd("0.98")
    assert credit_balance(customer=customer, currency="USD") == usd(0)


def test_a_higher_tier_at_a_higher_price_is_charged_and_credits_nothing(customer):
    service = with_period(active_service(customer, tier=2))
    target = target_of(service.package, tier=3, price="20")

    change = service_change_package(
        service=service,
        customer=customer,
        package=target,
        now=service.current_period_start + timedelta(days=10),
    )

    assert change.charge == usd("6.67")
    assert not CreditNote.objects.exists() and not CreditEntry.objects.exists()


def test_a_higher_tier_at_the_same_price_credits_nothing(customer):
    service = with_period(active_service(customer, tier=2))
    target = target_of(service.package, tier=3, price="10")

    change = service_change_package(service=service, customer=customer, package=target)

    assert change.charge == usd(0)
    assert not CreditNote.objects.exists() and not CreditEntry.objects.exists()
