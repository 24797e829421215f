"""Saved cards: kept from a Stripe payment, charged off-session when a renewal is issued, retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from payments.gateways.base import ChargeRequest, GatewayEvent
from payments.models import Payment, SavedPaymentMethod, StripeGateway
from payments.renewals import invoice_charge_saved_method
from payments.services import gateway_event_handle, payment_record
from subscriptions.billing import services_run_billing
from subscriptions.jobs import service_start
from subscriptions.models import Invoice, Service
from tests.factories import place_order, usd
from tests.support.stripe_standin import GOOD_KEY, event, sign, start_stripe, succeeded_intent

pytestmark = pytest.mark.django_db
SECRET = "whsec_standin"
CHARGE_TASK = "payments.renewals.charge_saved_method"


@pytest.fixture
def stripe_api(settings):
    standin = start_stripe()
    settings.STRIPE_API_BASE = standin.url
    yield standin
    standin.stop()


@pytest.fixture
def stripe_gateway(db):
    return StripeGateway.objects.create(
        name="Card (Stripe)", currencies="USD", secret_key=GOOD_KEY, webhook_secret=SECRET
    )


def save_card(customer, gateway, method_id="pm_card_visa") -> SavedPaymentMethod:
    return SavedPaymentMethod.objects.create(
        customer=customer, gateway=gateway, gateway_customer_id="cus_1",
        gateway_method_id=method_id, label="Visa 4242", is_default=True,
    )  # fmt: skip


def renewal_of_an_active_service(customer) -> Invoice:
    order = place_order(customer)
    invoice = order.invoices.get()
    payment_record(invoice=invoice, amount=invoice.total, method="cash")
    service = order.services.get()
    service_start(service, now=datetime(2026, 1, 1, tzinfo=UTC))
    service.save()
    services_run_billing(now=datetime(2026, 2, 1, 1, tzinfo=UTC))
    return Invoice.objects.of_service(service.pk).get(kind=Invoice.Kind.RENEWAL)


def queued_attempts() -> list[dict]:
    return [
        task.args_kwargs["kwargs"] for task in DBTaskResult.objects.filter(task_path=CHARGE_TASK)
    ]


def test_a_payment_the_customer_let_stripe_keep_saves_their_card_as_the_default(
    client, customer, invoice, stripe_gateway
):
    intent = succeeded_intent(invoice, 1900, "pi_1") | {
        "setup_future_usage": "off_session", "customer": "cus_9", "payment_method": "pm_123",
    }  # fmt: skip
    body = event("evt_1", "payment_intent.succeeded", intent)

    client.post(
        reverse("payments:webhook", args=[stripe_gateway.pk]), data=body,
        content_type="application/json", headers={"Stripe-Signature": sign(body, SECRET)},
    )  # fmt: skip

    method = SavedPaymentMethod.objects.get()
    assert (method.customer, method.gateway_customer_id, method.gateway_method_id) == (
        customer, "cus_9", "pm_123",
    )  # fmt: skip
    assert method.is_default


def test_choosing_to_save_the_card_asks_stripe_to_keep_it(
    customer_client, invoice, stripe_api, stripe_gateway
):
    customer_client.post(
        reverse("payments:pay", args=[invoice.pk, stripe_gateway.pk]),
        {f"gateway{stripe_gateway.pk}-save_card": "on", "attempt_key": "k"},
    )
    sent = stripe_api.requests[-1].form
    assert sent["payment_intent_data[setup_future_usage]"] == "off_session"
    assert sent["customer_creation"] == "always"


def test_an_issued_renewal_queues_a_charge_of_the_saved_card(customer, stripe_gateway):
    save_card(customer, stripe_gateway)
    renewal = renewal_of_an_active_service(customer)
    assert queued_attempts() == [{"invoice_id": renewal.pk, "attempt": 1}]


def test_without_a_saved_card_a_renewal_waits_for_the_customer(customer):
    renewal_of_an_active_service(customer)
    assert queued_attempts() == []


def test_the_charge_pays_the_renewal_and_moves_the_period_on(customer, stripe_api, stripe_gateway):
    save_card(customer, stripe_gateway)
    renewal = renewal_of_an_active_service(customer)

    assert invoice_charge_saved_method(invoice_id=renewal.pk, attempt=1) == "charged"

    renewal.refresh_from_db()
    assert renewal.status == Invoice.Status.PAID
    sent = stripe_api.requests[-1]
    assert sent.form["off_session"] == "true" and sent.form["confirm"] == "true"
    assert sent.headers["Idempotency-Key"] == f"renewal-{renewal.pk}-attempt-1"
    service = Service.objects.get()
    assert service.current_period_end == renewal.period_end


def test_an_attempt_run_again_after_a_worker_died_mid_charge_charges_once(
    customer, stripe_api, stripe_gateway
):
    save_card(customer, stripe_gateway)
    renewal = renewal_of_an_active_service(customer)
    # The worker died after Stripe charged, before the payment was recorded:
    first = stripe_gateway.plugin.charge_saved(
        stripe_gateway, SavedPaymentMethod.objects.get(),
        ChargeRequest(
            amount=renewal.total, invoice_number=renewal.number, customer_email="",
            idempotency_key=f"renewal-{renewal.pk}-attempt-1", data={},
        ),
    )  # fmt: skip

    invoice_charge_saved_method(invoice_id=renewal.pk, attempt=1)

    payment = Payment.objects.get(invoice=renewal)
    assert payment.transaction_id == first.transaction_id
    intents = [r for r in stripe_api.requests if r.path == "/v1/payment_intents"]
    assert len({r.headers["Idempotency-Key"] for r in intents}) == 1


def test_a_declined_card_is_recorded_and_retried_on_the_schedule(
    customer, stripe_api, stripe_gateway, settings
):
    settings.BILLING_RETRY_DAYS = [1, 3]
    save_card(customer, stripe_gateway, method_id="pm_card_chargeDeclined")
    renewal = renewal_of_an_active_service(customer)

    outcome = invoice_charge_saved_method(invoice_id=renewal.pk, attempt=1)

    assert outcome.startswith("declined; retry 2 on ")
    failed = Payment.objects.get(invoice=renewal)
    assert failed.status == Payment.Status.FAILED
    assert failed.failure_message == "Your card was declined."
    assert failed.reference == "Automatic charge of Visa 4242, attempt 1"
    retry = DBTaskResult.objects.filter(task_path=CHARGE_TASK).order_by("-enqueued_at").first()
    assert retry.args_kwargs["kwargs"] == {"invoice_id": renewal.pk, "attempt": 2}
    assert retry.run_after - timezone.now() > timedelta(hours=23)

    assert invoice_charge_saved_method(invoice_id=renewal.pk, attempt=3).startswith(
        "declined; no retries left"
    )
    assert Payment.objects.filter(invoice=renewal, status="failed").count() == 2


def test_a_renewal_paid_meanwhile_is_not_charged(customer, stripe_api, stripe_gateway):
    save_card(customer, stripe_gateway)
    renewal = renewal_of_an_active_service(customer)
    payment_record(invoice=renewal, amount=renewal.total, method="bank_transfer")

    assert invoice_charge_saved_method(invoice_id=renewal.pk, attempt=1) == "nothing to charge"
    assert not [r for r in stripe_api.requests if r.path == "/v1/payment_intents"]


def test_customers_make_a_card_the_default_and_remove_one(
    customer_client, customer, stripe_api, stripe_gateway
):
    first = save_card(customer, stripe_gateway, "pm_1")
    second = SavedPaymentMethod.objects.create(
        customer=customer, gateway=stripe_gateway, gateway_customer_id="cus_1",
        gateway_method_id="pm_2", label="Mastercard 4444",
    )  # fmt: skip

    customer_client.post(reverse("payments:saved_method_default", args=[second.pk]))
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.is_default and not first.is_default

    customer_client.post(reverse("payments:saved_method_remove", args=[second.pk]))
    assert stripe_api.requests[-1].path == "/v1/payment_methods/pm_2/detach"
    first.refresh_from_db()
    assert first.is_default and SavedPaymentMethod.objects.count() == 1
    page = customer_client.get(reverse("payments:billing")).content.decode()
    assert "Visa 4242" in page and "pays your renewals" in page


def test_another_customers_card_is_not_found(client, other_customer, customer, stripe_gateway):
    method = save_card(customer, stripe_gateway)
    client.force_login(other_customer)
    assert client.post(reverse("payments:saved_method_remove", args=[method.pk])).status_code == 404
    assert SavedPaymentMethod.objects.count() == 1


def test_gateway_event_handle_ignores_an_event_without_an_invoice(stripe_gateway):
    result = gateway_event_handle(
        gateway=stripe_gateway,
        event=GatewayEvent(event_id="evt_x", type="payment_intent.succeeded", amount=usd(1)),
    )
    assert result == "ignored"


def test_renewals_are_invoiced_the_configured_days_before_they_fall_due(customer, settings):
    settings.BILLING_INVOICE_DAYS_BEFORE_DUE = 7
    order = place_order(customer)
    invoice = order.invoices.get()
    payment_record(invoice=invoice, amount=invoice.total, method="cash")
    service = order.services.get()
    service_start(service, now=datetime(2026, 1, 1, tzinfo=UTC))
    service.save()

    services_run_billing(now=datetime(2026, 1, 24, tzinfo=UTC))  # 8 days ahead: not yet
    assert not service.invoices.filter(kind=Invoice.Kind.RENEWAL).exists()
    services_run_billing(now=datetime(2026, 1, 25, 1, tzinfo=UTC))  # 7 days ahead

    renewal = Invoice.objects.of_service(service.pk).get(kind=Invoice.Kind.RENEWAL)
    assert renewal.due_at == datetime(2026, 2, 1, tzinfo=UTC)
    service.refresh_from_db()
    assert service.status == Service.Status.ACTIVE  # not overdue before its due date
