"""Usage on the customer's service page and the service's admin page; staff record usage there."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from subscriptions.models import UsageRecord
from subscriptions.usage import usage_record
from tests.factories import metered_service, usd, with_period

pytestmark = pytest.mark.django_db


def use(service, quantity: str, key: str) -> None:
    usage_record(service=service, quota_code="minutes", quantity=Decimal(quantity),
                 occurred_at=timezone.now(), idempotency_key=key, source="staff")  # fmt: skip


def admin_url(service) -> str:
    return reverse("admin:subscriptions_service_change", args=[service.pk])


def add_usage_url(service) -> str:
    return reverse("admin:subscriptions_service_add_usage", args=[service.pk])


def test_the_customer_sees_usage_against_each_quota_as_a_bar_with_figures(
    customer_client, customer
):
    service = with_period(metered_service(customer, limit=1000))
    use(service, "250", "a")

    html = customer_client.get(reverse("subscriptions:service", args=[service.pk])).content.decode()

    assert f"Usage since {service.current_period_start:%Y-%m-%d}" in html
    assert '<meter id="usage-minutes"' in html
    assert 'max="1000"' in html and 'value="250.000000"' in html
    assert "250 minutes of 1,000 minutes" in html
    assert 'style="' not in html  # the CSP forbids inline styles


def test_the_bar_says_when_a_hard_limit_is_reached(customer_client, customer):
    service = metered_service(customer, limit=10)
    use(service, "12", "a")

    html = customer_client.get(reverse("subscriptions:service", args=[service.pk])).content.decode()

    assert "12 minutes of 10 minutes" in html
    assert "Limit reached" in html
    assert 'max="12.000000"' in html  # the bar scales to the usage past the limit


def test_the_bar_says_what_an_overage_costs(customer_client, customer):
    service = metered_service(customer, limit=10, overage_price=usd("0.50"),
                              overages_enabled=True)  # fmt: skip
    use(service, "14", "a")

    html = customer_client.get(reverse("subscriptions:service", args=[service.pk])).content.decode()

    assert "4 minutes over, billed at 0.50" in html


def test_a_service_without_quotas_shows_no_usage(customer_client, customer):
    service = metered_service(customer)
    service.quotas = []
    service.save()

    html = customer_client.get(reverse("subscriptions:service", args=[service.pk])).content.decode()

    assert 'id="usage"' not in html


def test_staff_see_the_same_bars_on_the_service_admin_page(staff_client, customer):
    service = metered_service(customer, limit=1000)
    use(service, "250", "a")

    html = staff_client.get(admin_url(service)).content.decode()

    assert '<meter id="usage-minutes"' in html
    assert "250 minutes of 1,000 minutes" in html
    assert 'id="add-usage"' in html


def test_staff_record_usage_from_the_service_page_once_however_often_they_submit(
    staff_client, staff_user, customer
):
    service = metered_service(customer, limit=1000)
    data = {"quota": "minutes", "quantity": "42", "idempotency_key": "staff-abc",
            "occurred_at": timezone.now().strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip

    first = staff_client.post(add_usage_url(service), data)
    again = staff_client.post(add_usage_url(service), data, follow=True)

    assert first.status_code == 302
    assert first["Location"].endswith("#usage")
    assert "This usage was already recorded." in again.content.decode()
    (record,) = UsageRecord.objects.all()
    assert record.source == UsageRecord.Source.STAFF
    assert record.recorded_by == staff_user


def test_staff_see_their_mistakes_on_the_form(staff_client, customer):
    service = metered_service(customer)
    data = {"quota": "minutes", "quantity": "-5", "idempotency_key": "staff-abc",
            "occurred_at": "soon"}  # fmt: skip

    response = staff_client.post(add_usage_url(service), data)

    assert response.status_code == 400
    html = response.content.decode()
    assert "The quantity must be above zero." in html
    assert "Enter a valid date/time." in html
    assert not UsageRecord.objects.exists()


def test_staff_cannot_record_usage_of_a_quota_the_service_does_not_have(staff_client, customer):
    service = metered_service(customer)
    data = {"quota": "storage", "quantity": "1", "idempotency_key": "k",
            "occurred_at": timezone.now().strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip

    response = staff_client.post(add_usage_url(service), data)

    assert response.status_code == 400
    assert not UsageRecord.objects.exists()


def test_the_usage_form_only_takes_posts(staff_client, customer):
    service = metered_service(customer)

    assert staff_client.get(add_usage_url(service)).status_code == 405
