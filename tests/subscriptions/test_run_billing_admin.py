"""Staff run the billing from the admin instead of waiting for cron, and see what it did."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from subscriptions.models import Invoice
from tests.factories import active_service

pytestmark = pytest.mark.django_db

RUN_BILLING = reverse("admin:subscriptions_service_run_billing")
SERVICES = reverse("admin:subscriptions_service_changelist")


def due_service(customer):
    """A service bought 40 days ago, so its first monthly period has ended unbilled."""
    with time_machine.travel(timezone.now() - timedelta(days=40)):
        return active_service(customer)


@pytest.fixture
def clerk(django_user_model):
    """Staff who may see services but not run the billing."""
    user = django_user_model.objects.create_user(
        username="clerk", email="clerk@example.com", password="clerk-password", is_staff=True
    )
    user.user_permissions.add(Permission.objects.get(codename="view_service"))
    return user


def test_the_service_list_offers_the_button_to_staff_allowed_to_run_billing(staff_client):
    page = staff_client.get(SERVICES).content.decode()

    assert f'href="{RUN_BILLING}"' in page and "Run billing now" in page


def test_the_button_first_asks_for_confirmation_and_bills_nothing(staff_client, customer):
    due_service(customer)

    response = staff_client.get(RUN_BILLING)

    assert response.status_code == 200
    assert 'method="post"' in response.content.decode()
    assert not Invoice.objects.filter(kind=Invoice.Kind.RENEWAL).exists()


def test_confirming_runs_the_billing_and_says_what_it_did(staff_client, customer):
    service = due_service(customer)

    response = staff_client.post(RUN_BILLING)

    assert response.status_code == 302 and response.url == SERVICES
    assert Invoice.objects.of_service(service.pk).filter(kind=Invoice.Kind.RENEWAL).count() == 1
    [message] = [str(message) for message in get_messages(response.wsgi_request)]
    assert message.startswith("Billing run: 0 cancelled, 0 plan change(s) applied, ")
    assert "1 invoice(s) issued" in message and "1 suspension(s) queued" in message


def test_staff_without_the_permission_neither_see_the_button_nor_run_billing(
    client, clerk, customer
):
    due_service(customer)
    client.force_login(clerk)

    assert "Run billing now" not in client.get(SERVICES).content.decode()
    assert client.get(RUN_BILLING).status_code == 403
    assert client.post(RUN_BILLING).status_code == 403
    assert not Invoice.objects.filter(kind=Invoice.Kind.RENEWAL).exists()
